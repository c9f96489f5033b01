"""Output frame times from the input's real times: the grids, the resampler, slot times, time bases."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from ldf_vfi.errors import InputError
from ldf_vfi.io import TimedFrame
from ldf_vfi.pipelines.flow import FlowInterpolator
from ldf_vfi.pipelines.timing import Subdivision, UniformGrid, exact_time_base, resample, with_slot_times

F = Fraction


def frames_at(times) -> list[TimedFrame]:
    """Frames whose one pixel value is their index, at ``times``."""
    return [TimedFrame(np.full((2, 2, 3), k, np.uint8), F(t)) for k, t in enumerate(times)]


class Recorder:
    """A pair interpolator that records its calls and returns frames valued ``100 + 10 * t``."""

    def __init__(self):
        self.calls = []

    def __call__(self, frame0, frame1, times):
        self.calls.append((int(frame0[0, 0, 0]), int(frame1[0, 0, 0]), list(times)))
        return [np.full_like(frame0, 100 + round(10 * t)) for t in times]


def test_grids():
    assert Subdivision(4).between(F(1, 30), F(3, 30)) == [F(1, 30), F(3, 60), F(2, 30), F(5, 60)]
    grid = UniformGrid(F(60000, 1001), start=F(1, 2))
    assert grid.between(F(0), F(1, 2)) == []  # nothing before the grid's start
    assert grid.between(F(1, 2), F(1, 2) + F(2002, 60000)) == [F(1, 2), F(1, 2) + F(1001, 60000)]
    assert grid.contains(F(1, 2) + F(3003, 60000)) and not grid.contains(F(1, 2) + F(1, 60000))


def test_variable_rate_input_subdivided_at_real_times():
    times = [0, F(1, 30), F(3, 30), F(4, 30)]  # a gap of two frames in the middle
    recorder = Recorder()
    out = list(resample(frames_at(times), Subdivision(2), recorder))
    assert [f.time for f in out] == [0, F(1, 60), F(1, 30), F(2, 30), F(3, 30), F(7, 60), F(4, 30)]
    assert [int(f.image[0, 0, 0]) for f in out] == [0, 105, 1, 105, 2, 105, 3]
    assert recorder.calls == [(0, 1, [0.5]), (1, 2, [0.5]), (2, 3, [0.5])]


def test_variable_rate_input_to_a_constant_rate():
    """Frames at 0, 1/30, 3/30 -> 30 fps: the missing 2/30 is interpolated at half of the long interval."""
    inputs = frames_at([0, F(1, 30), F(3, 30)])
    recorder = Recorder()
    out = list(resample(inputs, UniformGrid(F(30)), recorder))
    assert [f.time for f in out] == [0, F(1, 30), F(2, 30), F(3, 30)]
    assert (
        out[0].image is inputs[0].image
        and out[1].image is inputs[1].image
        and out[3].image is inputs[2].image
    )
    assert recorder.calls == [(1, 2, [0.5])]


def test_scene_cut_repeats_the_nearer_frame_and_is_reported():
    recorder, cuts = Recorder(), []
    inputs = frames_at([0, 1, 2])
    out = list(
        resample(inputs, Subdivision(4), recorder, is_cut=lambda a, b: a[0, 0, 0] == 1, on_cut=cuts.append)
    )
    assert cuts == [1] and recorder.calls == [(0, 1, [0.25, 0.5, 0.75])]
    assert [out[k].image is inputs[1].image for k in (4, 5)] == [True, True]
    assert [out[k].image is inputs[2].image for k in (6, 7, 8)] == [True, True, True]


def test_the_last_frame_is_kept_only_on_the_grid():
    out = list(resample(frames_at([0, F(1, 24), F(2, 24)]), UniformGrid(F(60)), Recorder()))
    assert [f.time for f in out] == [0, F(1, 60), F(2, 60), F(3, 60), F(4, 60), F(5, 60)]  # 5/60 = 2/24


def test_bad_streams():
    with pytest.raises(InputError, match="no frames"):
        list(resample([], Subdivision(2), Recorder()))
    with pytest.raises(InputError, match="only 1 frame"):
        list(resample(frames_at([0]), Subdivision(2), Recorder()))
    with pytest.raises(ValueError, match="must increase"):
        list(resample(frames_at([0, 1, 1]), Subdivision(2), Recorder()))


def test_slot_times_of_an_integer_factor_backend_match_the_subdivision():
    times = [0, F(1, 30), F(3, 30)]
    slots = [np.zeros((2, 2, 3), np.uint8)] * 7
    got = [f.time for f in with_slot_times(slots, times, 3)]
    assert got == [f.time for f in resample(frames_at(times), Subdivision(3), Recorder())]


def test_flow_backend_on_timed_frames_equals_its_constant_rate_path():
    """``resample`` with real times k/fps gives the frames ``interpolate`` gives."""
    from ldf_vfi.data.synthetic import moving_shapes_video

    images = moving_shapes_video(4, 24, 32, seed=3)
    interpolator = FlowInterpolator(flow_preset="ultrafast")
    plain = list(interpolator.interpolate(images, 3))
    timed = list(
        interpolator.resample([TimedFrame(f, F(k, 25)) for k, f in enumerate(images)], Subdivision(3))
    )
    assert [f.time for f in timed] == [F(k, 75) for k in range(10)]
    assert all(np.array_equal(a, b.image) for a, b in zip(plain, timed))


def test_exact_time_base():
    assert exact_time_base(F(0), F(1001, 60000), F(1, 12800)) == F(1, 960000)
    assert exact_time_base(F(1, 3), F(1, 7)) == F(1, 21)
    assert exact_time_base(F(1, 2**20), F(1, 3**13)) is None  # beyond a 32-bit timescale
