"""data_tools.py: indexing a LAVIB-shaped folder (and plain folders) into index.jsonl, with clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from ldf_vfi.data.lavib import (
    INDEX_NAME,
    find_lavib_clips,
    lavib_clip_folder,
    main,
    read_index,
    write_synthetic_lavib,
)
from ldf_vfi.errors import InputError

from conftest import REPO_ROOT


@pytest.fixture(scope="module")
def lavib_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("LAVIB")
    write_synthetic_lavib(root, num_clips=3, num_frames=12, height=48, width=64, fps=60)
    return root


def test_clip_folder_names_follow_lavib():
    row = {"name": "123.0", "shot": "4", "tmp_crop": "7", "vrt_crop": "2", "hrz_crop": "1", "afm": "3.2"}
    assert lavib_clip_folder(row) == "123_shot4_7_2_1"
    with pytest.raises(InputError, match="hrz_crop"):
        lavib_clip_folder({"name": 1, "shot": 1, "tmp_crop": 1, "vrt_crop": 1})


def test_index_all_clips(lavib_root, tmp_path):
    assert main(["--src", str(lavib_root), "--dst", str(tmp_path / "idx"), "--num_workers", "1"]) == 0
    records = read_index(tmp_path / "idx")
    assert len(records) == 3
    for record in records:
        assert Path(record.video).name == "vid.mp4" and Path(record.video).is_absolute()
        assert (record.num_frames, record.width, record.height) == (12, 64, 48)
        assert Fraction(record.fps) == 60
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert meta["layout"] == "lavib" and meta["num_videos"] == 3 and meta["split"] == "all"
    # The index file itself is accepted as --data too.
    assert read_index(tmp_path / "idx" / INDEX_NAME) == records


def test_index_a_split_and_report_missing_clips(lavib_root, tmp_path):
    assert (
        main(
            [
                "--src",
                str(lavib_root),
                "--dst",
                str(tmp_path / "train"),
                "--split",
                "train",
                "--num_workers",
                "2",
            ]
        )
        == 0
    )
    assert len(read_index(tmp_path / "train")) == 2
    clips, missing = find_lavib_clips(lavib_root, "test")
    assert len(clips) == 1 and missing == []
    # A split that names a clip that is not on disk: indexed without it, and said so.
    extra = lavib_root / "annotations" / "partial.csv"
    extra.write_text(",name,shot,tmp_crop,vrt_crop,hrz_crop\n0,1000,0,1,1,1\n1,9999,0,1,1,1\n")
    try:
        clips, missing = find_lavib_clips(lavib_root, "partial")
        assert len(clips) == 1 and missing == ["9999_shot0_1_1_1"]
        assert (
            main(
                [
                    "--src",
                    str(lavib_root),
                    "--dst",
                    str(tmp_path / "p"),
                    "--split",
                    "partial",
                    "--num_workers",
                    "1",
                ]
            )
            == 0
        )
        assert "missing 9999_shot0_1_1_1" in (tmp_path / "p" / "skipped.txt").read_text()
    finally:
        extra.unlink()


def test_min_frames_and_overwrite(lavib_root, tmp_path):
    dst = str(tmp_path / "idx")
    assert main(["--src", str(lavib_root), "--dst", dst, "--num_workers", "1"]) == 0
    with pytest.raises(InputError, match="--overwrite"):
        from ldf_vfi.data.lavib import build_parser, run

        run(build_parser().parse_args(["--src", str(lavib_root), "--dst", dst]))
    assert main(["--src", str(lavib_root), "--dst", dst, "--min_frames", "13", "--overwrite"]) == 2


@pytest.mark.parametrize(
    "setup, extra, message",
    [
        ("plain", [], "not a LAVIB root"),
        ("empty_segments", [], "no clip folders"),
        ("lavib", ["--split", "val"], "no split file"),
        ("missing", [], "is not a folder"),
    ],
)
def test_wrong_layouts_give_one_line_errors(tmp_path, capsys, setup, extra, message):
    src = tmp_path / "src"
    if setup == "plain":
        (src / "videos").mkdir(parents=True)
    elif setup == "empty_segments":
        (src / "segments" / "1_shot0_1_1_1").mkdir(parents=True)
    elif setup == "lavib":
        write_synthetic_lavib(src, num_clips=1, num_frames=3, height=16, width=16)
    assert main(["--src", str(src), "--dst", str(tmp_path / "dst"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_folder_layout_indexes_any_videos(lavib_root, tmp_path):
    assert (
        main(["--src", str(lavib_root / "segments"), "--dst", str(tmp_path / "f"), "--layout", "folder"]) == 0
    )
    assert len(read_index(tmp_path / "f")) == 3


def test_unreadable_videos_are_skipped(tmp_path):
    src = tmp_path / "src"
    write_synthetic_lavib(src, num_clips=2, num_frames=3, height=16, width=16)
    broken = src / "segments" / "5_shot0_1_1_1"
    broken.mkdir()
    (broken / "vid.mp4").write_bytes(b"not a video")
    assert main(["--src", str(src), "--dst", str(tmp_path / "dst"), "--num_workers", "1"]) == 0
    assert len(read_index(tmp_path / "dst")) == 2
    assert "unreadable" in (tmp_path / "dst" / "skipped.txt").read_text()


def test_hand_written_index_with_relative_paths(tmp_path, lavib_root):
    clip = next((lavib_root / "segments").iterdir()) / "vid.mp4"
    (tmp_path / "my").mkdir()
    link = tmp_path / "my" / "clip.mp4"
    link.write_bytes(clip.read_bytes())
    (tmp_path / "my" / INDEX_NAME).write_text(
        json.dumps({"video": "clip.mp4", "num_frames": 12, "fps": "60", "width": 64, "height": 48}) + "\n"
    )
    (record,) = read_index(tmp_path / "my")
    assert Path(record.video) == link
    (tmp_path / "my" / INDEX_NAME).write_text('{"video": "clip.mp4"}\n')
    with pytest.raises(InputError, match="not a video record"):
        read_index(tmp_path / "my")


def test_data_tools_script_runs(lavib_root, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "data_tools.py",
            "--src",
            str(lavib_root),
            "--dst",
            str(tmp_path / "d"),
            "--num_workers",
            "1",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "3 videos" in result.stdout
