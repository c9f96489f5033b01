"""Flow-matching maths: the sampling grid, the bf16 timestep ids and the per-chunk noise levels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from ldf_vfi.diffusion import (
    flow_matching_loss,
    interpolate_noise,
    make_scheduler,
    sample_noise_levels,
    sampling_time_grid,
    shift_time,
    timestep_ids,
    velocity_target,
)


def reference_grid(steps: int, shift: float) -> np.ndarray:
    """The reference's formula, in its float32 arithmetic (torch.linspace, then numpy)."""
    u = torch.linspace(1.0, 0.0, steps=steps + 1).numpy()
    return shift * u / (1 + (shift - 1) * u)


@pytest.mark.parametrize("steps, shift", [(16, 8), (2, 8), (4, 5), (8, 1), (16, 5), (100, 1), (50, 3.0)])
def test_grid_equals_reference_formula_bit_for_bit(steps, shift):
    grid = sampling_time_grid(steps, shift)
    expected = reference_grid(steps, shift)
    assert grid.dtype == torch.float32 and expected.dtype == np.float32
    np.testing.assert_array_equal(grid.numpy(), expected)
    assert grid[0] == 1.0 and grid[-1] == 0.0 and bool((grid[1:] < grid[:-1]).all())


def test_grid_for_released_settings_and_step_sizes():
    grid = sampling_time_grid(16, 8)
    published = [1.0, 0.9917, 0.9825, 0.9720, 0.9600, 0.9462, 0.9302, 0.9114, 0.8889, 0.8615, 0.8276,
                 0.7843, 0.7273, 0.6486, 0.5333, 0.3478, 0.0]  # fmt: skip
    np.testing.assert_allclose(grid.numpy(), published, atol=5e-5)
    assert grid[1].item() == pytest.approx(0.9917355179786682, abs=0)
    scheduler = make_scheduler(16, 8)
    sample = torch.zeros(3)
    velocity = torch.ones(3)
    for timestep in scheduler.timesteps:  # diffusers' Euler step is x + v (t_{i+1} - t_i)
        sample = scheduler.step(velocity, timestep, sample).prev_sample
    assert sample[0].item() == pytest.approx(-1.0, abs=1e-6)


def test_bf16_timestep_ids_match_the_released_sampler():
    grid = sampling_time_grid(16, 8)[:-1]
    ids = timestep_ids(grid.to(torch.bfloat16))
    assert ids.tolist() == [1000, 992, 984, 972, 960, 944, 928, 912, 892, 864, 828, 784, 728, 648, 536, 348]
    assert timestep_ids(grid).tolist()[:4] == [1000, 991, 982, 971]  # fp32 would differ
    assert timestep_ids(torch.tensor([0.1], dtype=torch.bfloat16)).item() == 100


def test_noise_levels_temporal_share_tiles_and_follow_shifted_logit_normal():
    generator = torch.Generator().manual_seed(0)
    t = sample_noise_levels((4000, 3, 2, 2), "temporal", t_shift=5.0, generator=generator)
    assert t.shape == (4000, 3, 2, 2)
    assert torch.equal(t, t[:, :, :1, :1].expand_as(t))  # one level per (sample, temporal chunk)
    assert not torch.equal(t[:, 0], t[:, 1])
    # Undo the shift and the sigmoid: the draws must be standard normal (KS test on 12k draws).
    t0 = t[:, :, 0, 0].flatten().double()
    t0 = t0 / (5.0 - 4.0 * t0)  # inverse of s t / (1 + (s - 1) t)
    u = torch.logit(t0).numpy()
    assert stats.kstest(u, "norm").pvalue > 1e-3
    # Statements of the spec: median 0.833, P(t < 0.5) about 5.4 %.
    assert float(t.median()) == pytest.approx(5 * 0.5 / (1 + 4 * 0.5), abs=0.01)
    assert float((t < 0.5).double().mean()) == pytest.approx(0.054, abs=0.01)


def test_noise_levels_all_mode_is_independent_per_chunk():
    t = sample_noise_levels((500, 2, 3, 3), "all", generator=torch.Generator().manual_seed(1))
    assert not torch.equal(t[:, :, 0, 0], t[:, :, 1, 1])
    corr = np.corrcoef(t[:, 0, 0, 0].numpy(), t[:, 0, 1, 1].numpy())[0, 1]
    assert abs(corr) < 0.15
    with pytest.raises(ValueError, match="diffusion_forcing"):
        sample_noise_levels((1, 1, 1, 1), "frame")


def test_interpolation_target_and_loss():
    x0 = torch.randn(2, 3, 1, 1, 4, 2, 2, 2)
    noise = torch.randn_like(x0)
    t = torch.tensor([[[[0.0]], [[0.5]], [[1.0]]], [[[0.25]], [[0.25]], [[0.25]]]])
    xt = interpolate_noise(x0, noise, t)
    torch.testing.assert_close(xt[0, 0], x0[0, 0])
    torch.testing.assert_close(xt[0, 2], noise[0, 2])
    torch.testing.assert_close(xt[1, 1], 0.75 * x0[1, 1] + 0.25 * noise[1, 1])
    v = velocity_target(x0, noise)
    torch.testing.assert_close(xt + (0 - t.reshape(2, 3, 1, 1, 1, 1, 1, 1)) * v, x0)  # one exact Euler jump
    assert flow_matching_loss(v, v).item() == 0.0
    assert flow_matching_loss(v.half(), torch.zeros_like(v)).dtype == torch.float32
    assert shift_time(torch.tensor(0.5), 1.0).item() == 0.5
