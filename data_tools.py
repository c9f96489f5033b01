"""Index LAVIB (or any folder of videos) for training: ``python data_tools.py --src /path/to/LAVIB --dst data/lavib-hf``.

See ``ldf_vfi.data.lavib`` for the layout and the index format.
"""

import sys

from ldf_vfi.data.lavib import main

if __name__ == "__main__":
    sys.exit(main())
