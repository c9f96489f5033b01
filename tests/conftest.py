"""Shared fixtures: small synthetic videos written with the project's own writer."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from ldf_vfi.data.synthetic import moving_shapes_video
from ldf_vfi.io import VideoWriter

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_VIDEO = REPO_ROOT / "assets" / "demo.mp4"


def write_video(path: Path, frames, fps=Fraction(25), audio_from=None) -> Path:
    with VideoWriter(path, fps, audio_from=audio_from, crf=0, preset="ultrafast") as writer:
        for frame in frames:
            writer.write(frame)
    return path


@pytest.fixture
def small_video(tmp_path: Path) -> Path:
    """9 frames, 64x48, 25 fps, no audio."""
    return write_video(tmp_path / "small.mp4", moving_shapes_video(9, 48, 64, seed=3))


@pytest.fixture
def small_video_with_audio(tmp_path: Path) -> Path:
    """9 frames, 64x48, 25 fps, with the demo's AAC audio track."""
    return write_video(tmp_path / "talky.mp4", moving_shapes_video(9, 48, 64, seed=4), audio_from=DEMO_VIDEO)
