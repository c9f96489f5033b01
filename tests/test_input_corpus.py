"""generate.py on a corpus of damaged and unusual inputs (``tests/corpus.py``), with both backends where they
apply: every input gets a correct output or one ``error:`` line, exit status 2 and nothing left behind.

The ldf backend runs with tiny random weights saved in the released formats (``tiny_weights`` from
test_ldf_pipeline): its pictures are noise, but sizes, counts, times and errors are what a user gets.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import corpus
import cv2
import numpy as np
import pytest
from test_ldf_pipeline import TINY_FLAGS, tiny_weights  # noqa: F401  (a module fixture, reused here)

from ldf_vfi.cli import main
from ldf_vfi.io import FrameReader, probe, write_frames_png

from conftest import REPO_ROOT, write_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(params=["flow", "ldf"])
def backend_flags(request) -> list[str]:
    if request.param == "flow":
        return ["--backend", "flow"]
    weights = request.getfixturevalue("tiny_weights")
    return ["--backend", "ldf", "--model_path", str(weights / "model"),
            "--vae_path", str(weights / "Wan2.1_VAE_cond_v2.pth"), *TINY_FLAGS]  # fmt: skip


def generate(capsys, *argv: str) -> tuple[int, str, list[str]]:
    """Run ``ldf-vfi interpolate`` in this process; returns (status, stdout, the ``error:`` lines)."""
    try:
        code = main(["interpolate", *argv])
    except SystemExit as exc:  # argparse's own errors (a bad --data value) exit
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    lines = [part.strip() for line in err.splitlines() for part in line.split("\r")]
    return code, out, [line for line in lines if line.startswith("error")]


def left_behind(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


def result_record(folder: Path) -> dict:
    return json.loads((folder / "generate_config.result.json").read_text())


# -- damaged inputs: one error line, exit 2, nothing written --------------------------------------------


DAMAGED = {
    "truncated video": (corpus.truncated_video, r"truncated\.mp4' is damaged: decoding stopped after 20 of 30 frames"),
    "zeroed video": (corpus.zeroed_video, r"zeroed\.mp4' is damaged: decoding stopped after 1 of 12 frames"),
    "corrupt image": (corpus.frames_with_corrupt_image, r"cannot read image .*00000003\.png"),
    "mixed sizes": (corpus.frames_of_mixed_sizes, r"00000003\.png' is 64x40 but earlier frames are 64x48"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_input_is_one_error_and_leaves_nothing(tmp_path, capsys, backend_flags, case):
    make, message = DAMAGED[case]
    data = make(tmp_path)
    out = tmp_path / "runs" / "out"
    code, _, errors = generate(capsys, "--data", str(data), "--output_dir", str(out), "--temporal_sf", "2",
                               "--save_lq", *backend_flags)  # fmt: skip
    assert code == 2 and len(errors) == 1, errors
    assert re.search(message, errors[0]), errors[0]
    assert "Errno" not in errors[0]
    assert not (tmp_path / "runs").exists(), left_behind(tmp_path / "runs")  # not even the empty folders


def test_damaged_video_in_a_batch_is_reported_and_the_others_written(tmp_path, capsys):
    batch = tmp_path / "batch"
    corpus.encode(batch / "good.mp4", corpus.shapes(3))
    corpus.truncated_video(batch)
    out = tmp_path / "out"
    code, stdout, errors = generate(
        capsys, "--data", str(batch), "--output_dir", str(out), "--temporal_sf", "2"
    )
    assert code == 2 and len(errors) == 1 and "truncated.mp4" in errors[0]
    assert sorted(p.name for p in out.iterdir()) == ["good"]  # no empty truncated/ folder
    assert probe(out / "good" / "pred.mp4").num_frames == 5


def test_truncated_matroska_is_read_as_far_as_it_goes_and_says_so(tmp_path, capsys, caplog):
    """Matroska has no frame count: a cut file decodes cleanly. Its stated duration gives it away; the frames
    read are used, a warning says how many, and the result record counts what was really read and written."""
    data = corpus.truncated_mkv(tmp_path)
    caplog.set_level(logging.WARNING, logger="ldf_vfi")
    code, _, errors = generate(
        capsys, "--data", str(data), "--output_dir", str(tmp_path / "out"), "--temporal_sf", "2"
    )
    assert code == 0 and not errors
    assert any("ends after 20 frames" in r.message and "truncated" in r.message for r in caplog.records)
    record = result_record(tmp_path / "out" / "truncated")
    assert (record["input_frames"], record["output_frames"]) == (20, 39)
    assert probe(tmp_path / "out" / "truncated" / "pred.mp4").num_frames == 39


# -- unusual but valid inputs: a correct output ---------------------------------------------------------


@pytest.mark.parametrize("rotation, hflip", [(90, False), (-90, False), (180, False), (90, True)])
def test_rotated_phone_video_comes_out_as_it_is_shown(tmp_path, capsys, rotation, hflip):
    data, shown = corpus.rotated_video(tmp_path, rotation, hflip)
    info = probe(data)
    assert (info.width, info.height) == (64, 96)
    code, _, _ = generate(
        capsys, "--data", str(data), "--output_dir", str(tmp_path / "out"), "--temporal_sf", "2"
    )
    assert code == 0
    result = tmp_path / "out" / data.stem / "pred.mp4"
    assert (probe(result).width, probe(result).height, probe(result).rotation) == (64, 96, 0)
    frames = [frame.image for frame in FrameReader(result)]
    for k in range(len(shown)):  # input frame k at slot 2k, upright
        errors = [np.abs(frames[2 * k].astype(int) - other).mean() for other in shown]
        assert int(np.argmin(errors)) == k and errors[k] < 12, errors


def test_rotated_video_with_the_ldf_backend_has_the_shown_size(tmp_path, capsys, request):
    weights = request.getfixturevalue("tiny_weights")
    data, _ = corpus.rotated_video(tmp_path, 90)
    code, _, _ = generate(capsys, "--data", str(data), "--output_dir", str(tmp_path / "out"), "--temporal_sf", "2",
                          "--model_path", str(weights / "model"),
                          "--vae_path", str(weights / "Wan2.1_VAE_cond_v2.pth"), *TINY_FLAGS)  # fmt: skip
    assert code == 0
    info = probe(tmp_path / "out" / "phone_90" / "pred.mp4")
    assert (info.width, info.height, info.num_frames) == (64, 96, 5)


def test_variable_frame_rate_keeps_every_frame_at_its_real_time(tmp_path, capsys, backend_flags):
    """--temporal_sf 2 on frames at 0, 1, 3, 4, 7, 8 thirtieths: output frames at those times and halfway
    between neighbours, and the clip ends when the input ends."""
    data, times = corpus.variable_rate_video(tmp_path)
    code, _, _ = generate(capsys, "--data", str(data), "--output_dir", str(tmp_path / "out"), "--temporal_sf", "2",
                          *backend_flags)  # fmt: skip
    assert code == 0
    source, result = FrameReader(data), FrameReader(tmp_path / "out" / "vfr" / "pred.mp4")
    list(source)
    got = [frame.time for frame in result]
    expected = [t for a, b in zip(times, times[1:]) for t in (a, (a + b) / 2)] + [times[-1]]
    assert got == expected
    assert abs(result.end_time - source.end_time) <= Fraction(1, 1000)  # duration kept (MP4 edit lists: ms)


def test_variable_frame_rate_to_a_target_rate_is_constant_and_exact(tmp_path, capsys):
    data, times = corpus.variable_rate_video(tmp_path)
    inputs = [frame.image for frame in FrameReader(data)]
    out = tmp_path / "vfr60.mp4"
    code, _, _ = generate(
        capsys, "--data", str(data), "--output", str(out), "--target_fps", "60", "--crf", "0"
    )
    assert code == 0
    result = list(FrameReader(out))
    assert [frame.time for frame in result] == [Fraction(j, 60) for j in range(17)]  # 0 .. 8/30 s
    for k, time in enumerate(times):  # output frames at input times show those inputs
        errors = [np.abs(result[int(time * 60)].image.astype(int) - image).mean() for image in inputs]
        assert int(np.argmin(errors)) == k and errors[k] < 8, errors


@pytest.mark.parametrize("fmt", ["mp4", "mkv", "mov"])
def test_last_frame_keeps_its_duration(tmp_path, capsys, backend_flags, fmt):
    """9 frames at 25 fps last 9/25 s; x4 gives 33 frames at 100 fps, the last shown for 4/100 s."""
    source = write_video(tmp_path / "clip.mp4", corpus.shapes(9, 32, 32))
    out = tmp_path / f"pred.{fmt}"
    code, _, _ = generate(capsys, "--data", str(source), "--output", str(out), *backend_flags)
    assert code == 0
    reader = FrameReader(out)
    frames = list(reader)
    assert len(frames) == 33 and frames[-1].time == Fraction(32, 100)
    assert reader.end_time == Fraction(9, 25)
    assert probe(out).fps == 100  # the nominal rate is not lowered by the long last frame


def test_same_stem_inputs_get_separate_results(tmp_path, capsys):
    """clip.mp4 and clip.mov would both write clip/pred.mp4: they get clip.mp4/ and clip.mov/; a stem that
    is unique keeps the plain name (other/), as before."""
    batch = corpus.same_stem_inputs(tmp_path)
    out = tmp_path / "out"
    code, stdout, errors = generate(
        capsys, "--data", str(batch), "--output_dir", str(out), "--temporal_sf", "2"
    )
    assert code == 0 and not errors
    assert sorted(p.name for p in out.iterdir()) == ["clip.mov", "clip.mp4", "other"]
    for name, seed in (("clip.mp4", 1), ("clip.mov", 2)):
        first = next(iter(FrameReader(out / name / "pred.mp4"))).image
        assert np.abs(first.astype(int) - corpus.shapes(1, seed=seed)[0]).mean() < 12
        assert result_record(out / name)["input"] == str(batch / name)


def test_video_inside_a_frame_folder_gets_a_note(tmp_path, capsys, caplog):
    data = corpus.frames_beside_a_video(tmp_path)
    caplog.set_level(logging.WARNING, logger="ldf_vfi")
    code, _, _ = generate(
        capsys, "--data", str(data), "--output_dir", str(tmp_path / "out"), "--temporal_sf", "2"
    )
    assert code == 0
    assert any("also_here.mp4" in r.message and "not processed" in r.message for r in caplog.records)
    assert probe(tmp_path / "out" / "frames" / "pred.mp4").num_frames == 5


@pytest.mark.parametrize("height, width", [(2, 2), (6, 10), (17, 33)])
def test_tiny_frames(tmp_path, capsys, backend_flags, height, width):
    resized = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in corpus.shapes(3)]
    small = corpus.frame_folder(tmp_path, resized, name="tiny")
    code, _, errors = generate(capsys, "--data", str(small), "--output_dir", str(tmp_path / "out"), "--temporal_sf", "3",
                               "--output_format", "png", *backend_flags)  # fmt: skip
    assert code == 0, errors
    out = sorted((tmp_path / "out" / "tiny" / "pred").iterdir())
    assert len(out) == 7
    assert all(cv2.imread(str(p)).shape == (height, width, 3) for p in out)


def test_huge_frames(tmp_path, capsys):
    """Wider than H.264 allows (16384): refused before any work for a video, fine as PNG frames."""
    wide = [np.tile(f, (1, 313, 1))[:, :20000] for f in corpus.shapes(2, 16, 64)]
    data = write_frames_png(tmp_path / "wide", wide)[0].parent
    code, _, errors = generate(capsys, "--data", str(data), "--output_dir", str(tmp_path / "out"))
    assert code == 2 and "too large for an H.264 video" in errors[0] and "--output_format png" in errors[0]
    assert not (tmp_path / "out").exists()
    code, _, _ = generate(capsys, "--data", str(data), "--output_dir", str(tmp_path / "out"), "--temporal_sf", "2",
                          "--output_format", "png", "--flow_preset", "ultrafast")  # fmt: skip
    assert code == 0 and len(list((tmp_path / "out" / "wide" / "pred").iterdir())) == 3


def test_slow_motion_does_not_claim_audio(tmp_path, capsys, caplog, small_video_with_audio):
    caplog.set_level(logging.INFO, logger="ldf_vfi")
    out = tmp_path / "slow.mp4"
    code, _, _ = generate(capsys, "--data", str(small_video_with_audio), "--temporal_sf", "4", "--fps", "25",
                          "--output", str(out))  # fmt: skip
    assert code == 0
    line = next(r.message for r in caplog.records if "talky.mp4:" in r.message)
    assert "with audio" not in line and "audio not copied: slow motion" in line
    info, reader = probe(out), FrameReader(out)
    list(reader)
    assert (info.has_audio, info.num_frames) == (False, 33)
    assert reader.end_time == Fraction(36, 25)  # 9 input frames of 1/25 s, 4x slower
    assert result_record_for(out)["audio"] is False


def result_record_for(output: Path) -> dict:
    return json.loads(output.with_name(f"{output.name}.config.result.json").read_text())


# -- bad paths and flags: refused before any work ------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (lambda d: ["--data", ""], "the input path is empty"),
        (lambda d: ["--data", f"{d / 'v.mp4'}/"], r"v\.mp4/' ends with '/' but .* is a file"),
        (lambda d: ["--data", str(d / "v.mp4" / "x.mp4")], r"not found: .*a part of it is a file"),
        (lambda d: ["--data", str(d / "v.mp4"), "--target_fps", "60", "--temporal_sf", "4"], "give one of them"),
        (lambda d: ["--data", str(d / "v.mp4"), "--output_dir", str(d / "v.mp4")], r"v\.mp4' is a file"),
        (lambda d: ["--data", str(d / "v.mp4"), "--output_dir", str(d / "v.mp4" / "sub")], r"v\.mp4' is a file"),
        (lambda d: ["--data", str(d / "v.mp4"), "--output", str(d / "v.mp4")], "would overwrite the input"),
        (lambda d: ["--data", str(d / "v.mp4"), "--output", str(d / "x.avi")], "cannot write .avi videos"),
        (lambda d: ["--data", str(d / "v.mp4"), "--output", str(d / "x.mp4"), "--output_format", "png"],
         "contradicts --output"),
        (lambda d: ["--data", str(d / "v.mp4"), "--output", str(d / "folder.mp4")], "a folder of that name exists"),
        (lambda d: ["--data", str(d / "v.mp4"), "--is_img_folder"], "is a file"),
        (lambda d: ["--data", str(d / "v.mp4"), "--backend", "ldf", "--model_path", str(d), "--vae_path",
                    str(d / "v.mp4"), "--num_frames", "50"], "--num_frames must be a multiple of --tile_min_t"),
    ],
)  # fmt: skip
def test_bad_paths_and_flags_are_refused_before_any_work(tmp_path, capsys, argv, message):
    write_video(tmp_path / "v.mp4", corpus.shapes(3, 16, 16))
    (tmp_path / "folder.mp4").mkdir()
    before = left_behind(tmp_path)
    code, _, errors = generate(capsys, *argv(tmp_path))
    assert code == 2 and len(errors) == 1, errors
    assert re.search(message, errors[0]), errors[0]
    assert left_behind(tmp_path) == before


def test_special_files_are_refused_without_opening_them(tmp_path):
    """A named pipe would block the reader forever; a socket or device is not a video either."""
    pipe = corpus.named_pipe(tmp_path)
    sock, server = corpus.unix_socket(tmp_path)
    try:
        for data, message in (
            (pipe, "is a named pipe"),
            (sock, "is a socket"),
            ("/dev/null", "is a character device"),
        ):
            result = subprocess.run([sys.executable, str(REPO_ROOT / "generate.py"), "--data", str(data),
                                     "--output_dir", str(tmp_path / "out")],
                                    capture_output=True, text=True, timeout=60)  # fmt: skip
            assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
            assert message in result.stderr and result.stderr.startswith("error:")
    finally:
        server.close()
    assert not (tmp_path / "out").exists()


def test_special_file_in_a_folder_is_skipped_with_a_note(tmp_path, capsys, caplog):
    batch = tmp_path / "batch"
    write_video(batch / "a.mp4", corpus.shapes(3, 16, 16))
    corpus.named_pipe(batch, "b.mp4")
    caplog.set_level(logging.WARNING, logger="ldf_vfi")
    code, _, _ = generate(
        capsys, "--data", str(batch), "--output_dir", str(tmp_path / "out"), "--temporal_sf", "2"
    )
    assert code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a"]
    assert any("b.mp4" in r.message and "named pipe" in r.message for r in caplog.records)


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder no file can be created in: a read-only folder for ordinary users; as root (who may write
    anywhere) a folder under /sys, where even root cannot create one."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o555)
        return folder / "out"
    if not Path("/sys").is_dir():
        pytest.skip("no unwritable location for root here")
    return Path("/sys") / "ldf_vfi_test_output"


def test_unwritable_output_is_one_error_before_any_work(tmp_path, capsys):
    source = write_video(tmp_path / "v.mp4", corpus.shapes(3, 16, 16))
    out = _unwritable_folder(tmp_path)
    code, _, errors = generate(capsys, "--data", str(source), "--output_dir", str(out))
    assert code == 2 and len(errors) == 1 and "cannot write" in errors[0], errors
    assert "Errno" not in errors[0] and not out.exists()
