"""The no-weights ``flow`` backend: classical optical-flow frame interpolation on the CPU.

For every pair of input frames it estimates dense optical flow both ways (OpenCV DIS), forward-splats both
frames' motion to each intermediate time ``t`` with the consistent (occluding) content winning, backward-warps
both frames there with a bicubic kernel and blends them with weights that fall where a forward-backward
check says the content is hidden in the other frame; static content passes through unresampled (the pair
level lives in :mod:`.flow_warp`). A scene-cut detector keeps it from ever blending two different shots:
across a cut the nearest input frame is repeated.

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
from .flow_warp import DIS_PRESETS, FlowEstimator, PairWarper

MAX_TEMPORAL_SF = 16


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


def scene_cut_score(frame0: np.ndarray, frame1: np.ndarray) -> float:
    """How unlike two frames are as shots, in [0, 1]: the larger of a colour-histogram distance and a
    low-resolution structural change. Ordinary motion keeps both small; a cut to another shot makes either
    large (different colours, or the same colours in another arrangement)."""
    small0 = cv2.resize(frame0, (64, 36), interpolation=cv2.INTER_AREA)
    small1 = cv2.resize(frame1, (64, 36), interpolation=cv2.INTER_AREA)
    hists = []
    for small in (small0, small1):
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
        hists.append(cv2.normalize(hist, hist).flatten())
    hist_distance = float(cv2.compareHist(hists[0], hists[1], cv2.HISTCMP_BHATTACHARYYA))
    gray0 = cv2.GaussianBlur(cv2.cvtColor(small0, cv2.COLOR_RGB2GRAY).astype(np.float32), (5, 5), 1.0)
    gray1 = cv2.GaussianBlur(cv2.cvtColor(small1, cv2.COLOR_RGB2GRAY).astype(np.float32), (5, 5), 1.0)
    g0, g1 = gray0 - gray0.mean(), gray1 - gray1.mean()
    correlation = float((g0 * g1).sum() / (np.sqrt((g0 * g0).sum() * (g1 * g1).sum()) + 1e-6))
    structure_change = float(np.clip((1.0 - correlation) / 2.0, 0.0, 1.0))
    return max(hist_distance, structure_change)


@dataclass
class FlowInterpolator:
    """Bidirectional-flow interpolator (see the module docstring).

    Args:
        flow_preset: DIS preset, ``ultrafast`` / ``fast`` / ``medium`` (quality vs. speed).
        flow_max_side: flow is estimated on a copy downscaled so its longer side is at most this many pixels
            (then upscaled), which bounds the cost at 1080p/4K while large motions stay trackable.
        scene_cut_threshold: :func:`scene_cut_score` above which two neighbours count as different shots.
        detect_scene_cuts: turn the detector off to always interpolate.
        static_passthrough: where two neighbours agree exactly around a pixel, blend them unresampled.
        reuse_previous_flow: start each pair's flow from the previous pair's when the pairs are consecutive.
    """

    flow_preset: str = "medium"
    flow_max_side: int = 1024
    scene_cut_threshold: float = 0.3
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
        return self._retime(frames, Fraction(check_temporal_sf(temporal_sf)))

    def retime(
        self, frames: Iterable[np.ndarray], input_fps: Fraction | float, output_fps: Fraction | float
    ) -> Iterator[np.ndarray]:
        """Resample to ``output_fps`` (any rate up to ``MAX_TEMPORAL_SF`` times the input), keeping duration:
        output frame ``j`` shows time ``j / output_fps``, interpolated between its two input neighbours."""
        input_fps = Fraction(input_fps).limit_denominator(1_000_000)
        output_fps = Fraction(output_fps).limit_denominator(1_000_000)
        if input_fps <= 0 or output_fps <= 0:
            raise InputError(f"frame rates must be positive, got {input_fps} -> {output_fps}")
        ratio = output_fps / input_fps
        if ratio > MAX_TEMPORAL_SF:
            raise InputError(
                f"target fps {float(output_fps):g} is more than {MAX_TEMPORAL_SF}x the input's {float(input_fps):g}"
            )
        return self._retime(frames, ratio)

    def interpolate_pair(
        self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float]
    ) -> list[np.ndarray]:
        """Frames at each time in ``times`` (0 = ``frame0``, 1 = ``frame1``) between two neighbours."""
        if frame0.shape != frame1.shape:
            raise InputError(f"frame sizes differ: {frame0.shape} vs {frame1.shape}")
        return self._pair_frames(frame0, frame1, [float(t) for t in times])[0]

    def pair_warper(self, frame0: np.ndarray, frame1: np.ndarray, new_frames: int = 2) -> PairWarper:
        """The flows of one pair, ready to give the frame at any time between them (``.at(t)``);
        ``new_frames``, how many will be asked, sets how much effort the flow gets."""
        return PairWarper(
            frame0, frame1, self._estimator, static_passthrough=self.static_passthrough, new_frames=new_frames
        )

    # -- internals -------------------------------------------------------------------------------------
    def _pair_frames(self, frame0, frame1, times) -> tuple[list[np.ndarray], bool]:
        """Frames at ``times`` for one pair, and whether the pair was treated as a scene cut."""
        if not any(0 < t < 1 for t in times):
            return [frame0 if t < 1 else frame1 for t in times], False
        if self.detect_scene_cuts and scene_cut_score(frame0, frame1) > self.scene_cut_threshold:
            return [frame0 if t < 0.5 else frame1 for t in times], True
        warper = self.pair_warper(frame0, frame1, new_frames=sum(0 < t < 1 for t in times))
        return [frame0 if t <= 0 else frame1 if t >= 1 else warper.at(float(t)) for t in times], False

    def _retime(self, frames: Iterable[np.ndarray], ratio: Fraction) -> Iterator[np.ndarray]:
        iterator = iter(frames)
        previous = next(iterator, None)
        if previous is None:
            raise InputError("the input has no frames")
        self.scene_cuts = []
        pair = 0
        out_index = 0
        for current in iterator:
            if current.shape != previous.shape:
                raise InputError(
                    f"frame {pair + 1} is {current.shape[1]}x{current.shape[0]}, "
                    f"earlier frames are {previous.shape[1]}x{previous.shape[0]}"
                )
            times = []
            while Fraction(out_index) / ratio < pair + 1:
                times.append(Fraction(out_index) / ratio - pair)
                out_index += 1
            if times:
                produced, is_cut = self._pair_frames(previous, current, times)
                if is_cut:
                    self.scene_cuts.append(pair)
                yield from produced
            previous = current
            pair += 1
        if pair == 0:
            raise InputError("the input has only 1 frame; interpolation needs at least 2")
        if Fraction(out_index) / ratio == pair:
            yield previous
