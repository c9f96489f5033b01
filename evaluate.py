"""Evaluate on SNU-FILM / X4K1000FPS: ``python evaluate.py --dataset snu_film --data_dir data/SNU-FILM``.

Thin wrapper over :func:`ldf_vfi.evaluation.cli.main`; see ``python evaluate.py --help``.
"""

import sys

from ldf_vfi.evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
