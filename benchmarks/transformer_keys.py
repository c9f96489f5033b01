"""Key-by-key check of the LDF transformer against the official checkpoint layout, on the meta device.

Builds the full Wan2.1-T2V-1.3B-based LDF model and the stock diffusers Wan2.1-T2V-1.3B model without
allocating weights, and compares three key/shape sets: the official layout enumerated from the spec
(821 tensors, ``patch_embedding.weight`` of shape (1536, 36, 1, 2, 2)), the LDF model's state dict, and
the Wan2.1 state dict after ``wan_t2v_to_ldf_state_dict``. Exit status 1 on any difference.

    python benchmarks/transformer_keys.py [--list]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ldf_vfi.models.transformer import official_key_report  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--list", action="store_true", help="print every official key with its shape")
    args = parser.parse_args()
    report = official_key_report()
    if args.list:
        for key, shape in report.expected.items():
            mark = (
                "ok" if report.model.get(key) == shape and report.from_wan.get(key) == shape else "MISMATCH"
            )
            print(f"{mark:<9}{key:<60}{shape}")
    print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
