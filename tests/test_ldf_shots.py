"""The LDF backend on real videos: shots sampled on their own, any output rate, progress in denoising steps.

Tiny random models (see test_ldf_pipeline.py); the frames differ from a real model's, the bookkeeping does not.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
from test_ldf_pipeline import TINY_FLAGS, tiny_pipeline, tiny_weights  # noqa: F401 (a fixture)

from ldf_vfi.data.synthetic import MovingShapes
from ldf_vfi.errors import InputError
from ldf_vfi.io import TimedFrame, probe, read_frames
from ldf_vfi.pipelines import find_scene_cuts
from ldf_vfi.pipelines.ldf import _DenoisingProgress
from ldf_vfi.pipelines.timing import UniformGrid, slot_factor
from ldf_vfi.pipelines.windows import window_schedule

from conftest import REPO_ROOT, write_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def shot(n: int, seed: int) -> list[np.ndarray]:
    return MovingShapes(64, 64, seed=seed).frames(n)


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def two_shots() -> tuple[list[np.ndarray], list[np.ndarray]]:
    a, b = shot(5, seed=10), shot(4, seed=20)
    assert find_scene_cuts(a + b) == [4]  # one hard cut, between frames 4 and 5, and no other
    return a, b


@pytest.mark.parametrize("sf", [2, 3])
def test_each_shot_is_sampled_as_a_video_of_its_own(two_shots, sf):
    a, b = two_shots
    pipe = tiny_pipeline()
    out = pipe(a + b, sf)
    assert len(out) == (9 - 1) * sf + 1 and pipe.scene_cuts == [4]
    alone_a, alone_b = tiny_pipeline()(a, sf), tiny_pipeline()(b, sf)
    end_a = (5 - 1) * sf + 1
    assert same(out[:end_a], alone_a)
    gap = out[end_a : end_a + sf - 1]  # the slots between the shots repeat the nearer shot's frame
    before = (sf - 1) // 2
    assert all(frame is out[end_a - 1] for frame in gap[:before])
    assert same(gap[before:], [alone_b[0]] * (sf - 1 - before))
    assert same(out[end_a + sf - 1 :], alone_b)


def test_without_detection_the_input_is_one_video(two_shots):
    """--no_scene_detect: the reference's behaviour, a window across the cut; on a clip with no cut the two
    modes give the same frames."""
    a, b = two_shots
    continuous = tiny_pipeline(detect_scene_cuts=False)
    joined = continuous(a + b, 2)
    assert len(joined) == 17 and continuous.scene_cuts == []
    assert not same(joined, tiny_pipeline()(a + b, 2))
    assert same(tiny_pipeline(detect_scene_cuts=False)(a, 2), tiny_pipeline()(a, 2))
    never = tiny_pipeline(scene_cut_threshold=1.0)  # a score above 1 does not exist: no cut is ever found
    assert same(never(a + b, 2), joined) and never.scene_cuts == []


def test_a_one_frame_shot_is_repeated_and_the_tail_belongs_to_the_last_shot(two_shots):
    a, b = two_shots
    flash = shot(1, seed=30)[0]
    clip = a[:4] + [flash] + b[:3]
    assert find_scene_cuts(clip) == [3, 4]
    pipe = tiny_pipeline()
    out = list(pipe.interpolate(clip, 2, tail_frames=1))
    assert pipe.scene_cuts == [3, 4] and len(out) == (8 - 1) * 2 + 1 + 1
    assert same(out[:7], tiny_pipeline()(a[:4], 2))
    assert out[7] is flash and out[8] is flash  # the slot before it (nearer to it) and its own slot
    alone_b = list(tiny_pipeline().interpolate(b[:3], 2, tail_frames=1))
    assert same(out[9:], [alone_b[0]] + alone_b)


def test_shots_keep_bad_input_errors():
    with pytest.raises(InputError, match="only 1 frame"):
        tiny_pipeline()(shot(1, seed=1), 2)
    with pytest.raises(InputError, match="no frames"):
        tiny_pipeline()([], 2)
    small = MovingShapes(48, 64, seed=1).frames(1)
    with pytest.raises(InputError, match="frame 2 is 64x48, earlier frames are 64x64"):
        tiny_pipeline()(shot(2, seed=1) + small, 2)


def test_decoding_only_the_kept_chunks_changes_no_frame():
    """Chunks wholly beyond the output's end are not decoded; the decoder takes each chunk on its own, so the
    chunks before are the same bytes."""
    pipe = tiny_pipeline()
    torch.manual_seed(3)
    lq = torch.rand(1, 3, 20, 64, 64) * 2 - 1
    latent = pipe.vae.tiled_encode(lq, pipe.tiling)  # (1, 2 chunks, 2, 2, 16, t, h, w)
    assert latent.shape[1] == 2
    mask = torch.zeros(20, dtype=torch.bool)
    mask[::4] = True
    both = pipe._decode(latent, lq, mask, 64, 64)
    first = pipe._decode(latent[:, :1], lq[:, :, :10], mask[:10], 64, 64)
    assert both.shape[0] == 20 and np.array_equal(first, both[:10])


def test_progress_counts_every_denoising_step_of_the_video(monkeypatch):
    closed = []
    monkeypatch.setattr(_DenoisingProgress, "close", lambda self: closed.append((self.done, self.total)))
    pipe = tiny_pipeline()
    list(pipe.interpolate(shot(13, seed=10), 4, num_inputs=13))  # one shot: the plan is exact
    windows = window_schedule(13 * 4, 30, 10, (13 - 1) * 4 + 1)
    assert closed == [(len(windows) * 2, len(windows) * 2)] and len(windows) == 5
    # --max_chunks: the bar ends where the run does
    for max_chunks, expected_windows in ((1, 1), (2, 3), (3, 3), (4, 5)):
        closed.clear()
        list(tiny_pipeline(max_chunks=max_chunks).interpolate(shot(13, seed=10), 4, num_inputs=13))
        assert closed == [(expected_windows * 2, expected_windows * 2)], max_chunks


@pytest.mark.parametrize(
    "input_fps, target_fps, factor",
    [
        (Fraction(24000, 1001), Fraction(60), 3),
        (Fraction(25), Fraction(60), 3),
        (Fraction(30), Fraction(60), 2),
    ],
)
def test_any_output_rate_places_frames_at_their_exact_times(input_fps, target_fps, factor):
    clip = shot(5, seed=10)
    timed = [TimedFrame(frame, k / input_fps) for k, frame in enumerate(clip)]
    assert slot_factor(target_fps / input_fps) == factor
    out = list(tiny_pipeline().resample(timed, UniformGrid(target_fps)))
    last = 4 / input_fps
    expected = [j / target_fps for j in range(int(last * target_fps) + 1)]
    assert [f.time for f in out] == expected
    slots = tiny_pipeline()(clip, factor)  # what the model samples; an output time on a slot is that frame
    for f in out:
        slot = f.time * input_fps * factor
        if slot.denominator == 1:
            assert np.array_equal(f.image, slots[int(slot)])
    assert all(f.image.shape == (64, 64, 3) for f in out)


def test_a_cut_is_not_blended_at_other_output_rates(two_shots):
    a, b = two_shots
    timed = [TimedFrame(frame, Fraction(k, 25)) for k, frame in enumerate(a + b)]
    pipe = tiny_pipeline()
    out = list(pipe.resample(timed, UniformGrid(Fraction(60)), temporal_sf=3))
    slots = tiny_pipeline()(a + b, 3)
    gap = [f for f in out if Fraction(4, 25) < f.time < Fraction(5, 25)]
    assert pipe.scene_cuts == [4] and gap
    assert all(any(f.image is s or np.array_equal(f.image, s) for s in (slots[12], slots[15])) for f in gap)


def test_rates_the_ldf_backend_cannot_make_are_refused():
    with pytest.raises(InputError, match="only adds frames"):
        tiny_pipeline().retime(shot(3, seed=1), 30, 24)
    with pytest.raises(InputError, match="more than 16x"):
        tiny_pipeline().retime(shot(3, seed=1), 2, 60)


def _generate(tmp_path, weights, video, *flags):
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "generate.py"), "--data", str(video), "--output_dir", str(tmp_path / "out"),
         "--model_path", str(weights / "model"), "--vae_path", str(weights / "Wan2.1_VAE_cond_v2.pth"),
         *TINY_FLAGS, *flags],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_generate_target_fps_and_cuts_with_the_ldf_backend(tmp_path, tiny_weights, two_shots):  # noqa: F811
    import json

    a, b = two_shots
    video = write_video(tmp_path / "cut.mp4", a + b, fps=Fraction(24000, 1001))
    result = _generate(tmp_path, tiny_weights, video, "--target_fps", "60")
    assert result.returncode == 0, result.stderr[-3000:]
    info = probe(tmp_path / "out" / "cut" / "pred.mp4")
    expected = int(8 * Fraction(60) / Fraction(24000, 1001)) + 1  # frames at j/60 s up to the last input
    assert (info.num_frames, info.fps) == (expected, 60)
    assert len(read_frames(tmp_path / "out" / "cut" / "pred.mp4")) == expected
    record = json.loads((tmp_path / "out" / "cut" / "generate_config.result.json").read_text())
    assert record["scene_cuts"] == [4] and record["output_frames"] == expected
    # A variable-frame-rate input: every output frame at its input interval's subdivision of the real times.
    from corpus import variable_rate_video

    from ldf_vfi.io import FrameReader

    vfr, times = variable_rate_video(tmp_path)
    result = _generate(
        tmp_path, tiny_weights, vfr, "--temporal_sf", "2", "--output", str(tmp_path / "vfr2.mp4")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    shown = [frame.time for frame in FrameReader(tmp_path / "vfr2.mp4")]
    assert shown == [t for a, b in zip(times, times[1:]) for t in (a, (a + b) / 2)] + [times[-1]]
    vfr60 = _generate(
        tmp_path, tiny_weights, vfr, "--target_fps", "60", "--output", str(tmp_path / "vfr60.mp4")
    )
    assert vfr60.returncode == 0, vfr60.stderr[-3000:]
    assert [frame.time for frame in FrameReader(tmp_path / "vfr60.mp4")] == [
        Fraction(j, 60) for j in range(17)
    ]
    slow = _generate(tmp_path, tiny_weights, video, "--target_fps", "20", "--output", str(tmp_path / "x.mp4"))
    assert slow.returncode == 2 and slow.stderr.strip().count("\n") == 0
    assert "only adds frames" in slow.stderr and not (tmp_path / "x.mp4").exists()


def test_evaluate_runs_the_ldf_backend_without_detection(tmp_path):
    """Protocol numbers are the reference's: evaluate.py samples every clip as one video; generate.py cuts."""
    import argparse

    from ldf_vfi.backend_flags import backend_options
    from ldf_vfi.evaluation.cli import build_parser, settings_from_args

    vae = tmp_path / "vae.pth"
    vae.write_bytes(b"")
    flags = ["--backend", "ldf", "--model_path", str(tmp_path), "--vae_path", str(vae)]
    args = build_parser().parse_args(["--dataset", "snu_film", "--data_dir", str(tmp_path), *flags])
    assert settings_from_args(args).backend_options["detect_scene_cuts"] is False
    assert backend_options(argparse.Namespace(**vars(args)), "ldf")["detect_scene_cuts"] is True


@pytest.mark.slow
def test_evaluate_samples_a_clip_with_a_cut_as_one_video(tmp_path, tiny_weights, two_shots, capsys):  # noqa: F811
    """evaluate.py's ldf predictions are the reference's: one continuous video per clip, across the cut."""
    import cv2

    from ldf_vfi.evaluation.cli import main as evaluate_main
    from ldf_vfi.metrics.testing import write_random_metric_weights
    from ldf_vfi.pipelines.ldf import LDFVFIPipeline

    a, b = two_shots
    clip = tmp_path / "SNU" / "test" / "GOPRO_test" / "cut"
    clip.mkdir(parents=True)
    gt = a + b  # 9 frames: inputs 0, 2, 4, 6, 8 at x2, a cut between 4 and 5
    for i, frame in enumerate(gt):
        cv2.imwrite(str(clip / f"{i:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    write_random_metric_weights(tmp_path / "w")
    out = tmp_path / "eval"
    model = ["--model_path", tiny_weights / "model", "--vae_path", tiny_weights / "Wan2.1_VAE_cond_v2.pth"]
    code = evaluate_main([str(v) for v in [
        "--dataset", "snu_film", "--data_dir", tmp_path / "SNU", "--temporal_sf", 2, "--backend", "ldf", *model,
        *TINY_FLAGS, "--metrics", "psnr", "--weights_dir", tmp_path / "w", "--output_dir", out, "--save_pred",
        "--save_format", "png"]])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    pred = [
        cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted((out / "pred").rglob("*.png"))
    ]
    tiny = {k.lstrip("-"): int(v) for k, v in zip(TINY_FLAGS[::2], TINY_FLAGS[1::2])}
    files = (tiny_weights / "model", tiny_weights / "Wan2.1_VAE_cond_v2.pth")
    inputs = gt[::2]
    assert find_scene_cuts(inputs) == [2]
    continuous = LDFVFIPipeline.from_pretrained(*files, detect_scene_cuts=False, **tiny)(inputs, 2)
    assert len(pred) == len(continuous) == 9 and same(pred, continuous)
    assert not same(pred, LDFVFIPipeline.from_pretrained(*files, **tiny)(inputs, 2))  # generate.py's shots
