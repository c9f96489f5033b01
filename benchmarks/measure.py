"""What the benchmarks measure with: FLOPs the LDF masks keep, peak memory, process memory on Linux.

One copy of each, shared by ``attention.py``, ``train_step.py``, ``sampler.py``, ``vae.py``, ``gpu_check.py``
and ``real_size_smoke.py``. FLOPs count multiply-adds x 2 of the matmuls only: the projections and FFNs of
every token, the patch embedding and output head, and ``q k^T`` plus ``p v`` over the (query, key) pairs the
block's mask allows; elementwise work (norms, RoPE, softmax) is not counted.
"""

from __future__ import annotations

import math
import resource
from typing import Any

import torch

from ldf_vfi.models.attention import ChunkGrid, Mask, block_masks, chunk_adjacency

GIB = 1024**3


def attention_pairs(mask: Mask, grid: ChunkGrid) -> int:
    """(query, key) token pairs ``mask`` allows on ``grid`` (exact for chunk masks, as the released one)."""
    return int(chunk_adjacency(mask, grid)[0].sum()) * grid.tokens_per_chunk**2


def masked_attention_flops(mask: Mask, grid: ChunkGrid, width: int, batch: int = 1) -> float:
    """Forward FLOPs of one attention (``q k^T`` and ``p v``, all heads: ``width = heads * head_dim``)."""
    return 4.0 * attention_pairs(mask, grid) * width * batch


def dit_forward_flops(config: Any, grid: ChunkGrid, batch: int = 1) -> float:
    """Forward FLOPs of the LDF DiT (its diffusers ``config``) on ``batch`` windows of ``grid``."""
    width = config.num_attention_heads * config.attention_head_dim
    tokens = grid.seq_len
    patch = math.prod(config.patch_size)
    per_token = 2 * (8 * width**2 + 2 * width * config.ffn_dim)  # attn1 + attn2 projections, FFN
    flops = tokens * (
        config.num_layers * per_token + 2 * patch * (config.in_channels + config.out_channels) * width
    )
    for mask1, mask2 in block_masks(config.attention_type, config.num_layers):
        flops += masked_attention_flops(mask1, grid, width) + masked_attention_flops(mask2, grid, width)
    return flops * batch


def mask_density(mask: Mask, grid: ChunkGrid) -> float:
    """Fraction of the ``S x S`` (query, key) pairs the mask keeps."""
    return attention_pairs(mask, grid) / grid.seq_len**2


def sync(device: torch.device) -> None:
    """Wait for queued kernels, so a wall-clock interval covers the work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gib(device: torch.device) -> float:
    """CUDA allocator peak since the last reset, or the process's peak resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / GIB
    # VmHWM honours reset_peak_rss; ru_maxrss (KiB on Linux) is the fallback elsewhere
    return (peak_rss_bytes() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / GIB


def reset_peak_memory(device: torch.device) -> None:
    """Restart :func:`peak_memory_gib` from what is held now (CUDA stats, or the Linux peak RSS)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` value in KiB (``VmRSS``, ``VmHWM``, ``RssAnon``...); 0 where absent."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes() -> int:
    """Current resident set size."""
    return status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size (``VmHWM``) since the process started or :func:`reset_peak_rss`."""
    return status_kib("VmHWM") * 1024


def reset_peak_rss() -> None:
    """Linux: make the peak RSS (VmHWM) restart from the current RSS (``clear_refs`` value 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # not Linux, or not allowed: the peak then covers the whole process
        pass


def tiny_ldf_pipeline(sampling_steps: int):
    """The LDF pipeline on the tiny random models (30-frame windows of 10-frame chunks, 48/32-px tiles) that
    the CPU runs of ``sampler.py`` and ``shot_cost.py`` time: the real schedule, toy arithmetic."""
    from ldf_vfi.models.transformer import LDFTransformer3DModel, tiny_config
    from ldf_vfi.models.vae import tiny_vae
    from ldf_vfi.pipelines.ldf import LDFSettings, LDFVFIPipeline

    torch.manual_seed(0)
    settings = LDFSettings.from_options(
        dict(num_frames=30, tile_min_t=10, tile_min_h=48, tile_min_w=48, tile_stride_h=32, tile_stride_w=32,
             vae_batch_size=8, sampling_steps=sampling_steps)
    )  # fmt: skip
    transformer = LDFTransformer3DModel(**tiny_config(attention_type="slide_chunk_all_block_2x1x1"))
    return LDFVFIPipeline(transformer, tiny_vae(conditional=True), settings, progress=False)
