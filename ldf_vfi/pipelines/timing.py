"""When output frames are shown: timestamps from the input's real frame times, for every backend.

Input frames carry their presentation times (:class:`~ldf_vfi.io.TimedFrame`, exact fractions of a second);
nothing here assumes a constant rate, so a variable-frame-rate video keeps every frame at its real time.
Two kinds of output grid:

- :class:`Subdivision` (``--temporal_sf``): each interval between two neighbouring input frames is cut into
  ``sf`` equal parts; slot ``k * sf + i`` is at ``t_k + i / sf * (t_{k+1} - t_k)``. This keeps the frame
  count ``(N - 1) * sf + 1`` with input frame ``k`` in slot ``k * sf``, which every backend produces; a
  variable-rate input gives an output that is ``sf`` times denser everywhere (variable too).
- :class:`UniformGrid` (``--target_fps``): times ``start + j / fps``, a constant rate whatever the input's;
  each output frame is interpolated at its exact time between the two input frames around it.

:func:`resample` maps a stream of timed frames onto a grid with any pair-interpolation function and an
optional scene-cut test; :func:`with_slot_times` gives the slots a backend produced (e.g. the LDF
pipeline's) their subdivision times. The last output frame lasts until the input's end time (the writer's
``end_time``), so the duration is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import numpy as np

from ..errors import InputError
from ..io import TimedFrame

PairInterpolator = Callable[[np.ndarray, np.ndarray, Sequence[float]], list[np.ndarray]]
"""``(frame0, frame1, times in (0, 1)) -> frames at those times``, e.g. ``FlowInterpolator.interpolate_pair``."""

CutTest = Callable[[np.ndarray, np.ndarray], bool]
"""``(frame0, frame1) -> whether they are different shots``, e.g. :func:`~ldf_vfi.pipelines.scene.is_scene_cut`."""

MAX_TIME_BASE_DENOMINATOR = 2**31 - 1  # MP4 timescales are 32-bit
MAX_TEMPORAL_SF = 16  # the largest frame-rate multiple any backend makes (the reference's range, 1x..16x)


def check_frame_size(frame: np.ndarray, earlier: tuple[int, ...], index: int) -> None:
    """Frame ``index`` of a stream must have the shape of the frames before it; else a one-line error."""
    if frame.shape != earlier:
        raise InputError(
            f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, earlier frames are {earlier[1]}x{earlier[0]}"
        )


class TimeGrid(Protocol):
    """Where output frames go, asked one input interval at a time (so the input can be streamed)."""

    def between(self, start: Fraction, end: Fraction) -> list[Fraction]:
        """Output times ``t`` with ``start <= t < end``, in order."""

    def contains(self, time: Fraction) -> bool:
        """Whether ``time`` (the last input frame's) is an output time."""


@dataclass(frozen=True)
class Subdivision:
    """Every input interval cut into ``factor`` equal parts (the ``--temporal_sf`` grid)."""

    factor: int

    def between(self, start: Fraction, end: Fraction) -> list[Fraction]:
        return [start + (end - start) * Fraction(i, self.factor) for i in range(self.factor)]

    def contains(self, time: Fraction) -> bool:
        return True


@dataclass(frozen=True)
class UniformGrid:
    """Times ``start + j / fps`` for ``j = 0, 1, ...`` (the ``--target_fps`` grid)."""

    fps: Fraction
    start: Fraction = Fraction(0)

    def between(self, start: Fraction, end: Fraction) -> list[Fraction]:
        first = max(0, math.ceil((start - self.start) * self.fps))
        stop = math.ceil((end - self.start) * self.fps)
        return [self.start + Fraction(j) / self.fps for j in range(first, stop)]

    def contains(self, time: Fraction) -> bool:
        position = (time - self.start) * self.fps
        return position >= 0 and position.denominator == 1


def resample(
    frames: Iterable[TimedFrame],
    grid: TimeGrid,
    interpolate_pair: PairInterpolator,
    is_cut: CutTest | None = None,
    on_cut: Callable[[int], None] | None = None,
) -> Iterator[TimedFrame]:
    """The frames at ``grid``'s times between the first and the last input frame, streamed.

    An output time equal to an input frame's time gives that input frame itself (the same array); one
    strictly between two neighbours is interpolated with ``interpolate_pair`` at the pair's fractional time,
    unless ``is_cut`` says the two are different shots: then the nearer of the two is repeated (and
    ``on_cut(k)`` told the pair's index ``k``). Holds two input frames at a time.
    """
    iterator = iter(frames)
    previous = next(iterator, None)
    if previous is None:
        raise InputError("the input has no frames")
    pair = 0
    for current in iterator:
        check_frame_size(current.image, previous.image.shape, pair + 1)
        span = current.time - previous.time
        if span <= 0:
            raise ValueError(f"frame times must increase: frame {pair + 1} at {current.time} s")
        times = grid.between(previous.time, current.time)
        if times:
            positions = [(t - previous.time) / span for t in times]
            inside = [float(p) for p in positions if p > 0]
            if not inside:
                images = []
            elif is_cut is not None and is_cut(previous.image, current.image):
                if on_cut is not None:
                    on_cut(pair)
                images = [previous.image if p < 0.5 else current.image for p in inside]
            else:
                images = list(interpolate_pair(previous.image, current.image, inside))
            generated = iter(images)
            for t, p in zip(times, positions):
                yield TimedFrame(previous.image if p == 0 else next(generated), t)
        previous = current
        pair += 1
    if pair == 0:
        raise InputError("the input has only 1 frame; interpolation needs at least 2")
    if grid.contains(previous.time):
        yield previous


def with_slot_times(
    slots: Iterable[np.ndarray], input_times: Sequence[Fraction], factor: int
) -> Iterator[TimedFrame]:
    """Give the slots of an integer-factor backend (slot ``k * factor + i`` between inputs ``k`` and
    ``k + 1``) their :class:`Subdivision` times. ``input_times`` may grow while the slots are produced (the
    reader appends as the backend pulls frames); a backend cannot emit a slot before reading both inputs
    around it."""
    grid = Subdivision(factor)
    for index, image in enumerate(slots):
        k, i = divmod(index, factor)
        if i == 0:
            yield TimedFrame(image, input_times[k])
        else:
            yield TimedFrame(image, grid.between(input_times[k], input_times[k + 1])[i])


def slot_factor(ratio: Fraction | float, cap: int = MAX_TEMPORAL_SF) -> int:
    """The smallest integer factor whose subdivision is at least as dense as ``ratio`` (output rate over input
    rate), between 1 and ``cap``: the slots an integer-factor backend samples before the frames are placed at
    a :class:`UniformGrid`'s exact times (25 -> 60 fps: 3; 24000/1001 -> 60: 3; 30 -> 60: 2)."""
    return max(1, min(cap, math.ceil(Fraction(ratio))))


def check_rate_increase(input_fps: Fraction, output_fps: Fraction) -> None:
    """An integer-factor sampler (the ldf backend) only adds frames: ``--target_fps`` must be above the input's
    rate; lowering it is the flow backend's resampling."""
    if output_fps <= input_fps:
        raise InputError(
            f"--target_fps {float(output_fps):g} is not above the input's {float(input_fps):g} fps: "
            "the ldf backend only adds frames; use --backend flow to resample to a lower rate"
        )


def exact_time_base(*times: Fraction) -> Fraction | None:
    """The coarsest unit in which every given time is a whole number (``1 / lcm`` of their denominators), or
    ``None`` when that unit is too fine for a 32-bit container timescale."""
    denominator = 1
    for time in times:
        denominator = math.lcm(denominator, Fraction(time).denominator)
        if denominator > MAX_TIME_BASE_DENOMINATOR:
            return None
    return Fraction(1, denominator)
