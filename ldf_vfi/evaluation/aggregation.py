"""How per-frame values and FVD sequences become the reported numbers.

Two averagings of PSNR / SSIM / LPIPS (and FloLPIPS) per video, both followed by the unweighted mean over
videos (reference: calculate_metrics.py:318-322):

- ``paper``: the reference's arithmetic, as its launchers run it (``quick_start/eval_*.sh``:
  ``accelerate launch --num_processes=8 calculate_metrics.py`` with the default ``--batch-size 8``). Every
  process takes every 8th scored frame of the video, ``frames[rank::8]`` (calculate_metrics.py:292; a plain
  slice: no sampler, no padding or duplication of frames, nothing dropped); it scores its share in batches
  of 8 and keeps one mean per batch (calculate_metrics.py:124-142, metrics/cal_metrics.py:121, 128, 135); the
  sums of batch means and the batch counts are all-reduced, and the video's value is their quotient, i.e.
  the mean of all batch means of all processes (calculate_metrics.py:151-167). A short batch therefore
  weighs as much as a full one. Reproduced here for exactly 8 processes and batches of 8, whatever the
  number of processes this run uses, so the value is deterministic and the paper's.
- ``frame``: the plain mean over the scored frames.

FVD modes (see :mod:`ldf_vfi.evaluation.protocol` for the frames):

- ``paper``: every ground-truth frame; the sequences pooled in the order the reference's 8 processes
  gather them (videos in sorted name order dealt round-robin, ``videos[rank::8]``, then concatenated by
  rank: calculate_fvd.py:312-320, 361-373), which decides which 2048 are kept when there are more; Fréchet
  statistics in float32 (metrics/fvd/fvd.py:89-100 on float32 logits).
- ``interpolated``: frames ``0 .. (N_in - 1) sf`` only, sequences in dataset order, float64 statistics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

AVERAGINGS = ("paper", "frame")
FVD_MODES = ("paper", "interpolated")
REFERENCE_PROCESSES = 8  # quick_start/eval_snu_film.sh, eval_x4k.sh: --num_processes=8
REFERENCE_BATCH_SIZE = 8  # calculate_metrics.py:51 (the launchers keep the default)

AVERAGING_NOTES = {
    "paper": "per video the mean of batch-of-8 means over the reference's 8-process split "
    "(calculate_metrics.py), then the mean over videos",
    "frame": "per video the mean over scored frames, then the mean over videos",
}
FVD_NOTES = {
    "paper": "every ground-truth frame in 16-frame sequences (tail after the last input included), "
    "sequences in the reference's 8-process gather order, float32 statistics (calculate_fvd.py)",
    "interpolated": "frames 0..(N-1)*sf in 16-frame sequences, float64 statistics",
}
NOT_REFERENCE_NOTE = "not part of the reference protocol (its evaluation scripts do not compute it)"
NOT_REFERENCE_METRICS = ("flolpips", "ssim2d")


def check_choice(flag: str, value: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a one-line :class:`~ldf_vfi.errors.InputError`."""
    from ..errors import InputError

    if value not in choices:
        raise InputError(f"{flag} must be one of {', '.join(choices)}, got '{value}'")
    return value


def reference_video_mean(
    values: Sequence[float],
    processes: int = REFERENCE_PROCESSES,
    batch_size: int = REFERENCE_BATCH_SIZE,
) -> float:
    """A video's value as the reference's ``calculate_metrics.py`` reports it (see the module docstring):
    ``values`` are the per-frame values in frame order. ``nan`` without frames."""
    batch_means = []
    for rank in range(processes):
        share = list(values[rank::processes])
        for start in range(0, len(share), batch_size):
            batch = share[start : start + batch_size]
            batch_means.append(_mean(batch))
    return _mean(batch_means)


def _mean(values: Sequence[float]) -> float:
    """Plain mean (``inf`` for a perfect frame stays ``inf``), ``nan`` for no values."""
    if not values:
        return float("nan")
    if all(math.isfinite(v) for v in values):
        return math.fsum(values) / len(values)
    return sum(values) / len(values)


def video_mean(values: Sequence[float], averaging: str) -> float:
    """A video's value from its per-frame ``values`` (frame order) under ``averaging``."""
    if averaging == "paper":
        return reference_video_mean(values)
    if averaging == "frame":
        return _mean(list(values))
    raise ValueError(f"unknown averaging '{averaging}'")


def reference_fvd_order(clip_ids: Sequence[str], processes: int = REFERENCE_PROCESSES) -> list[str]:
    """The order in which the reference's processes gather the videos' FVD sequences."""
    ordered = sorted(clip_ids)
    return [clip for rank in range(processes) for clip in ordered[rank::processes]]


def fvd_dtype(fvd_mode: str) -> torch.dtype:
    return torch.float32 if fvd_mode == "paper" else torch.float64


__all__ = [
    "AVERAGINGS",
    "AVERAGING_NOTES",
    "FVD_MODES",
    "FVD_NOTES",
    "NOT_REFERENCE_METRICS",
    "NOT_REFERENCE_NOTE",
    "REFERENCE_BATCH_SIZE",
    "REFERENCE_PROCESSES",
    "check_choice",
    "fvd_dtype",
    "reference_fvd_order",
    "reference_video_mean",
    "video_mean",
]
