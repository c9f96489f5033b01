"""The no-weights ``flow`` backend: classical optical-flow frame interpolation on the CPU.

For every pair of input frames it estimates dense optical flow both ways (OpenCV DIS), forward-splats both
frames' motion to each intermediate time ``t`` with the consistent (occluding) content winning, backward-warps
both frames there with a bicubic kernel and blends them with weights that fall where a forward-backward
check says the content is hidden in the other frame; static content passes through unresampled (the pair
level lives in :mod:`.flow_warp`). The scene-cut detector (:mod:`~ldf_vfi.pipelines.scene`) keeps it from
ever blending two different shots: across a cut the nearest input frame is repeated. Output times come from
:mod:`~ldf_vfi.pipelines.timing` (the input's real frame times, variable frame rate included).

It needs no model and no GPU, handles any frame size and any output rate, streams (two frames in memory),
and returns every input frame unchanged at its position.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import InputError
from ..io import TimedFrame
from .flow_warp import DIS_PRESETS, FlowEstimator, PairWarper
from .scene import DEFAULT_SCENE_CUT_THRESHOLD, scene_cut_score
from .timing import MAX_TEMPORAL_SF, Subdivision, TimeGrid, UniformGrid, resample


def check_temporal_sf(temporal_sf: int) -> int:
    """Validate an integer interpolation factor in ``1..MAX_TEMPORAL_SF``."""
    if isinstance(temporal_sf, bool) or int(temporal_sf) != temporal_sf:
        raise InputError(f"--temporal_sf must be an integer, got {temporal_sf!r}")
    temporal_sf = int(temporal_sf)
    if not 1 <= temporal_sf <= MAX_TEMPORAL_SF:
        raise InputError(f"--temporal_sf must be between 1 and {MAX_TEMPORAL_SF}, got {temporal_sf}")
    return temporal_sf


def check_rate_ratio(input_fps: Fraction | float, output_fps: Fraction | float) -> tuple[Fraction, Fraction]:
    """Both rates as exact fractions; positive, the output at most ``MAX_TEMPORAL_SF`` times the input."""
    input_fps = Fraction(input_fps).limit_denominator(1_000_000)
    output_fps = Fraction(output_fps).limit_denominator(1_000_000)
    if input_fps <= 0 or output_fps <= 0:
        raise InputError(f"frame rates must be positive, got {input_fps} -> {output_fps}")
    if output_fps / input_fps > MAX_TEMPORAL_SF:
        raise InputError(
            f"target fps {float(output_fps):g} is more than {MAX_TEMPORAL_SF}x the input's {float(input_fps):g}"
        )
    return input_fps, output_fps


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
        static_passthrough: where two neighbours agree exactly around a pixel, blend them unresampled.
        reuse_previous_flow: start each pair's flow from the previous pair's when the pairs are consecutive.
    """

    flow_preset: str = "medium"
    flow_max_side: int = 1024
    scene_cut_threshold: float = DEFAULT_SCENE_CUT_THRESHOLD
    detect_scene_cuts: bool = True
    static_passthrough: bool = True
    reuse_previous_flow: bool = True

    def __post_init__(self) -> None:
        if self.flow_preset not in DIS_PRESETS:
            raise InputError(f"unknown flow preset '{self.flow_preset}' (choose {', '.join(DIS_PRESETS)})")
        self._estimator = FlowEstimator(self.flow_preset, self.flow_max_side, self.reuse_previous_flow)
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
        input_fps, output_fps = check_rate_ratio(input_fps, output_fps)
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

    def pair_warper(self, frame0: np.ndarray, frame1: np.ndarray, new_frames: int = 2) -> PairWarper:
        """The flows of one pair, ready to give the frame at any time between them (``.at(t)``);
        ``new_frames``, how many will be asked, sets how much effort the flow gets."""
        return PairWarper(
            frame0, frame1, self._estimator, static_passthrough=self.static_passthrough, new_frames=new_frames
        )

    # -- internals -------------------------------------------------------------------------------------
    def _is_cut(self, frame0: np.ndarray, frame1: np.ndarray) -> bool:
        return self.detect_scene_cuts and scene_cut_score(frame0, frame1) > self.scene_cut_threshold

    def _pair_frames(self, frame0, frame1, times) -> list[np.ndarray]:
        """Frames at ``times`` for one pair (0 and 1 give the frames themselves)."""
        if not any(0 < t < 1 for t in times):
            return [frame0 if t < 1 else frame1 for t in times]
        warper = self.pair_warper(frame0, frame1, new_frames=sum(0 < t < 1 for t in times))
        return [frame0 if t <= 0 else frame1 if t >= 1 else warper.at(float(t)) for t in times]
