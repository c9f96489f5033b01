"""The temporal side of LDF-VFI's data: which frames a low-frame-rate input keeps, and how the missing ones
are filled before encoding (REFERENCE_SPEC 5.2 and 7.1).

Training and sampling share one rule. A window of ``T`` output slots holds the input frames at the slots where
``mask`` is True; every slot is then filled with the *nearest* input frame (smallest slot distance, a tie goes
to the earlier frame, slots before the first / after the last input frame copy it). Training degrades a clip
by keeping every ``sf``-th frame from a random phase; the sampler builds the mask from the input's frame
positions on the output timeline. Both call :func:`nearest_fill_indices`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "degradation_mask",
    "nearest_fill_indices",
    "nearest_fill_slots",
    "parse_int_list",
    "sample_degradation",
    "upsample_temporal",
]

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def parse_int_list(text: str | Sequence[int]) -> list[int]:
    """``"2,4,8-10"`` -> ``[2, 4, 8, 9, 10]`` (the reference's list syntax for ``--temporal_sf``).

    Ranges are inclusive; repeated values are kept, so ``"2,2,4"`` draws 2 twice as often as 4. Raises
    ``ValueError`` with the offending part for anything else (empty parts, descending ranges, non-integers).
    """
    if not isinstance(text, str):
        return [int(v) for v in text]
    values: list[int] = []
    for part in text.split(","):
        match = _RANGE.match(part)
        if match:
            low, high = int(match.group(1)), int(match.group(2))
            if high < low:
                raise ValueError(f"descending range '{part.strip()}' in '{text}'")
            values.extend(range(low, high + 1))
            continue
        try:
            values.append(int(part))
        except ValueError:
            raise ValueError(f"'{part.strip()}' in '{text}' is neither an integer nor a range a-b") from None
    return values


def _as_bool_array(mask) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    array = np.asarray(mask)
    if array.ndim != 1:
        raise ValueError(f"mask must be one-dimensional (one flag per slot), got shape {array.shape}")
    return array.astype(bool)


def nearest_fill_indices(mask) -> np.ndarray:
    """For every slot of ``mask`` (1-D, True = an input frame sits there), the index *among the input frames*
    (0 = the first True slot) of the frame that fills it.

    The nearest input frame wins; on a tie the earlier one does; slots before the first or after the last
    input frame take that frame. Equals ``argmin_j |slot - kept_j|`` with ``argmin``'s first-occurrence rule,
    which is what the reference computes. Raises ``ValueError`` when no slot is kept.
    """
    flags = _as_bool_array(mask)
    kept = np.flatnonzero(flags)
    if kept.size == 0:
        raise ValueError("mask keeps no frame: at least one slot must hold an input frame")
    slots = np.arange(flags.size)
    after = np.searchsorted(kept, slots, side="left")  # first kept slot >= slot
    before = np.clip(after - 1, 0, kept.size - 1)
    after = np.clip(after, 0, kept.size - 1)
    take_before = (slots - kept[before]) <= (kept[after] - slots)
    # Before the first kept slot both indices are 0; past the last one both are the last: either is right.
    return np.where(take_before, before, after).astype(np.int64)


def nearest_fill_slots(mask) -> np.ndarray:
    """For every slot, the *slot* whose input frame fills it: ``kept_slots[nearest_fill_indices(mask)]``.

    With a fully known clip (training), ``frames[nearest_fill_slots(mask)]`` is the nearest-upsampled
    low-frame-rate clip without materialising the kept frames first.
    """
    flags = _as_bool_array(mask)
    return np.flatnonzero(flags)[nearest_fill_indices(flags)]


def upsample_temporal(frames: torch.Tensor, mask, dim: int = 0) -> torch.Tensor:
    """Nearest temporal upsampling: ``frames`` holds the kept frames (``mask.sum()`` of them along ``dim``), the
    result has ``len(mask)`` frames along ``dim``, each slot filled by :func:`nearest_fill_indices`."""
    indices = nearest_fill_indices(mask)
    kept = int(_as_bool_array(mask).sum())
    if frames.shape[dim] != kept:
        raise ValueError(f"{frames.shape[dim]} frames along dim {dim} for a mask that keeps {kept}")
    return frames.index_select(dim, torch.from_numpy(indices).to(frames.device))


def degradation_mask(num_frames: int, sf: int, phase: int) -> np.ndarray:
    """The frames a low-frame-rate version keeps: ``phase, phase + sf, phase + 2 sf, ...`` of ``num_frames``."""
    if sf < 1:
        raise ValueError(f"temporal scale factor must be >= 1, got {sf}")
    if not 0 <= phase < num_frames:
        raise ValueError(f"phase {phase} is outside a clip of {num_frames} frames")
    mask = np.zeros(num_frames, dtype=bool)
    mask[phase::sf] = True
    return mask


def sample_degradation(
    rng: np.random.Generator, num_frames: int, temporal_sf: Sequence[int]
) -> tuple[int, int, np.ndarray]:
    """Draw ``(sf, phase, mask)`` as the reference's training does: ``sf`` uniform over the ``temporal_sf``
    list, ``phase`` uniform in ``[0, min(sf - 1, num_frames - 1)]``."""
    sf = int(temporal_sf[int(rng.integers(len(temporal_sf)))])
    phase = int(rng.integers(0, min(sf - 1, num_frames - 1) + 1))
    return sf, phase, degradation_mask(num_frames, sf, phase)
