"""Interpolate videos: ``python generate.py --data assets/demo.mp4 --temporal_sf 8``.

Thin wrapper over :func:`ldf_vfi.cli.generate_main`; ``ldf-vfi interpolate`` takes the same flags.
"""

import sys

from ldf_vfi.cli import generate_main

if __name__ == "__main__":
    sys.exit(generate_main())
