"""What a shot costs the LDF backend: windows, DiT FLOPs and decoded chunks per shot, and what that means for a
film cut into many short shots.

Every shot is sampled as a video of its own (so a shot gives exactly the frames it would give alone, as the
reference would produce them for that clip). The schedule is already the cheapest one that does: a shot of
up to ``(nT - 1) * tile_min_t`` output slots needs the first window only, and that window must be whole, since
its padding chunks are attended to by the kept ones and its noise is drawn for the whole window. What a short
shot does not pay for is decoding: chunks wholly beyond its last frame are not decoded.

    python benchmarks/shot_cost.py                         # 720p, x4, the released 60-frame windows
    python benchmarks/shot_cost.py --height 1080 --width 1920 --temporal_sf 2 --num_frames 60,80,120
    python benchmarks/shot_cost.py --time_tiny             # also time the tiny random model per shot (CPU)

FLOPs are the DiT's matmuls at the real 1.3B configuration (``benchmarks/measure.py``); no weights needed.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import dit_forward_flops  # noqa: E402

from ldf_vfi.models.attention import ChunkGrid  # noqa: E402
from ldf_vfi.models.tiling import TilingConfig, chunk_grid  # noqa: E402
from ldf_vfi.models.transformer import RELEASE_ATTENTION_TYPE, LDFTransformer3DModel  # noqa: E402
from ldf_vfi.pipelines.windows import window_schedule  # noqa: E402


def released_config() -> argparse.Namespace:
    """The transformer's constructor defaults (Wan2.1-T2V-1.3B's sizes) with the release attention type."""
    params = inspect.signature(LDFTransformer3DModel.__init__).parameters
    config = {k: p.default for k, p in params.items() if k != "self"}
    config["attention_type"] = RELEASE_ATTENTION_TYPE
    return argparse.Namespace(**config)


def window_tflop(config, num_frames: int, height: int, width: int, tiling: TilingConfig, steps: int) -> float:
    pt, ph, pw = config.patch_size
    latent_t = tiling.tile_min_t // 5 * 2
    lh, lw = tiling.latent_stride
    grid = ChunkGrid(chunk_grid(num_frames, height, width, tiling), (latent_t // pt, lh // ph, lw // pw))
    return dit_forward_flops(config, grid) * steps / 1e12


def shot_plan(inputs: int, sf: int, num_frames: int, tile_min_t: int) -> tuple[int, int, int]:
    """(windows, output frames, chunks decoded) of a shot of ``inputs`` frames sampled alone."""
    frames = (inputs - 1) * sf + 1
    windows = window_schedule(inputs * sf, num_frames, tile_min_t, frames)
    decoded = 0
    for window in windows:
        a, b = window.keep
        kept = min(window.out_end, frames) - window.out_start
        decoded += min(b - a, math.ceil(max(kept, 0) / tile_min_t))
    return len(windows), frames, decoded


def time_tiny(lengths: list[int], sf: int) -> list[tuple[int, int, float]]:
    """Wall seconds of the tiny random model per shot (30-frame windows of 10-frame chunks, 2 steps)."""
    from measure import tiny_ldf_pipeline

    from ldf_vfi.data.synthetic import moving_shapes_video

    pipe = tiny_ldf_pipeline(sampling_steps=2)
    pipe(moving_shapes_video(3, 64, 64), sf)  # warm-up
    rows = []
    for n in lengths:
        clip = moving_shapes_video(n, 64, 64, seed=n)
        start = time.perf_counter()
        pipe(clip, sf)
        rows.append((n, len(window_schedule(n * sf, 30, 10, (n - 1) * sf + 1)), time.perf_counter() - start))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--temporal_sf", type=int, default=4)
    parser.add_argument("--sampling_steps", type=int, default=16)
    parser.add_argument(
        "--num_frames", default="60,80,120", help="window lengths to compare (multiples of 20)"
    )
    parser.add_argument("--shot_lengths", default="2,3,5,9,16,31,61,121", help="input frames per shot")
    parser.add_argument(
        "--film_frames", type=int, default=14400, help="input frames of the film (24 fps, 10 min)"
    )
    parser.add_argument("--time_tiny", action="store_true", help="also time the tiny random model per shot")
    args = parser.parse_args(argv)
    sf = args.temporal_sf
    tiling = TilingConfig()
    config = released_config()
    lengths = [int(v) for v in args.shot_lengths.split(",")]
    window_lengths = [int(v) for v in args.num_frames.split(",")]
    per_window = {
        f: window_tflop(config, f, args.height, args.width, tiling, args.sampling_steps)
        for f in window_lengths
    }

    print(
        f"DiT cost per shot at {args.width}x{args.height}, x{sf}, {args.sampling_steps} steps (TFLOP, matmuls)\n"
    )
    header = "| input frames | output frames |" + "".join(
        f" --num_frames {f}: windows / TFLOP / decoded chunks |" for f in window_lengths
    )
    print(header)
    print("|---|---|" + "---|" * len(window_lengths))
    for n in lengths:
        cells = []
        frames = 0
        for f in window_lengths:
            windows, frames, decoded = shot_plan(n, sf, f, tiling.tile_min_t)
            cells.append(f" {windows} / {windows * per_window[f]:.0f} / {decoded} |")
        print(f"| {n} | {frames} |" + "".join(cells))

    print(
        f"\nA film of {args.film_frames} input frames cut into shots of equal length (--num_frames {window_lengths[0]}):\n"
    )
    print("| shot length (input frames) | shots | windows | DiT PFLOP | vs. one continuous video |")
    print("|---|---|---|---|---|")
    f = window_lengths[0]
    whole, _, _ = shot_plan(args.film_frames, sf, f, tiling.tile_min_t)
    for n in [args.film_frames, *sorted({max(2, v) for v in (240, 120, 48, 24, 12, 6, 3, 2)}, reverse=True)]:
        shots = args.film_frames // n
        windows = shots * shot_plan(n, sf, f, tiling.tile_min_t)[0]
        print(
            f"| {n} | {shots} | {windows} | {windows * per_window[f] / 1000:.1f} | {windows / whole:.2f}x |"
        )

    if args.time_tiny:
        print("\nTiny random model on this CPU (30-frame windows, 2 steps, 64x64), one shot at a time:\n")
        print("| input frames | windows | seconds | seconds per window |")
        print("|---|---|---|---|")
        for n, windows, seconds in time_tiny(lengths, sf):
            print(f"| {n} | {windows} | {seconds:.2f} | {seconds / windows:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
