"""Speed and memory of one DiT training step (run by hand; not a test).

    python benchmarks/train_step.py                              # tiny config on the CPU
    python benchmarks/train_step.py --config release             # the 1.3B DiT at 480p (a GPU), grad checkpointing
    python benchmarks/train_step.py --config release --batch_gpu 2 --height 512 --width 512   # the released crop

A step is what ``train.py`` does per micro-batch: the frozen tiled VAE encodes GT and LQ clips (spec 2), noise
and per-chunk levels are drawn, the DiT runs forward and backward, AdamW steps; bf16 autocast over fp32 weights
on a GPU (accelerate's ``--mixed_precision bf16``), fp32 on the CPU. Clips are random uint8 tensors (decoding is
the data loader's job: ``--data INDEX`` also times the clip sampler on an indexed dataset, one process). Reported: seconds per step by phase, samples/s, peak memory
(CUDA allocator peak, or the process's peak RSS on the CPU) and, on CUDA, the model FLOPs utilisation of the
DiT part against ``--peak_tflops`` (790 bf16 TFLOP/s by default, an H100-class dense figure). Model FLOPs count
3x the forward matmuls (forward + backward) of the projections, FFNs and the attention pairs the 2x1x1 mask
allows, not the recomputation of gradient checkpointing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks.measure import dit_forward_flops, peak_memory_gib, sync  # noqa: E402
from ldf_vfi.data.clips import ClipDataset, ClipOptions  # noqa: E402
from ldf_vfi.data.lavib import read_index  # noqa: E402
from ldf_vfi.models.attention import ChunkGrid  # noqa: E402
from ldf_vfi.models.tiling import TilingConfig, chunk_grid  # noqa: E402
from ldf_vfi.models.transformer import RELEASE_ATTENTION_TYPE, LDFTransformer3DModel, tiny_config  # noqa: E402
from ldf_vfi.models.vae import WanVAE  # noqa: E402
from ldf_vfi.models.vae import tiny_config as vae_tiny_config  # noqa: E402
from ldf_vfi.training.dit import LatentEncoder, draw_noise, velocity_loss  # noqa: E402
from ldf_vfi.training.loop import keyed_generator  # noqa: E402

PRESETS = {
    # The tests' tiny DiT (a little wider than tiny_config()) and tiny VAE, 64x64 clips of 15 frames.
    "tiny": dict(
        height=64,
        width=64,
        num_frames=15,
        batch_gpu=2,
        tiling=TilingConfig(48, 48, 32, 32, 5, 8),
        dit=tiny_config(attention_head_dim=32, ffn_dim=128),
        vae=vae_tiny_config(),
    ),  # fmt: skip
    # The released model and tiling; 480p (854 is not a multiple of 8, so 480x832, the common 480p crop).
    "release": dict(height=480, width=832, num_frames=60, batch_gpu=1, tiling=TilingConfig(), dit={}, vae={}),
}


def dit_model_flops(model: LDFTransformer3DModel, grid: ChunkGrid, batch: int) -> float:
    """Training FLOPs (3x forward) of the DiT's matmuls for ``batch`` windows of ``grid``."""
    return 3.0 * dit_forward_flops(model.config, grid, batch)


def run(args: argparse.Namespace) -> dict:
    preset = PRESETS[args.config]
    device = torch.device(
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    height, width = args.height or preset["height"], args.width or preset["width"]
    frames, batch = args.num_frames or preset["num_frames"], args.batch_gpu or preset["batch_gpu"]
    tiling = preset["tiling"]
    amp = device.type == "cuda"
    dtype = torch.bfloat16 if amp else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        dit = LDFTransformer3DModel(**{**preset["dit"], "attention_type": RELEASE_ATTENTION_TYPE})
        vae = WanVAE(**preset["vae"])
    vae.to(dtype)
    if not args.no_grad_checkpoint:
        dit.enable_gradient_checkpointing()
    dit.train()
    encoder = LatentEncoder(vae, tiling, dtype)
    optimizer = torch.optim.AdamW(dit.parameters(), lr=1e-5, betas=(0.95, 0.999), weight_decay=1e-6)
    nt, nh, nw = chunk_grid(frames, height, width, tiling)
    grid = ChunkGrid((nt, nh, nw), (tiling.latent_frames, *(s // 2 for s in tiling.latent_stride)))
    gt = torch.randint(0, 256, (batch, 3, frames, height, width), dtype=torch.uint8, device=device)
    lq_source = (torch.arange(frames, device=device) // 4 * 4).expand(batch, -1)
    mask = (torch.arange(frames, device=device) % 4 == 0).expand(batch, -1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = peak_memory_gib(device)
    times = {"encode": [], "dit": [], "step": []}
    for step in range(args.warmup + args.steps):
        sync(device)
        start = time.perf_counter()
        x0, y, m = encoder(gt, lq_source, mask)
        generators = [keyed_generator(0, step * batch + i, 0, device=device) for i in range(batch)]
        noise, t = draw_noise(x0, generators, "temporal", 5.0)
        sync(device)
        encoded = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = velocity_loss(dit, x0, y, m, noise, t)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dit.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        done = time.perf_counter()
        if step >= args.warmup:
            times["encode"].append(encoded - start)
            times["dit"].append(done - encoded)
            times["step"].append(done - start)
    mean = {k: sum(v) / len(v) for k, v in times.items()}
    flops = dit_model_flops(dit, grid, batch)
    result = {
        "config": args.config,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "clip": f"{batch} x {frames} x {height} x {width}",
        "chunks": f"{nt} x {nh} x {nw} ({grid.num_chunks * grid.tokens_per_chunk} tokens per window)",
        "dit_parameters": sum(p.numel() for p in dit.parameters()),
        "grad_checkpoint": not args.no_grad_checkpoint,
        "seconds_encode": mean["encode"],
        "seconds_dit": mean["dit"],
        "seconds_step": mean["step"],
        "samples_per_second": batch / mean["step"],
        "dit_model_tflops_per_step": flops / 1e12,
        "peak_memory_gib": peak_memory_gib(device),
        "final_loss": loss.item(),
    }
    if device.type == "cuda":
        result["dit_mfu"] = flops / mean["dit"] / (args.peak_tflops * 1e12)
    if args.data:
        options = ClipOptions(num_frames=frames, pn=f"{height}x{width}", temporal_sf=tuple(range(2, 17)))
        dataset = ClipDataset(read_index(args.data), options)
        start = time.perf_counter()
        for position in range(args.steps * batch):
            dataset[(position, position % len(dataset))]
        result["data_samples_per_second"] = args.steps * batch / (time.perf_counter() - start)
    else:
        result["peak_rss_growth_gib"] = result["peak_memory_gib"] - rss_before
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--num_frames", type=int, default=None)
    parser.add_argument("--batch_gpu", type=int, default=None)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no_grad_checkpoint", action="store_true")
    parser.add_argument(
        "--peak_tflops", type=float, default=790.0, help="dense bf16 peak of the GPU for the MFU"
    )
    parser.add_argument(
        "--data", default=None, help="an index (data_tools.py --dst) to time the clip sampler on"
    )
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    result = run(args)
    for key, value in result.items():
        print(f"{key:28s} {value:.4g}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
