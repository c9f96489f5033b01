"""generate.py / `ldf-vfi interpolate` end to end, and the bad-input table (one line, exit 2, no output)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ldf_vfi.cli import main
from ldf_vfi.data.synthetic import moving_shapes_video
from ldf_vfi.distributed import ProcessInfo, shard_for_process
from ldf_vfi.errors import InputError
from ldf_vfi.io import probe, read_frames, write_frames_png

from conftest import REPO_ROOT, write_video


def run_generate(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "generate.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_generate_writes_video_at_input_fps_times_factor_with_audio(tmp_path, small_video_with_audio):
    result = run_generate(
        "--data",
        str(small_video_with_audio),
        "--temporal_sf",
        "3",
        "--output_dir",
        str(tmp_path / "out"),
        "--save_lq",
    )
    assert result.returncode == 0, result.stderr
    pred = tmp_path / "out" / "talky" / "pred.mp4"
    info = probe(pred)
    assert (info.num_frames, info.fps, info.width, info.height) == ((9 - 1) * 3 + 1, Fraction(75), 64, 48)
    assert info.has_audio
    lq = probe(tmp_path / "out" / "talky" / "lq.mp4")
    assert (lq.num_frames, lq.fps) == (9, 25)
    config = yaml.safe_load((tmp_path / "out" / "talky" / "generate_config.yaml").read_text())
    assert config["temporal_sf"] == 3 and config["backend"] == "flow" and config["save_lq"] is True
    summary = json.loads((tmp_path / "out" / "talky" / "generate_config.result.json").read_text())
    assert summary["output_frames"] == 25 and summary["input_frames"] == 9
    assert "wrote" in result.stdout


def test_explicit_fps_gives_slow_motion_without_audio(tmp_path, small_video_with_audio):
    out = tmp_path / "slow.mp4"
    assert (
        main(
            [
                "interpolate",
                "--data",
                str(small_video_with_audio),
                "--temporal_sf",
                "2",
                "--fps",
                "25",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    info = probe(out)
    assert (info.num_frames, info.fps, info.has_audio) == (17, 25, False)


def test_target_fps_and_png_output(tmp_path):
    frames = moving_shapes_video(5, 32, 48, seed=2)
    write_frames_png(tmp_path / "frames", frames)
    code = main(
        [
            "interpolate",
            "--data",
            str(tmp_path / "frames"),
            "--input_fps",
            "24",
            "--target_fps",
            "60",
            "--output_format",
            "png",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    out = read_frames(tmp_path / "out" / "frames" / "pred")
    assert len(out) == 11  # 4 intervals of 1/24 s at 60 fps -> times 0, 1/60, ..., 10/60
    np.testing.assert_array_equal(out[0], frames[0])
    np.testing.assert_array_equal(out[5], frames[2])  # 5/60 s = 2/24 s is an input frame
    np.testing.assert_array_equal(out[10], frames[4])


def test_folder_of_videos_each_processed_once_and_bad_ones_reported(tmp_path, capsys):
    batch = tmp_path / "batch"
    for name in ("a", "b"):
        write_video(batch / f"{name}.mp4", moving_shapes_video(3, 24, 32, seed=ord(name)))
    (batch / "z_broken.mp4").write_bytes(b"\x00" * 100)
    code = main(
        ["interpolate", "--data", str(batch), "--temporal_sf", "2", "--output_dir", str(tmp_path / "out")]
    )
    assert code == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b"]
    assert probe(tmp_path / "out" / "a" / "pred.mp4").num_frames == 5
    assert "error: cannot read video" in capsys.readouterr().err


def test_skip_existing(tmp_path, small_video):
    args = ["interpolate", "--data", str(small_video), "--temporal_sf", "2", "--output_dir", str(tmp_path)]
    assert main(args) == 0
    pred = tmp_path / "small" / "pred.mp4"
    stamp = pred.stat().st_mtime_ns
    assert main([*args, "--skip_existing"]) == 0
    assert pred.stat().st_mtime_ns == stamp


def test_sharding_gives_each_item_to_exactly_one_group():
    items = list(range(7))
    for world, sp in ((1, 1), (2, 1), (3, 1), (4, 2), (4, 4)):
        seen = []
        for rank in range(world):
            mine = shard_for_process(items, ProcessInfo(rank, world, rank), sp_size=sp)
            if rank % sp == 0:
                seen += mine
            else:  # every rank of a sequence-parallel group gets the group's items
                assert mine == shard_for_process(items, ProcessInfo(rank - rank % sp, world, 0), sp_size=sp)
        assert sorted(seen) == items
    with pytest.raises(InputError, match="must divide"):
        shard_for_process(items, ProcessInfo(0, 3, 0), sp_size=2)


def test_ranks_from_torchrun_environment_split_a_folder(tmp_path):
    batch = tmp_path / "batch"
    for name in ("a", "b", "c"):
        write_video(batch / f"{name}.mp4", moving_shapes_video(2, 16, 16, seed=ord(name)))
    for rank in (0, 1):
        result = run_generate(
            "--data",
            str(batch),
            "--temporal_sf",
            "2",
            "--output_dir",
            str(tmp_path / "out"),
            env={"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)},
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("wrote") == (2 if rank == 0 else 1)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b", "c"]


def _one_frame_video(d: Path) -> Path:
    return write_video(d / "one.mp4", moving_shapes_video(1, 16, 16))


def _empty_frame_folder(d: Path) -> Path:
    (d / "frames").mkdir()
    (d / "frames" / "readme.txt").write_text("no frames here")
    return d / "frames"


def _corrupt_video(d: Path) -> Path:
    path = d / "corrupt.mp4"
    path.write_bytes(os.urandom(4096))
    return path


def _truncated_video(d: Path) -> Path:
    good = write_video(d / "good.mp4", moving_shapes_video(6, 32, 32))
    path = d / "truncated.mp4"
    path.write_bytes(good.read_bytes()[:200])
    return path


def _unreadable_png(d: Path) -> Path:
    (d / "frames").mkdir()
    cv2.imwrite(str(d / "frames" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    (d / "frames" / "1.png").write_bytes(b"not a png")
    return d / "frames"


BAD_INPUTS = {
    "missing file": (lambda d: d / "nope.mp4", [], "--data: not found"),
    "corrupt file": (_corrupt_video, [], "cannot read video"),
    "truncated file": (_truncated_video, [], "corrupt.mp4|truncated.mp4|has no frames|cannot read|corrupt"),
    "empty folder": (_empty_frame_folder, [], "no videos"),
    "one frame": (_one_frame_video, [], "needs at least 2"),
    "unreadable frame": (_unreadable_png, [], "cannot read image"),
    "factor zero": (_one_frame_video, ["--temporal_sf", "0"], "between 1 and 16"),
    "factor too big": (_one_frame_video, ["--temporal_sf", "17"], "between 1 and 16"),
    "target fps too high": (
        lambda d: write_video(d / "v.mp4", moving_shapes_video(3, 16, 16)),
        ["--target_fps", "1000"],
        "more than 16x",
    ),
    "diffusion backend": (_one_frame_video, ["--backend", "ldf"], "needs the released weights"),
    "missing weights": (_one_frame_video, ["--model_path", "/no/such/weights"], "--model_path: not found"),
    "bad window": (_one_frame_video, ["--num_frames", "50"], "--num_frames must be a multiple"),
    "bad crf": (_one_frame_video, ["--crf", "99"], "--crf"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, case):
    make, extra, message = BAD_INPUTS[case]
    data = make(tmp_path)
    out = tmp_path / "out"
    result = run_generate("--data", str(data), "--output_dir", str(out), *extra)
    assert result.returncode == 2, (result.stdout, result.stderr)
    # stderr may also hold the (cleared) progress bar; the error itself is exactly one line, no traceback
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_bad_flag_type_is_reported_by_argparse(tmp_path, small_video):
    result = run_generate("--data", str(small_video), "--temporal_sf", "two")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: argument --temporal_sf: invalid int value: 'two'"
    ]
    result = run_generate("--data", str(small_video), "--fps", "-3")
    assert result.returncode == 2 and "must be positive" in result.stderr


def test_quick_start_script_runs_the_flow_backend(tmp_path, small_video):
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "quick_start" / "generate.sh")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DATA": str(small_video), "TEMPORAL_SF": "2", "OUTPUT_DIR": str(tmp_path / "qs")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert probe(tmp_path / "qs" / "small" / "pred.mp4").num_frames == 17


@pytest.mark.distributed
def test_quick_start_under_torchrun_processes_each_video_once(tmp_path):
    batch = tmp_path / "batch"
    for name in ("a", "b", "c"):
        write_video(batch / f"{name}.mp4", moving_shapes_video(3, 16, 16, seed=ord(name)))
    env = {**os.environ, "DATA": str(batch), "TEMPORAL_SF": "2", "OUTPUT_DIR": str(tmp_path / "out"),
           "LAUNCHER": "torchrun", "NUM_PROCESSES": "2", "MAIN_PROCESS_PORT": "29641", "OMP_NUM_THREADS": "1"}  # fmt: skip
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "quick_start" / "generate.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("wrote ") == 3  # rank 0 wrote a and c, rank 1 wrote b
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b", "c"]
