"""Benchmark (not a test): time and peak memory of tiled vs untiled VAE encode/decode as resolution grows.

Claim under test: with LDF-VFI's tiling (``ldf_vfi.models.tiling``) the working memory of encode/decode is
flat in resolution (only the output tensor grows), while untiled coding grows with the frame area.

Two setups, picked by ``--device`` (``auto``: CUDA when available):

* CPU: a small random ``WanVAE`` (``--base-dim``, default 8), fp32, tiles 64/48 px, one 5-frame group,
  square frames of ``--sizes`` pixels. Peak memory = peak resident set size during the call (Linux
  ``VmHWM``, reset through ``/proc/self/clear_refs``) minus the RSS before it.
* CUDA: the released config (random weights, or ``--weights Wan2.1_VAE.pth``), bf16, the released tiles
  256/192, one 20-frame chunk (4 groups, ``vae_batch_size`` 16), at 1080p and 4K by default
  (``--sizes 1920x1080,3840x2160``). Peak memory = ``torch.cuda.max_memory_allocated`` minus the memory
  allocated before the call. Untiled runs that do not fit are reported as OOM.

Every measurement runs in a fresh subprocess, so allocator caches of one run cannot hide the peak of the
next. "work" = peak - output size: the memory the call needs beyond its result. On CPU the workers map every
block >= 64 KiB separately (see ``_WORKER_ENV``) so RSS follows live memory; that costs time, so CPU timings
are pessimistic, most of all for the many small allocations of tiled runs. Compare times on a GPU.

    python benchmarks/vae.py                      # CPU defaults
    python benchmarks/vae.py --sizes 128,256,512 --threads 1
    python benchmarks/vae.py --device cuda        # GPU: real config at 1080p and 4K
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# Make glibc map every block >= 64 KiB on its own and unmap it on free, so the resident set follows the live
# tensors (with its default, adaptive threshold, freed tensors stay resident and fragment the heap: RSS then
# grows with the number of tiles processed, not with what is alive).
_WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}


def _release_freed_memory() -> None:
    """Hand memory that glibc keeps after ``free`` back to the OS, so it cannot absorb the next peak."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _parse_size(text: str) -> tuple[int, int]:
    """``"512"`` -> (512, 512); ``"1920x1080"`` -> (height 1080, width 1920)."""
    if "x" in text:
        width, height = (int(v) for v in text.split("x"))
        return height, width
    return int(text), int(text)


def worker(args: argparse.Namespace) -> dict:
    """One measurement in this process: build the model and input, run one op once, report."""
    import torch

    sys.path.insert(0, str(ROOT))
    from benchmarks.measure import peak_rss_bytes, reset_peak_rss, rss_bytes
    from ldf_vfi.models import tiling
    from ldf_vfi.models.vae import WanVAE, tiny_config

    cuda = args.device == "cuda"
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.weights:
        vae = WanVAE.from_original(args.weights, conditional=args.conditional, dtype=dtype, device=device)
    elif cuda:
        vae = WanVAE(conditional=args.conditional).to(device=device, dtype=dtype)
    else:
        vae = WanVAE(**tiny_config(base_dim=args.base_dim, num_res_blocks=2, conditional=args.conditional))
    vae.eval().requires_grad_(False)
    if cuda:
        cfg = tiling.TilingConfig(tile_min_t=args.frames, vae_batch_size=args.vae_batch_size)
    else:
        cfg = tiling.TilingConfig(
            tile_min_h=64, tile_min_w=64, tile_stride_h=48, tile_stride_w=48, tile_min_t=args.frames,
            vae_batch_size=args.vae_batch_size,
        )  # fmt: skip

    height, width = args.size
    r = cfg.spatial_compression_ratio
    frames = args.frames
    condition = mask = None

    def run(h: int, w: int):
        nonlocal condition, mask
        if args.op == "encode":
            x = torch.rand(1, 3, frames, h, w, device=device, dtype=dtype) * 2 - 1
            if args.mode == "tiled":
                return lambda: vae.tiled_encode(x, cfg, layout="stitched")
            return lambda: tiling.untiled_encode(vae.encode, x, cfg)
        if args.mode == "tiled":
            lat_h, lat_w = tiling.latent_canvas(h, w, cfg)
        else:
            lat_h, lat_w = h // r, w // r
        z = torch.randn(1, 1, 16, frames // 5 * 2, lat_h, lat_w, device=device, dtype=dtype)
        if args.conditional:
            condition = torch.rand(1, 3, frames, h, w, device=device, dtype=dtype) * 2 - 1
            mask = torch.ones(1, frames, device=device, dtype=dtype)
        if args.mode == "tiled":
            return lambda: vae.tiled_decode(z, cfg, condition=condition, mask=mask)
        return lambda: tiling.untiled_decode(vae._group_decoder(), z, cfg, condition=condition, mask=mask)

    with torch.inference_mode():
        run(64, 64)()  # warm-up: kernels, lazy init
        op = run(height, width)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        else:
            _release_freed_memory()
            before = rss_bytes()
            reset_peak_rss()
        start = time.perf_counter()
        try:
            out = op()
            if cuda:
                torch.cuda.synchronize()
        except torch.cuda.OutOfMemoryError:
            return {"oom": True}
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() if cuda else peak_rss_bytes()
    return {
        "seconds": seconds,
        "peak_bytes": peak - before,
        "output_bytes": out.numel() * out.element_size(),
        "output_shape": list(out.shape),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--sizes", default=None, help="comma list: 256 or WIDTHxHEIGHT")
    parser.add_argument("--ops", default="encode,decode")
    parser.add_argument("--modes", default="tiled,untiled")
    parser.add_argument("--frames", type=int, default=None, help="one temporal chunk (CPU 5, CUDA 20)")
    parser.add_argument("--vae-batch-size", type=int, default=16)
    parser.add_argument("--base-dim", type=int, default=8, help="CPU model width")
    parser.add_argument("--conditional", action="store_true", help="decode with the conditional decoder")
    parser.add_argument("--weights", default=None, help="Wan2.1 VAE .pth (else random weights)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        spec = json.loads(args.worker)
        vars(args).update(spec, size=tuple(spec["size"]))
        print(json.dumps(worker(args)))
        return

    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = args.device == "cuda"
    sizes = args.sizes or ("1920x1080,3840x2160" if cuda else "128,256,384,512")
    frames = args.frames or (20 if cuda else 5)
    rows = []
    for size_text in sizes.split(","):
        for op in args.ops.split(","):
            for mode in args.modes.split(","):
                spec = dict(
                    device=args.device, size=_parse_size(size_text), op=op, mode=mode, frames=frames,
                    vae_batch_size=args.vae_batch_size, base_dim=args.base_dim, conditional=args.conditional,
                    weights=args.weights, threads=args.threads,
                )  # fmt: skip
                proc = subprocess.run(
                    [sys.executable, __file__, "--worker", json.dumps(spec)],
                    capture_output=True, text=True, env={**os.environ, **_WORKER_ENV, "PYTHONPATH": str(ROOT)},
                )  # fmt: skip
                if proc.returncode:
                    result = {"error": proc.stderr.strip().splitlines()[-1:]}
                else:
                    result = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append({"size": size_text, "op": op, "mode": mode, **result})
                _print_row(rows[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def _print_row(row: dict) -> None:
    mib = 2**20
    head = f"{row['op']:>6} {row['mode']:>7} {row['size']:>10}"
    if "seconds" in row:
        work = (row["peak_bytes"] - row["output_bytes"]) / mib
        print(
            f"{head}  {row['seconds']:8.2f} s  peak {row['peak_bytes'] / mib:9.1f} MiB  "
            f"output {row['output_bytes'] / mib:8.1f} MiB  work {work:9.1f} MiB",
            flush=True,
        )
    else:
        print(f"{head}  {'OOM' if row.get('oom') else row.get('error')}", flush=True)


if __name__ == "__main__":
    main()
