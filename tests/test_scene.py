"""The scene-cut detector: silent on motion of every kind and size, firing on hard cuts between shots."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ldf_vfi.data.synthetic import MovingShapes
from ldf_vfi.io import read_frames
from ldf_vfi.pipelines import FlowInterpolator
from ldf_vfi.pipelines.scene import (
    DEFAULT_SCENE_CUT_THRESHOLD,
    MIN_PIXELS,
    find_scene_cuts,
    is_scene_cut,
    scene_cut_score,
)

from conftest import DEMO_VIDEO, write_video


@pytest.fixture(scope="module")
def demo() -> list[np.ndarray]:
    return read_frames(DEMO_VIDEO)


def pairs(frames):
    return list(zip(frames, frames[1:]))


def camera(frame: np.ndarray, n: int, dx=0.0, dy=0.0, zoom=1.0, angle=0.0, gain=0.0) -> list[np.ndarray]:
    """``n`` frames of a camera moving over one picture: pan, zoom, roll, and brightness change (flash/fade)."""
    height, width = frame.shape[:2]
    out = []
    for i in range(n):
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle * i, zoom**i)
        matrix[:, 2] += (dx * i, dy * i)
        moved = cv2.warpAffine(frame, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
        out.append(np.clip(moved.astype(np.float32) + gain * i, 0, 255).astype(np.uint8))
    return out


def upscaled(frames, size):
    return [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames]


@pytest.mark.parametrize("height, width", [(16, 16), (16, 24), (32, 32), (48, 64), (96, 128), (360, 640)])
@pytest.mark.parametrize("motion", ["translate", "rotate", "occlude", "mixed"])
@pytest.mark.parametrize("speed", [1.0, 3.0])
def test_motion_of_synthetic_shapes_is_never_a_cut(height, width, motion, speed):
    if height > 96:  # rendered at 96 px and upscaled (a 360 px render of fast motion takes seconds)
        frames = upscaled(
            MovingShapes(96, 96 * width // height, motion, seed=1, speed=speed).frames(3), (width, height)
        )
    else:
        frames = MovingShapes(height, width, motion=motion, seed=1, speed=speed).frames(3)
    scores = [scene_cut_score(a, b) for a, b in pairs(frames)]
    assert max(scores) < DEFAULT_SCENE_CUT_THRESHOLD - 0.1, scores


def test_motion_in_a_decoded_16x16_clip_is_never_a_cut(tmp_path):
    """The old detector called every pair of this clip a cut (chroma subsampling at 16x16 moves colours)."""
    for seed in range(4):
        frames = MovingShapes(16, 16, seed=seed).frames(5)
        decoded = read_frames(write_video(tmp_path / f"s{seed}.mp4", frames))
        assert not find_scene_cuts(decoded), [scene_cut_score(a, b) for a, b in pairs(decoded)]


def test_motion_in_4k_frames_is_never_a_cut():
    """4K-shaped frames (rendered small, upscaled: the detector sees them at 128 px either way)."""
    scene = MovingShapes(135, 240, motion="mixed", seed=2)
    frames = upscaled(scene.frames(3), (3840, 2160))
    assert max(scene_cut_score(a, b) for a, b in pairs(frames)) < 0.3


def test_thin_strips_and_specks():
    strip = upscaled(MovingShapes(100, 16, seed=3).frames(3), (16, 400))
    assert not find_scene_cuts(strip) and not find_scene_cuts([f.transpose(1, 0, 2).copy() for f in strip])
    speck = [np.full((4, 4, 3), value, np.uint8) for value in (0, 255)]
    assert 16 < MIN_PIXELS and scene_cut_score(*speck) == 0.0  # too few pixels to tell


def test_the_demo_clip_has_no_cut(demo):
    """assets/demo.mp4 is one shot (the bunny getting up): none of its 131 pairs is a cut."""
    scores = [scene_cut_score(a, b) for a, b in pairs(demo)]
    assert max(scores) < 0.3, (int(np.argmax(scores)), max(scores))


@pytest.mark.parametrize("size", [(640, 360), (64, 36), (3840, 2160)])
@pytest.mark.parametrize(
    "move",
    [dict(dx=24), dict(dx=60, dy=10), dict(zoom=1.08), dict(angle=4), dict(gain=60), dict(gain=-25)],
    ids=["pan", "fast pan", "zoom", "roll", "flash", "fade"],
)
def test_camera_motion_flashes_and_fades_are_not_cuts(demo, size, move):
    frame = cv2.resize(demo[30], size, interpolation=cv2.INTER_AREA if size[0] <= 640 else cv2.INTER_CUBIC)
    scale = size[0] / 640
    move = {k: v * scale if k in ("dx", "dy") else v for k, v in move.items()}
    frames = camera(frame, 3, **move)
    assert max(scene_cut_score(a, b) for a, b in pairs(frames)) < 0.35


def other_scene(n: int, seed: int = 5) -> list[np.ndarray]:
    """Another shot at the demo's 640x360 (rendered at 160x90 and upscaled: quick)."""
    return upscaled(MovingShapes(90, 160, seed=seed).frames(n), (640, 360))


@pytest.fixture(scope="module")
def cuts(demo) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    shot = demo[60]
    ball, square = np.full((360, 640, 3), (30, 90, 200), np.uint8), np.zeros((360, 640, 3), np.uint8)
    cv2.circle(ball, (200, 180), 70, (250, 200, 20), -1)
    cv2.rectangle(square, (300, 120), (420, 240), (255, 255, 255), -1)
    return {
        "to another scene": (shot, other_scene(1)[0]),
        "to a close-up": (shot, cv2.resize(shot[60:240, 200:520], (640, 360))),
        "to the sky": (shot, cv2.resize(shot[0:120, 400:640], (640, 360))),
        "to the grass": (shot, cv2.resize(shot[240:360, 0:213], (640, 360))),
        "to black": (shot, np.zeros_like(shot)),
        "upside down": (shot, shot[::-1].copy()),
        "same layout, other colours": (ball, square),
        "between synthetic scenes": (MovingShapes(96, 128, seed=10).frame(0), MovingShapes(96, 128, seed=20).frame(0)),
        "4K": tuple(upscaled([MovingShapes(135, 240, seed=7).frame(0), shot], (3840, 2160))),
        "32x32": (MovingShapes(32, 32, seed=11).frame(0), MovingShapes(32, 32, seed=21).frame(0)),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    ["to another scene", "to a close-up", "to the sky", "to the grass", "to black", "upside down",
     "same layout, other colours", "between synthetic scenes", "4K", "32x32"],
)  # fmt: skip
def test_hard_cuts_are_found(cuts, case):
    before, after = cuts[case]
    assert is_scene_cut(before, after) and is_scene_cut(after, before), scene_cut_score(before, after)


def test_cuts_are_located_in_a_sequence_and_repeated_by_the_flow_backend(demo):
    shot_b = other_scene(4)
    clip = demo[:4] + shot_b + demo[90:93]
    assert find_scene_cuts(clip) == [3, 7]
    interpolator = FlowInterpolator(flow_preset="ultrafast", flow_max_side=160)
    out = list(interpolator.interpolate(clip, 2))
    assert interpolator.scene_cuts == [3, 7]
    assert out[7] is clip[4] and out[15] is clip[8]  # between a cut's neighbours the later one, not a blend
    assert not any(out[1] is frame for frame in clip)  # inside a shot, a new interpolated frame


def test_detector_is_independent_of_the_frame_size():
    """The same motion rendered at 64x48 and 4K scores about the same (it works at 128 px either way)."""
    scene = MovingShapes(48, 64, seed=4, speed=2)
    small = scene.frames(2)
    large = upscaled(small, (3840, 2880))
    assert abs(scene_cut_score(*small) - scene_cut_score(*large)) < 0.05


def test_module_is_the_only_detector():
    """Both backends use this one function (the flow backend imports it; nothing else defines one)."""
    root = Path(__file__).resolve().parents[1] / "ldf_vfi"
    defining = [p for p in root.rglob("*.py") if "def scene_cut_score" in p.read_text()]
    assert [p.name for p in defining] == ["scene.py"]
