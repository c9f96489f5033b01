"""Flow-matching maths shared by training and sampling (REFERENCE_SPEC sections 4 and 5.1/5.4)."""

from .flow_matching import (
    DIFFUSION_FORCING_MODES,
    flow_matching_loss,
    interpolate_noise,
    sample_noise_levels,
    shift_time,
    timestep_ids,
    velocity_target,
)
from .schedule import make_scheduler, sampling_time_grid

__all__ = [
    "DIFFUSION_FORCING_MODES",
    "flow_matching_loss",
    "interpolate_noise",
    "make_scheduler",
    "sample_noise_levels",
    "sampling_time_grid",
    "shift_time",
    "timestep_ids",
    "velocity_target",
]
