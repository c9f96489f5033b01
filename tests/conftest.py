"""Shared fixtures: small synthetic videos written with the project's own writer."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import torch

from ldf_vfi.data.synthetic import moving_shapes_video
from ldf_vfi.io import VideoWriter

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_VIDEO = REPO_ROOT / "assets" / "demo.mp4"


def write_video(path: Path, frames, fps=Fraction(25), audio_from=None) -> Path:
    with VideoWriter(path, fps, audio_from=audio_from, crf=0, preset="ultrafast") as writer:
        for frame in frames:
            writer.write(frame)
    return path


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped where no CUDA device is."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture
def small_video(tmp_path: Path) -> Path:
    """9 frames, 64x48, 25 fps, no audio."""
    return write_video(tmp_path / "small.mp4", moving_shapes_video(9, 48, 64, seed=3))


@pytest.fixture
def small_video_with_audio(tmp_path: Path) -> Path:
    """9 frames, 64x48, 25 fps, with the demo's AAC audio track."""
    return write_video(tmp_path / "talky.mp4", moving_shapes_video(9, 48, 64, seed=4), audio_from=DEMO_VIDEO)


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for tests on tiny tensors: extra threads only spin (several times slower on a busy
    2-core machine). Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_cpu(one_torch_thread):
    """``one_torch_thread`` plus no autograd, for inference-only tests of the tiny models."""
    with torch.no_grad():
        yield
