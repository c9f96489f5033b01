"""The no-weights ``flow`` backend: classical optical-flow frame interpolation on the CPU.

For every pair of input frames it estimates dense optical flow both ways (OpenCV DIS), approximates the
flows from the intermediate time ``t`` back to each input frame (the quadratic blend of Jiang et al.,
"Super SloMo", 2018), backward-warps both frames to ``t`` and blends them with weights that fall where a
forward-backward consistency check says the content is hidden in the other frame. The scene-cut detector
(:mod:`~ldf_vfi.pipelines.scene`) keeps it from ever blending two different shots: across a cut the nearest
input frame is repeated. Output times come from :mod:`~ldf_vfi.pipelines.timing` (the input's real frame
times, variable frame rate included).

It needs no model and no GPU, handles any frame size and any output rate, streams (two frames in memory),
and returns every input frame unchanged at its position.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from ..errors import InputError
from ..io import TimedFrame
from .scene import DEFAULT_SCENE_CUT_THRESHOLD, scene_cut_score
from .timing import Subdivision, TimeGrid, UniformGrid, resample

MAX_TEMPORAL_SF = 16
_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def check_temporal_sf(temporal_sf: int) -> int:
    """Validate an integer interpolation factor in ``1..MAX_TEMPORAL_SF``."""
    if isinstance(temporal_sf, bool) or int(temporal_sf) != temporal_sf:
        raise InputError(f"--temporal_sf must be an integer, got {temporal_sf!r}")
    temporal_sf = int(temporal_sf)
    if not 1 <= temporal_sf <= MAX_TEMPORAL_SF:
        raise InputError(f"--temporal_sf must be between 1 and {MAX_TEMPORAL_SF}, got {temporal_sf}")
    return temporal_sf


def output_frame_count(num_inputs: int, ratio: Fraction | int) -> int:
    """Frames produced for ``num_inputs`` frames when the rate is multiplied by ``ratio``.

    Output frame ``j`` sits at input time ``j / ratio``; the last output is the last time not beyond the last
    input, so an integer factor ``s`` gives ``(N - 1) * s + 1``.
    """
    ratio = Fraction(ratio)
    return int((num_inputs - 1) * ratio) + 1


@dataclass
class FlowInterpolator:
    """Bidirectional-flow interpolator (see the module docstring).

    Args:
        flow_preset: DIS preset, ``ultrafast`` / ``fast`` / ``medium`` (quality vs. speed).
        flow_max_side: flow is estimated on a copy downscaled so its longer side is at most this many pixels
            (then upscaled), which bounds the cost at 1080p/4K while large motions stay trackable.
        scene_cut_threshold: :func:`~ldf_vfi.pipelines.scene.scene_cut_score` above which two neighbours count
            as different shots.
        detect_scene_cuts: turn the detector off to always interpolate.
    """

    flow_preset: str = "medium"
    flow_max_side: int = 1024
    scene_cut_threshold: float = DEFAULT_SCENE_CUT_THRESHOLD
    detect_scene_cuts: bool = True

    def __post_init__(self) -> None:
        if self.flow_preset not in _DIS_PRESETS:
            raise InputError(f"unknown flow preset '{self.flow_preset}' (choose {', '.join(_DIS_PRESETS)})")
        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.flow_preset])
        self.scene_cuts: list[int] = []

    # -- public ----------------------------------------------------------------------------------------
    def interpolate(self, frames: Iterable[np.ndarray], temporal_sf: int) -> Iterator[np.ndarray]:
        """Multiply the frame rate by the integer ``temporal_sf``: ``(N - 1) * sf + 1`` frames out, input
        frame ``k`` (the same array) at position ``k * sf``."""
        grid = Subdivision(check_temporal_sf(temporal_sf))
        timed = (TimedFrame(frame, Fraction(k)) for k, frame in enumerate(frames))
        return (frame.image for frame in self.resample(timed, grid))

    def retime(
        self, frames: Iterable[np.ndarray], input_fps: Fraction | float, output_fps: Fraction | float
    ) -> Iterator[np.ndarray]:
        """Resample constant-rate frames to ``output_fps`` (any rate up to ``MAX_TEMPORAL_SF`` times the
        input): output frame ``j`` shows time ``j / output_fps``, interpolated between its two input
        neighbours. :meth:`resample` does the same for frames with their own (variable) times."""
        input_fps = Fraction(input_fps).limit_denominator(1_000_000)
        output_fps = Fraction(output_fps).limit_denominator(1_000_000)
        if input_fps <= 0 or output_fps <= 0:
            raise InputError(f"frame rates must be positive, got {input_fps} -> {output_fps}")
        if output_fps / input_fps > MAX_TEMPORAL_SF:
            raise InputError(
                f"target fps {float(output_fps):g} is more than {MAX_TEMPORAL_SF}x the input's {float(input_fps):g}"
            )
        timed = (TimedFrame(frame, k / input_fps) for k, frame in enumerate(frames))
        return (frame.image for frame in self.resample(timed, UniformGrid(output_fps)))

    def resample(self, frames: Iterable[TimedFrame], grid: TimeGrid) -> Iterator[TimedFrame]:
        """Frames at ``grid``'s times (see :func:`~ldf_vfi.pipelines.timing.resample`), scene cuts repeated;
        the pairs found to be cuts are listed in ``scene_cuts`` as the stream is consumed."""
        self.scene_cuts = []
        return resample(
            frames, grid, self.interpolate_pair, is_cut=self._is_cut, on_cut=self.scene_cuts.append
        )

    def interpolate_pair(
        self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float]
    ) -> list[np.ndarray]:
        """Frames at each time in ``times`` (0 = ``frame0``, 1 = ``frame1``) between two neighbours."""
        if frame0.shape != frame1.shape:
            raise InputError(f"frame sizes differ: {frame0.shape} vs {frame1.shape}")
        return self._pair_frames(frame0, frame1, [float(t) for t in times])

    # -- internals -------------------------------------------------------------------------------------
    def _flow(self, gray0: np.ndarray, gray1: np.ndarray) -> np.ndarray:
        return self._dis.calc(gray0, gray1, None)

    def _is_cut(self, frame0: np.ndarray, frame1: np.ndarray) -> bool:
        return self.detect_scene_cuts and scene_cut_score(frame0, frame1) > self.scene_cut_threshold

    def _pair_frames(self, frame0, frame1, times) -> list[np.ndarray]:
        """Frames at ``times`` for one pair (0 and 1 give the frames themselves)."""
        if not any(0 < t < 1 for t in times):
            return [frame0 if t < 1 else frame1 for t in times]
        warper = _PairWarper(frame0, frame1, self._flow, self.flow_max_side)
        return [frame0 if t <= 0 else frame1 if t >= 1 else warper.at(float(t)) for t in times]


class _PairWarper:
    """Flows and consistency maps of one frame pair, reused for every intermediate time of that pair."""

    def __init__(self, frame0: np.ndarray, frame1: np.ndarray, flow_fn, max_side: int = 1024) -> None:
        height, width = frame0.shape[:2]
        scale = min(1.0, max_side / max(height, width))
        # DIS fails on images under ~12 px a side and on thin strips (its coarsest pyramid level would have
        # no rows): flow is estimated on at least 16 px and 1/16 of the longer side (stretched, not padded)
        shortest = max(16, round(max(width, height) * scale) // 16)
        size = (max(shortest, round(width * scale)), max(shortest, round(height * scale)))
        gray0 = cv2.cvtColor(frame0, cv2.COLOR_RGB2GRAY)
        gray1 = cv2.cvtColor(frame1, cv2.COLOR_RGB2GRAY)
        if size != (width, height):
            gray0 = cv2.resize(gray0, size, interpolation=cv2.INTER_AREA)
            gray1 = cv2.resize(gray1, size, interpolation=cv2.INTER_AREA)
        flow01 = flow_fn(gray0, gray1)
        flow10 = flow_fn(gray1, gray0)
        if size != (width, height):
            factor = np.array([width / size[0], height / size[1]], np.float32)
            flow01 = cv2.resize(flow01, (width, height), interpolation=cv2.INTER_LINEAR) * factor
            flow10 = cv2.resize(flow10, (width, height), interpolation=cv2.INTER_LINEAR) * factor
        self.frame0 = frame0.astype(np.float32)
        self.frame1 = frame1.astype(np.float32)
        self.flow01, self.flow10 = flow01, flow10
        xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        self.grid = np.stack([xs, ys], axis=-1)
        self.size = (width, height)
        # Occlusion maps in each frame's own coordinates: 1 where that frame's content is absent from the
        # other frame (the forward flow and the backward flow at its landing point do not cancel).
        self.only_in_0 = self._occlusion(flow01, flow10)
        self.only_in_1 = self._occlusion(flow10, flow01)

    def _remap(self, image: np.ndarray, flow: np.ndarray) -> np.ndarray:
        positions = self.grid + flow
        return cv2.remap(
            image, positions[..., 0], positions[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def _inside(self, flow: np.ndarray) -> np.ndarray:
        positions = self.grid + flow
        width, height = self.size
        inside = (
            (positions[..., 0] >= -0.5)
            & (positions[..., 0] <= width - 0.5)
            & (positions[..., 1] >= -0.5)
            & (positions[..., 1] <= height - 0.5)
        )
        return inside.astype(np.float32)

    def _occlusion(self, forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
        backward_at_target = self._remap(backward, forward)
        error = np.square(forward + backward_at_target).sum(-1)
        tolerance = 0.01 * (np.square(forward).sum(-1) + np.square(backward_at_target).sum(-1)) + 0.5
        occluded = np.clip((error - tolerance) / tolerance, 0.0, 1.0)
        occluded = np.maximum(occluded, 1.0 - self._inside(forward))
        return cv2.GaussianBlur(occluded, (5, 5), 1.0)

    def at(self, t: float) -> np.ndarray:
        """The frame at time ``t`` in (0, 1)."""
        flow_t0 = -(1.0 - t) * t * self.flow01 + t * t * self.flow10
        flow_t1 = (1.0 - t) * (1.0 - t) * self.flow01 - t * (1.0 - t) * self.flow10
        warped0 = self._remap(self.frame0, flow_t0)
        warped1 = self._remap(self.frame1, flow_t1)
        # Content seen only in frame 0 (occluded in 1) must come from frame 0, and vice versa.
        only0 = self._remap(self.only_in_0, flow_t0)
        only1 = self._remap(self.only_in_1, flow_t1)
        weight0 = (1.0 - t) * (1.0 - only1) * self._inside(flow_t0) + 1e-4 * (1.0 - t)
        weight1 = t * (1.0 - only0) * self._inside(flow_t1) + 1e-4 * t
        blended = (weight0[..., None] * warped0 + weight1[..., None] * warped1) / (weight0 + weight1)[
            ..., None
        ]
        return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
