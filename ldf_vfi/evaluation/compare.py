"""Compare finished runs: ``python -m ldf_vfi.evaluation.compare RUN_DIR [RUN_DIR ...]``.

Prints one markdown table (method x metric) built from each folder's ``summary.json``, e.g. the ``flow``,
``repeat`` and ``ldf`` runs of the same dataset side by side.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .results import compare_runs


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.splitlines()[0])
        return 0 if argv else 2
    try:
        print(compare_runs(argv), end="")
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
