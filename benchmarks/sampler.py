"""Memory and speed of the LDF-VFI sampler (run by hand; not a test).

    python benchmarks/sampler.py                      # analytical estimate for the real config + tiny CPU run
    python benchmarks/sampler.py --tflops 400         # assumed sustained bf16 throughput for the estimate

No GPU and no weights are needed: the real-config numbers are computed from the released architecture
(Wan2.1-1.3B DiT with 36 input channels, 30 blocks, 1536 wide, FFN 8960, 12 heads; cond-v2 VAE), the window
geometry (60 frames = 3 chunks of 20, 256-px tiles every 192 px) and the 2x1x1 local attention; the tiny
config is then run for real on this machine and timed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GIB = 1024**3
DIT_PARAMS = 1_410_465_856
VAE_PARAMS = 200_222_227
WIDTH, FFN, LAYERS, HEAD_DIM = 1536, 8960, 30, 128
TOKENS_PER_CHUNK = 8 * 12 * 12
RESOLUTIONS = {
    "480p": (480, 854),
    "720p": (720, 1280),
    "1080p": (1080, 1920),
    "4K UHD": (2160, 3840),
    "4K DCI": (2160, 4096),
}


def window_estimate(height: int, width: int, sp: int = 1, bytes_per=2) -> dict:
    n_h, n_w = math.ceil(height / 192), math.ceil(width / 192)
    chunks = 3 * n_h * n_w
    tokens = chunks * TOKENS_PER_CHUNK
    local = tokens // sp  # tokens held per rank under sequence parallelism
    # keys one query attends to under slide 2x1x1 (temporally global over 3 chunks, 3x3 tiles), averaged over
    # tiles (edge tiles see fewer neighbours)
    mean_h = (3 * n_h - 2) / n_h if n_h > 1 else 1
    mean_w = (3 * n_w - 2) / n_w if n_w > 1 else 1
    keys = 3 * mean_h * mean_w * TOKENS_PER_CHUNK
    flops_block = 16 * tokens * WIDTH**2 + 4 * tokens * WIDTH * FFN + 8 * tokens * keys * WIDTH
    flops_full_attention_block = (
        16 * tokens * WIDTH**2 + 4 * tokens * WIDTH * FFN + 8 * tokens * tokens * WIDTH
    )
    # Inference activations alive inside one block (no autograd): residual stream, modulated input, q/k/v/out of
    # one attention (heads gathered), FFN hidden; RoPE tables in float64; the latents x, y, m in the 36 channels.
    block_bytes = local * (WIDTH * 2 + 4 * WIDTH * sp + FFN) * bytes_per
    rope_bytes = 2 * local * (HEAD_DIM // 2) * 8
    latents_bytes = chunks * (36 + 16) * 8 * 24 * 24 * bytes_per
    # VAE: one 256x256 tile at a time, vae_batch_size=16 groups of 5 frames; the widest activation is 96 ch at
    # full resolution (5 frames), about 4 alive at once in a residual block, plus the condition encoder's
    # features for one group kept for the 19 injections (~ 1.5 such activations).
    vae_bytes = 16 * 96 * 5 * 256 * 256 * bytes_per * 4 + 96 * 5 * 256 * 256 * bytes_per * 1.5 * 16
    frames_bytes = 60 * height * width * 3 * 2  # uint8 window + its bf16 normalised copy (per pixel ~3 B)
    weights = (DIT_PARAMS + VAE_PARAMS) * bytes_per
    peak = weights + max(block_bytes + rope_bytes, vae_bytes) + latents_bytes + frames_bytes
    return {
        "tiles": (n_h, n_w),
        "tokens": tokens,
        "keys_per_query": keys,
        "flops_dit_forward": flops_block * LAYERS,
        "mask_skips": 1 - flops_block / flops_full_attention_block,
        "peak_gib": peak / GIB,
        "weights_gib": weights / GIB,
        "dit_act_gib": (block_bytes + rope_bytes) / GIB,
        "vae_act_gib": vae_bytes / GIB,
    }


def analytical(args) -> None:
    print(
        f"Real config, bf16, one 60-frame window, 16 steps; assumed sustained throughput {args.tflops:g} TFLOP/s"
    )
    print(f"{'input':>8} | {'tiles':>6} | {'tokens':>8} | {'keys/q':>7} | {'mask skips':>10} | {'DiT TFLOP/fwd':>13} | "
          f"{'peak GiB sp1':>12} | {'sp2':>6} | {'sp4':>6} | {'s/frame':>7} | {'frames/s':>8}")  # fmt: skip
    for name, (height, width) in RESOLUTIONS.items():
        est = window_estimate(height, width)
        sp2, sp4 = window_estimate(height, width, 2), window_estimate(height, width, 4)
        # per 40 output frames: a skip and a concat window, K DiT forwards each (decode cost ignored)
        seconds_per_frame = 2 * args.steps * est["flops_dit_forward"] / (args.tflops * 1e12) / 40
        print(
            f"{name:>8} | {est['tiles'][0]:>2}x{est['tiles'][1]:<3} | {est['tokens']:>8,} | {est['keys_per_query']:>7,.0f} | "
            f"{est['mask_skips']:>9.1%} | {est['flops_dit_forward'] / 1e12:>13.1f} | {est['peak_gib']:>12.1f} | "
            f"{sp2['peak_gib']:>6.1f} | {sp4['peak_gib']:>6.1f} | {seconds_per_frame:>7.2f} | {1 / seconds_per_frame:>8.2f}"
        )
    est = window_estimate(1080, 1920)
    print(f"(1080p breakdown: weights {est['weights_gib']:.1f} GiB, DiT activations {est['dit_act_gib']:.1f} GiB, "
          f"VAE activations {est['vae_act_gib']:.1f} GiB; memory is per window, independent of video length)")  # fmt: skip
    print(
        "(published for comparison: ~20 GB GPU memory for the 8x demo, 3.36 s/frame at 16 steps; this is a model of"
    )
    print(
        " the arithmetic and the live tensors, not a measurement: allocator caching and kernel workspaces add to it)"
    )


def tiny_run() -> None:

    from benchmarks.measure import status_kib, tiny_ldf_pipeline
    from ldf_vfi.data.synthetic import MovingShapes

    pipe = tiny_ldf_pipeline(sampling_steps=4)
    scene = MovingShapes(96, 128, seed=0)
    list(pipe.interpolate((scene.frame(i) for i in range(2)), 4))  # warm-up
    for n in (8, 32, 64):
        before = status_kib("VmRSS")
        start = time.perf_counter()
        count = sum(1 for _ in pipe.interpolate((scene.frame(i) for i in range(n)), 4))
        elapsed = time.perf_counter() - start
        print(
            f"tiny CPU run: {n} input frames 128x96 x4 -> {count} frames in {elapsed:.1f} s "
            f"({count / elapsed:.1f} frames/s); peak resident memory so far +{(status_kib('VmHWM') - before) / 1024:.1f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tflops", type=float, default=400.0, help="assumed sustained bf16 TFLOP/s of the GPU"
    )
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--skip_tiny", action="store_true")
    args = parser.parse_args()
    analytical(args)
    if not args.skip_tiny:
        tiny_run()


if __name__ == "__main__":
    main()
