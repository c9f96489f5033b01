"""Local (released 2x1x1 chunk mask) vs full window attention as the number of latent frames grows.

Prints, per window size and number of temporal chunks nT (8 latent frames each with the released
chunks), the time and peak extra memory of one attention call with the LDF mask and without, their
ratio, and the FLOPs the mask skips. Local attention should grow about linearly with nT, full
quadratically (with nT <= 3 the 2x1x1 window is temporally global, so the curves part from nT = 4 on).

    python benchmarks/attention.py                 # CPU: a tiny shape (fp32, local_sdpa vs SDPA)
    python benchmarks/attention.py --device cuda   # GPU: the 1.3B shapes, bf16, compiled FlexAttention

On CUDA the real shapes are used (12 heads x 128, chunks of 8x12x12 tokens; 480p, 1080p and 4K windows
with 3x5, 6x10 and 12x20 tiles); full attention beyond ``--max-full-tokens`` is skipped (its FLOPs are
still printed). On CPU each measurement runs in a fresh process and memory is the rise of its peak RSS.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.measure import masked_attention_flops, peak_rss_bytes, reset_peak_rss, rss_bytes  # noqa: E402
from ldf_vfi.models.attention import ChunkGrid, block_masks, prepare_mask, window_attention  # noqa: E402
from ldf_vfi.models.transformer import RELEASE_ATTENTION_TYPE  # noqa: E402

LOCAL_MASK = block_masks(RELEASE_ATTENTION_TYPE, 1)[0][0]


@dataclass(frozen=True)
class Shape:
    name: str
    tiles: tuple[int, int]  # (nH, nW)
    chunk_tokens: tuple[int, int, int]
    heads: int
    head_dim: int


CPU_SHAPES = [Shape("tiny 1x2 tiles", (1, 2), (4, 8, 8), 2, 64)]
GPU_SHAPES = [
    Shape("480p (3x5 tiles)", (3, 5), (8, 12, 12), 12, 128),
    Shape("1080p (6x10 tiles)", (6, 10), (8, 12, 12), 12, 128),
    Shape("4K (12x20 tiles)", (12, 20), (8, 12, 12), 12, 128),
]


def flops(shape: Shape, grid: ChunkGrid, mask) -> float:
    """Multiply-adds x 2 of q k^T and p v over the allowed (query, key) pairs."""
    return masked_attention_flops(mask, grid, shape.heads * shape.head_dim)


def _inputs(shape: Shape, grid: ChunkGrid, device: str, dtype: torch.dtype):
    g = torch.Generator(device=device).manual_seed(0)
    size = (1, shape.heads, grid.seq_len, shape.head_dim)
    return [torch.randn(size, generator=g, device=device, dtype=dtype) for _ in range(3)]


def _cpu_child(shape: Shape, grid: ChunkGrid, local: bool, repeats: int, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    q, k, v = _inputs(shape, grid, "cpu", torch.float32)
    mask = LOCAL_MASK if local else None
    prepare_mask(mask, grid, "local_sdpa", "cpu")  # the per-grid plan is cached; not part of the timing
    reset_peak_rss()
    base = rss_bytes()
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        with torch.no_grad():
            window_attention(q, k, v, mask, grid, "local_sdpa")
        times.append(time.perf_counter() - start)
    queue.put((min(times[1:]), max(0, peak_rss_bytes() - base)))


def measure_cpu(
    shape: Shape, grid: ChunkGrid, local: bool, repeats: int, threads: int
) -> tuple[float, float]:
    """Best time of ``repeats`` calls and the peak RSS rise, in a fresh process (clean allocator state)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_cpu_child, args=(shape, grid, local, repeats, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def measure_cuda(
    shape: Shape, grid: ChunkGrid, local: bool, repeats: int, threads: int
) -> tuple[float, float]:
    """Best time of ``repeats`` calls (after a compiling warm-up) and the peak allocated memory rise."""
    q, k, v = _inputs(shape, grid, "cuda", torch.bfloat16)
    mask = LOCAL_MASK if local else None
    with torch.no_grad():
        window_attention(
            q, k, v, mask, grid, "auto"
        )  # compiles FlexAttention for this shape, builds the mask
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        times = []
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            window_attention(q, k, v, mask, grid, "auto")
            stop.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(stop) / 1e3)
    return min(times), torch.cuda.max_memory_allocated() - base


def check(shape: Shape, grid: ChunkGrid, device: str, dtype: torch.dtype) -> float:
    """Max |local - dense masked reference| on one grid (the backends must agree)."""
    q, k, v = _inputs(shape, grid, device, dtype)
    with torch.no_grad():
        ours = window_attention(q, k, v, LOCAL_MASK, grid, "auto")
        ref = window_attention(q, k, v, LOCAL_MASK, grid, "dense")
    return float((ours.float() - ref.float()).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--frames", default=None, help="temporal chunks nT (default 1,2,4,8,16,24 CPU, 1,2,3,4,6 GPU)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed calls; the best is reported")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1: steadier on a shared machine)"
    )
    parser.add_argument("--max-full-tokens", type=int, default=300_000, help="skip full attention above")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    shapes = GPU_SHAPES if cuda else CPU_SHAPES
    frames = args.frames or ("1,2,3,4,6" if cuda else "1,2,4,8,16,24")
    measure = measure_cuda if cuda else measure_cpu
    dtype = torch.bfloat16 if cuda else torch.float32
    kernel = "FlexAttention (compiled), bf16" if cuda else "local_sdpa vs SDPA, fp32"
    print(f"device {args.device}: {kernel}; local = {RELEASE_ATTENTION_TYPE}")
    header = (
        f"{'window':<20}{'nT':>3}{'frames':>7}{'tokens':>10}{'local ms':>10}{'full ms':>10}{'full/local':>11}"
        f"{'local MB':>10}{'full MB':>10}{'ms/nT':>8}{'GFLOP full':>12}{'skipped':>9}"
    )
    for shape in shapes:
        small = ChunkGrid((4, min(shape.tiles[0], 2), min(shape.tiles[1], 3)), shape.chunk_tokens)
        print(
            f"\n{shape.name}: {shape.heads} heads x {shape.head_dim}, chunk {shape.chunk_tokens} tokens; "
            f"max |local - dense masked| = {check(shape, small, args.device, dtype):.2e}"
        )
        print(header)
        for nt in (int(n) for n in frames.split(",")):
            grid = ChunkGrid((nt, *shape.tiles), shape.chunk_tokens)
            f_full, f_local = flops(shape, grid, None), flops(shape, grid, LOCAL_MASK)
            t_local, m_local = measure(shape, grid, True, args.repeats, args.threads)
            if grid.seq_len <= args.max_full_tokens:
                t_full, m_full = measure(shape, grid, False, args.repeats, args.threads)
                full = f"{t_full * 1e3:>10.1f}{t_full / t_local:>11.2f}"
                full_mem = f"{m_full / 2**20:>10.1f}"
            else:
                full, full_mem = f"{'skipped':>10}{'-':>11}", f"{'-':>10}"
            print(
                f"{shape.name:<20}{nt:>3}{nt * shape.chunk_tokens[0]:>7}{grid.seq_len:>10}{t_local * 1e3:>10.1f}"
                f"{full}{m_local / 2**20:>10.1f}{full_mem}{t_local * 1e3 / nt:>8.1f}"
                f"{f_full / 1e9:>12.1f}{1 - f_local / f_full:>9.0%}"
            )


if __name__ == "__main__":
    main()
