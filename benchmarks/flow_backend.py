"""Throughput of the no-weights flow backend on this CPU (run by hand; not a test).

    python benchmarks/flow_backend.py [--factor 4] [--pairs 3] [--preset medium]

Prints output frames per second at 480p and 1080p (synthetic moving-shapes frames), and splits the time into
flow estimation (once per input pair) and warping/blending (once per new frame).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ldf_vfi.data.synthetic import MovingShapes  # noqa: E402
from ldf_vfi.pipelines.flow import FlowInterpolator, _PairWarper  # noqa: E402

SIZES = {"480p": (480, 854), "1080p": (1080, 1920)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=3, help="input frame pairs per resolution")
    parser.add_argument("--preset", default="medium", choices=("ultrafast", "fast", "medium"))
    args = parser.parse_args()
    import cv2

    print(
        f"cv2 {cv2.__version__}, threads {cv2.getNumThreads()}, cpus {os.cpu_count()}, preset {args.preset}, x{args.factor}"
    )
    print(f"{'size':>6} | {'out fps':>8} | {'flow s/pair':>11} | {'warp ms/frame':>13} | {'frames':>6}")
    for name, (height, width) in SIZES.items():
        frames = MovingShapes(height, width, motion="mixed", seed=0, speed=1.0).frames(args.pairs + 1)
        interpolator = FlowInterpolator(flow_preset=args.preset)
        list(interpolator.interpolate(frames[:2], 2))  # warm-up
        start = time.perf_counter()
        produced = sum(1 for _ in interpolator.interpolate(frames, args.factor))
        total = time.perf_counter() - start
        start = time.perf_counter()
        warper = _PairWarper(frames[0], frames[1], interpolator._flow, interpolator.flow_max_side)
        flow_time = time.perf_counter() - start
        start = time.perf_counter()
        for step in range(1, args.factor):
            warper.at(step / args.factor)
        warp_time = (time.perf_counter() - start) / max(args.factor - 1, 1)
        print(
            f"{name:>6} | {produced / total:8.1f} | {flow_time:11.3f} | {warp_time * 1e3:13.1f} | {produced:6d}"
        )


if __name__ == "__main__":
    main()
