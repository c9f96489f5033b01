"""Which frames of a ground-truth sequence are inputs, which are scored, which feed FVD (spec 9).

The reference evaluates whole sequences: the low-frame-rate input is ``GT[::sf]``; a prediction is made
on the ``sf``-times denser timeline; PSNR / SSIM / LPIPS / FloLPIPS score only the interior frames of
*complete* blocks ``[k sf, (k + 1) sf]`` (both key frames present), and frames after the last key frame
(a tail with no closing key) are not scored. With the usual 33-frame X4K clips at ``sf = 16``: inputs
0, 16, 32 and scored frames 1-15 and 17-31.

A prediction therefore only needs to cover frames ``0 .. (N_in - 1) sf``: that is exactly what every
backend returns for ``N_in`` inputs, ``(N_in - 1) sf + 1`` frames. FVD runs on consecutive 16-frame
sequences of that covered range (key frames included; the reference also counted generated frames past
the last key, which no interpolator can know).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..metrics.fvd import fvd_windows


@dataclass(frozen=True)
class ClipPlan:
    """The protocol applied to one sequence of ``num_frames`` ground-truth frames at factor ``sf``."""

    num_frames: int
    sf: int
    input_indices: tuple[int, ...]
    scored_indices: tuple[int, ...]

    @property
    def prediction_length(self) -> int:
        """Frames a backend returns for the inputs: ``(N_in - 1) sf + 1``, GT indices ``0 ..``."""
        return (len(self.input_indices) - 1) * self.sf + 1

    def block_keys(self, index: int) -> tuple[int, int]:
        """The two key (input) frames around a scored frame: ``(b, b + sf)``."""
        start = (index // self.sf) * self.sf
        return start, start + self.sf

    def nearest_key(self, index: int) -> int:
        """The input frame that frame repetition would show at ``index`` (ties go to the earlier key)."""
        start, end = self.block_keys(index)
        return start if index - start <= end - index else end

    def fvd_windows(self, length: int) -> list[range]:
        return fvd_windows(self.prediction_length, length)


def plan_clip(num_frames: int, sf: int, name: str = "clip") -> ClipPlan:
    """Inputs ``0, sf, 2 sf, ...`` (``GT[::sf]``) and the scored interior frames of complete blocks.

    A sequence needs ``sf + 1`` frames for one complete block; fewer is an :class:`InputError`.
    """
    if sf < 2:
        raise InputError(f"--temporal_sf must be at least 2 for evaluation (no frame to score at {sf})")
    if num_frames < sf + 1:
        raise InputError(
            f"{name} has {num_frames} frame(s); --temporal_sf {sf} needs at least {sf + 1} (one input pair and the frames between)"
        )
    inputs = tuple(range(0, num_frames, sf))
    scored = tuple(j for start in inputs[:-1] for j in range(start + 1, start + sf))
    return ClipPlan(num_frames=num_frames, sf=sf, input_indices=inputs, scored_indices=scored)


def contact_sheet_indices(plan: ClipPlan, rows: int = 3) -> list[int]:
    """Middle frames (the farthest from both inputs) of the first, a middle and the last complete block."""
    blocks = len(plan.input_indices) - 1
    picks = sorted({0, blocks // 2, blocks - 1})[:rows]
    return [plan.input_indices[b] + plan.sf // 2 for b in picks]


__all__ = ["ClipPlan", "contact_sheet_indices", "plan_clip"]
