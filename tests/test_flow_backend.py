"""The no-weights flow backend: frame counts, exact key frames, quality on known motion, scene cuts."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from ldf_vfi.data.synthetic import MovingShapes, moving_shapes_video
from ldf_vfi.errors import BackendUnavailableError, InputError
from ldf_vfi.pipelines import get_interpolator, output_frame_count, scene_cut_score
from ldf_vfi.pipelines.flow import FlowInterpolator


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.mark.parametrize("sf", list(range(1, 17)))
def test_frame_count_and_input_frames_unchanged(sf):
    frames = moving_shapes_video(4, 24, 32, seed=sf)
    out = list(FlowInterpolator().interpolate(frames, sf))
    assert len(out) == (len(frames) - 1) * sf + 1 == output_frame_count(len(frames), sf)
    for k, frame in enumerate(frames):
        assert out[k * sf] is frame  # the very same array, untouched
    assert all(o.shape == frames[0].shape and o.dtype == np.uint8 for o in out)


def test_retime_to_a_target_fps():
    frames = moving_shapes_video(6, 24, 32, seed=0)  # 5 intervals
    out = list(FlowInterpolator().retime(frames, Fraction(24000, 1001), Fraction(60000, 1001)))
    # output j shows input time j * 24/60: 0, 0.4, ..., 5.0 -> 13 frames; times 0, 2.0, 4.0 are inputs
    assert len(out) == output_frame_count(6, Fraction(5, 2)) == 13
    assert out[0] is frames[0] and out[5] is frames[2] and out[10] is frames[4]
    with pytest.raises(InputError, match="more than 16x"):
        list(FlowInterpolator().retime(frames, 10, 200))


def _drop_and_reinterpolate(motion: str, sf: int = 4, segments: int = 4):
    scene = MovingShapes(96, 128, motion=motion, seed=1)
    truth = scene.frames(segments * sf + 1, step=1.0 / sf)
    inputs = truth[::sf]
    flow = list(FlowInterpolator().interpolate(inputs, sf))
    targets = [i for i in range(len(truth)) if i % sf]
    repeat = {i: inputs[i // sf] if i % sf < sf / 2 else inputs[i // sf + 1] for i in targets}
    blend = {
        i: np.clip(
            (1 - (i % sf) / sf) * inputs[i // sf].astype(np.float64)
            + (i % sf) / sf * inputs[i // sf + 1]
            + 0.5,
            0,
            255,
        ).astype(np.uint8)
        for i in targets
    }
    score = {
        "flow": np.mean([psnr(flow[i], truth[i]) for i in targets]),
        "repeat": np.mean([psnr(repeat[i], truth[i]) for i in targets]),
        "blend": np.mean([psnr(blend[i], truth[i]) for i in targets]),
    }
    return score


@pytest.mark.parametrize(
    "motion, margin",
    # Measured margins over the better baseline: translate ~6.5 dB, occlude ~9.6, mixed ~6.5, rotate ~1.6 dB
    # (a spinning textured disc is the hardest case for a quadratic flow model; blending ghosts less there).
    [("translate", 4.0), ("occlude", 6.0), ("mixed", 4.0), ("rotate", 1.0)],
)
def test_flow_beats_repetition_and_blending_on_known_motion(motion, margin):
    score = _drop_and_reinterpolate(motion)
    assert score["flow"] > score["repeat"] + max(margin, 3.0), score
    assert score["flow"] > score["blend"] + margin, score


def test_scene_cuts_are_repeated_not_blended():
    shot_a = MovingShapes(48, 64, motion="mixed", seed=10).frames(3)
    shot_b = MovingShapes(48, 64, motion="mixed", seed=11).frames(3)
    frames = shot_a + shot_b
    interpolator = FlowInterpolator()
    out = list(interpolator.interpolate(frames, 4))
    assert interpolator.scene_cuts == [2]  # between input 2 (last of shot a) and input 3
    # between the cut's neighbours only exact copies of them appear: first half a, second half b
    assert all(out[i] is frames[2] for i in (8, 9)) and all(out[i] is frames[3] for i in (10, 11, 12))
    # inside each shot real interpolation happens (a new image, not a copy)
    assert not any(np.array_equal(out[1], f) for f in frames)
    assert scene_cut_score(frames[0], frames[1]) < 0.15 < 0.3 < scene_cut_score(frames[2], frames[3])


def test_scene_detection_can_be_disabled():
    frames = MovingShapes(48, 64, seed=10).frames(1) + MovingShapes(48, 64, seed=11).frames(1)
    interpolator = FlowInterpolator(detect_scene_cuts=False)
    out = list(interpolator.interpolate(frames, 2))
    assert interpolator.scene_cuts == [] and not np.array_equal(out[1], frames[0])


@pytest.mark.parametrize(
    "frames, sf, message",
    [
        ([], 2, "no frames"),
        ([np.zeros((8, 8, 3), np.uint8)], 2, "only 1 frame"),
        ([np.zeros((8, 8, 3), np.uint8)] * 3, 0, "between 1 and 16"),
        ([np.zeros((8, 8, 3), np.uint8)] * 3, 17, "between 1 and 16"),
        ([np.zeros((8, 8, 3), np.uint8)] * 3, 2.5, "integer"),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)], 2, "earlier frames are 8x8"),
    ],
)
def test_bad_interpolation_requests(frames, sf, message):
    with pytest.raises(InputError, match=message):
        list(FlowInterpolator().interpolate(frames, sf))


def test_backend_registry():
    assert isinstance(get_interpolator("flow", flow_preset="fast"), FlowInterpolator)
    with pytest.raises(BackendUnavailableError, match="needs the released weights"):
        get_interpolator("ldf")
    with pytest.raises(InputError, match="unknown backend"):
        get_interpolator("rife")
