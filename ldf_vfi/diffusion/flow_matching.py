"""Rectified flow with one noise level per chunk ("local diffusion forcing").

Conventions (the reference's): ``t`` in [0, 1] with ``t = 1`` pure noise; ``x_t = (1 - t) x0 + t eps``; the
network predicts the velocity ``v = eps - x0``; the loss is the plain mean squared error in fp32 over every
element. Noise levels live on the chunk grid ``(B, nT, nH, nW)`` and broadcast over a chunk's latent
``(C, t, h, w)``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

DIFFUSION_FORCING_MODES = ("temporal", "all")


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """The resolution shift ``s t / (1 + (s - 1) t)``: ``s > 1`` moves noise levels towards 1 (noisier)."""
    return shift * t / (1 + (shift - 1) * t)


def sample_noise_levels(
    chunk_grid: tuple[int, int, int, int],
    diffusion_forcing: Literal["temporal", "all"] = "temporal",
    t_shift: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Training noise levels, one per chunk, shape ``chunk_grid = (B, nT, nH, nW)``.

    ``t0 = sigmoid(u)``, ``u ~ N(0, 1)`` (logit-normal), drawn once per (sample, temporal chunk) and shared
    by its spatial tiles (``temporal``, the released recipe) or independently per chunk (``all``); then cast
    to ``dtype`` *before* the shift, as the reference does (bf16 training quantises ``t``), and shifted.
    """
    if diffusion_forcing not in DIFFUSION_FORCING_MODES:
        raise ValueError(
            f"diffusion_forcing must be one of {DIFFUSION_FORCING_MODES}, got {diffusion_forcing!r}"
        )
    batch, n_t, n_h, n_w = chunk_grid
    draw_shape = (batch, n_t, 1, 1) if diffusion_forcing == "temporal" else (batch, n_t, n_h, n_w)
    u = torch.randn(
        draw_shape, generator=generator, device=generator.device if generator is not None else device
    )
    t0 = u.sigmoid().expand(batch, n_t, n_h, n_w).contiguous()
    return shift_time(t0.to(dtype=dtype, device=device), t_shift)


def timestep_ids(t: torch.Tensor) -> torch.Tensor:
    """Integer timesteps fed to the DiT: ``floor(1000 t)`` computed in ``t``'s own dtype.

    In bf16 this truncates like the reference (t = 0.9917 -> 992, not 991), which the released weights saw.
    """
    return t.mul(1000).to(torch.long)


def _broadcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.reshape(*t.shape, *([1] * (like.dim() - t.dim())))


def interpolate_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``x_t = (1 - t) x0 + t noise`` with ``t`` of shape ``x0.shape[:k]`` broadcast over the rest."""
    w = _broadcast(t, x0).to(x0.dtype)
    return x0 * (1 - w) + noise * w


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """What the network learns to predict: ``noise - x0``."""
    return noise - x0


def flow_matching_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error in fp32 over all elements (every chunk, channel and padded border)."""
    return F.mse_loss(prediction.float(), target.float())
