"""Trivial interpolators that every method must beat, with the backends' interface.

- ``repeat``: frame repetition, each new frame is the nearest input frame (ties to the earlier one). This
  is also the "nearest" temporal upsampling that the diffusion model receives as its condition, so it is the
  natural floor for LDF-VFI.
- ``blend``: linear cross-fade of the two neighbouring inputs, ``(1 - t) a + t b`` rounded.

Both stream (two frames in memory) and return ``(N - 1) sf + 1`` frames with inputs unchanged at
``k sf``, like :class:`ldf_vfi.pipelines.FlowInterpolator`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

import numpy as np

from ..pipelines.flow import check_temporal_sf

BASELINES = ("repeat", "blend")


class _PairwiseBaseline(ABC):
    def interpolate(self, frames: Iterable[np.ndarray], temporal_sf: int) -> Iterator[np.ndarray]:
        """Multiply the frame rate by ``temporal_sf``: input ``k`` at ``k sf``, :meth:`between` in between."""
        sf = check_temporal_sf(temporal_sf)
        previous = None
        for frame in frames:
            if previous is None:
                yield frame
            else:
                for step in range(1, sf):
                    yield self.between(previous, frame, step / sf)
                yield frame
            previous = frame

    @abstractmethod
    def between(self, frame0: np.ndarray, frame1: np.ndarray, t: float) -> np.ndarray:
        """The frame at time ``t`` in (0, 1) between two neighbours."""


class RepeatInterpolator(_PairwiseBaseline):
    """Frame repetition: the nearer neighbour (the earlier one at exactly half way)."""

    def between(self, frame0: np.ndarray, frame1: np.ndarray, t: float) -> np.ndarray:
        return frame0 if t <= 0.5 else frame1


class BlendInterpolator(_PairwiseBaseline):
    """Linear cross-fade between the neighbours, rounded to uint8."""

    def between(self, frame0: np.ndarray, frame1: np.ndarray, t: float) -> np.ndarray:
        mixed = (1.0 - t) * frame0.astype(np.float32) + t * frame1.astype(np.float32)
        return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def get_baseline(name: str) -> _PairwiseBaseline:
    return {"repeat": RepeatInterpolator, "blend": BlendInterpolator}[name]()


__all__ = ["BASELINES", "BlendInterpolator", "RepeatInterpolator", "get_baseline"]
