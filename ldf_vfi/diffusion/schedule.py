"""The sampling time grid: diffusers' FlowMatch Euler scheduler set up to give the reference's grid exactly.

The reference integrates ``K`` Euler steps on ``t_i = s u_i / (1 + (s - 1) u_i)``, ``u_i = 1 - i/K`` computed
in float32. ``FlowMatchEulerDiscreteScheduler(shift=s)`` fed those ``u_i`` (``torch.linspace`` in float32, last
one dropped) reproduces that grid bit for bit; its default ``set_timesteps(K)`` does not.
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler


def make_scheduler(sampling_steps: int, t_shift: float) -> FlowMatchEulerDiscreteScheduler:
    """A scheduler whose ``sigmas`` are the reference grid (``K + 1`` values from 1 down to 0)."""
    if sampling_steps < 1:
        raise ValueError(f"sampling_steps must be positive, got {sampling_steps}")
    if t_shift <= 0:
        raise ValueError(f"t_shift must be positive, got {t_shift}")
    scheduler = FlowMatchEulerDiscreteScheduler(shift=t_shift)
    unshifted = torch.linspace(1.0, 0.0, sampling_steps + 1, dtype=torch.float32)[:-1]
    scheduler.set_timesteps(sigmas=unshifted.numpy())
    return scheduler


def sampling_time_grid(sampling_steps: int, t_shift: float) -> torch.Tensor:
    """The float32 noise levels ``t_0 = 1 > t_1 > ... > t_K = 0`` of the sampler."""
    return make_scheduler(sampling_steps, t_shift).sigmas.to(torch.float32).clone()
