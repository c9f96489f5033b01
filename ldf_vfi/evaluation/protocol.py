"""Which frames of a ground-truth sequence are inputs, which are scored, which feed FVD (spec 9).

The reference evaluates whole sequences: the low-frame-rate input is ``GT[::sf]``; a prediction is made
on the ``sf``-times denser timeline; PSNR / SSIM / LPIPS / FloLPIPS score only the interior frames of
*complete* blocks ``[k sf, (k + 1) sf]`` (both key frames present), and frames after the last key frame
(a tail with no closing key) are not scored (reference: calculate_metrics.py:183-225). With the usual
33-frame X4K clips at ``sf = 16``: inputs 0, 16, 32 and scored frames 1-15 and 17-31.

FVD runs on consecutive 16-frame sequences. Which frames, depends on the FVD mode:

- ``paper`` (the reference): *every* ground-truth frame, the tail after the last input included
  (calculate_fvd.py:118-119, 225-232). The reference's sampler fills ``N sf`` timeline slots and its eval
  scripts keep the first ``len(GT)`` of them (eval_snu_film.py:203), so the prediction must also cover the
  ``tail`` frames after the last input: the LDF model extrapolates them on its own timeline, other backends
  hold the last input frame (see :func:`ldf_vfi.evaluation.runner.predict`).
- ``interpolated``: only frames ``0 .. (N_in - 1) sf``, which every interpolator covers without extrapolating.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..metrics.fvd import fvd_windows


@dataclass(frozen=True)
class ClipPlan:
    """The protocol applied to one sequence of ``num_frames`` ground-truth frames at factor ``sf``.

    ``tail`` is the number of frames after the last input that the prediction must cover too (0, or all the
    ground truth has there in the ``paper`` FVD mode).
    """

    num_frames: int
    sf: int
    input_indices: tuple[int, ...]
    scored_indices: tuple[int, ...]
    tail: int = 0

    @property
    def prediction_length(self) -> int:
        """Frames the prediction holds, GT indices ``0 ..``: ``(N_in - 1) sf + 1``, plus ``tail``."""
        return (len(self.input_indices) - 1) * self.sf + 1 + self.tail

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


def plan_clip(num_frames: int, sf: int, name: str = "clip", whole_sequence: bool = False) -> ClipPlan:
    """Inputs ``0, sf, 2 sf, ...`` (``GT[::sf]``) and the scored interior frames of complete blocks;
    ``whole_sequence``: the prediction covers every ground-truth frame (``paper`` FVD mode).

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
    tail = num_frames - 1 - inputs[-1] if whole_sequence else 0
    return ClipPlan(num_frames=num_frames, sf=sf, input_indices=inputs, scored_indices=scored, tail=tail)


def contact_sheet_indices(plan: ClipPlan, rows: int = 3) -> list[int]:
    """Middle frames (the farthest from both inputs) of the first, a middle and the last complete block."""
    blocks = len(plan.input_indices) - 1
    picks = sorted({0, blocks // 2, blocks - 1})[:rows]
    return [plan.input_indices[b] + plan.sf // 2 for b in picks]


__all__ = ["ClipPlan", "contact_sheet_indices", "plan_clip"]
