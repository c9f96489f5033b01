"""A new dataset is one config file: validation, round trip, and one file driving training and evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ldf_vfi.data.registry import (
    DatasetConfig,
    eval_clips,
    load_dataset_config,
    save_dataset_config,
    train_records,
    video_folder_entries,
)
from ldf_vfi.data.synthetic import MovingShapes
from ldf_vfi.errors import InputError
from ldf_vfi.io import write_frames_png

from conftest import REPO_ROOT, write_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clips_folder(tmp_path_factory) -> Path:
    """my_clips/: two videos in sub-folders, one folder of frames, a split file; 17 frames each."""
    root = tmp_path_factory.mktemp("data") / "my_clips"
    write_video(root / "city" / "a.mp4", MovingShapes(64, 64, seed=1).frames(17))
    write_video(root / "city" / "b.mp4", MovingShapes(64, 64, motion="occlude", seed=2).frames(17))
    write_frames_png(root / "frames" / "c", MovingShapes(64, 64, motion="rotate", seed=3).frames(17))
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("city/a.mp4\ncity/b.mp4\n")
    return root


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_entries_splits_and_clips(clips_folder, tmp_path):
    config = load_dataset_config(
        write_config(tmp_path / "mine.yaml", {"type": "video_folder", "root": str(clips_folder), "fps": 24,
                                              "splits": {"train": "splits/train.txt", "test": ["frames/c", "city/b.mp4"]}})
    )  # fmt: skip
    everything = [p.relative_to(clips_folder).as_posix() for p in video_folder_entries(config)]
    assert everything == ["city/a.mp4", "city/b.mp4", "frames/c"]
    assert [p.name for p in video_folder_entries(config, "train")] == ["a.mp4", "b.mp4"]
    clips = eval_clips(config, split="test")
    assert [(c.clip_id, c.subset, len(c)) for c in clips] == [
        ("city--b", "city", 17),
        ("frames--c", "frames", 17),
    ]
    assert clips[0].load(16).shape == clips[1].load(16).shape == (64, 64, 3)
    records = train_records(config, "train")
    assert [(Path(r.video).name, r.num_frames, r.width) for r in records] == [
        ("a.mp4", 17, 64),
        ("b.mp4", 17, 64),
    ]


def test_round_trip_file_dataclass_file(clips_folder, tmp_path):
    first = load_dataset_config(
        write_config(
            tmp_path / "a.yaml", {"type": "video_folder", "root": str(clips_folder), "temporal_sf": 4}
        )
    )
    again = load_dataset_config(save_dataset_config(first, tmp_path / "b.json"))
    assert (again.type, again.root, again.temporal_sf, again.splits) == (
        "video_folder",
        str(clips_folder),
        4,
        {},
    )
    assert isinstance(again, DatasetConfig)


@pytest.mark.parametrize(
    "content, message",
    [
        (
            {"type": "video_folder", "root": "{root}", "temporal_sfx": 4},
            "unknown key 'temporal_sfx' in dataset config '.*bad.yaml' \\(did you mean 'temporal_sf'\\?\\)",
        ),
        (
            {"type": "video_foldr", "root": "{root}"},
            "'type' in dataset config '.*bad.yaml' must be one of .*did you mean 'video_folder'",
        ),
        (
            {"type": "video_folder", "root": "/no/such/folder"},
            "'root' in dataset config '.*bad.yaml': not found: '/no/such/folder'",
        ),
        (
            {"type": "video_folder", "root": "{root}", "temporal_sf": "eight"},
            "'temporal_sf' in dataset config .* must be int",
        ),
        ({"type": "video_folder", "root": "{root}", "temporal_sf": 32}, "'temporal_sf' .* between 1 and 16"),
        ({"type": "video_folder", "root": "{root}", "fps": -1}, "'fps' .* positive"),
        (
            {"type": "video_folder", "root": "{root}", "splits": {"val": []}},
            "'splits' .* may name train and test, not 'val'",
        ),
        ({"root": "{root}"}, "needs 'type'"),
    ],
)
def test_each_bad_key_is_one_clear_error(clips_folder, tmp_path, content, message):
    content = {k: (v.format(root=clips_folder) if isinstance(v, str) else v) for k, v in content.items()}
    with pytest.raises(InputError, match=message):
        load_dataset_config(write_config(tmp_path / "bad.yaml", content))


def test_missing_split_entries_are_reported(clips_folder, tmp_path):
    config = load_dataset_config(
        write_config(
            tmp_path / "c.yaml",
            {"type": "video_folder", "root": str(clips_folder), "splits": {"test": ["city/zzz.mp4"]}},
        )
    )
    with pytest.raises(InputError, match="lists 'city/zzz.mp4', not found"):
        eval_clips(config)


def test_shipped_dataset_configs_parse(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder in ("data/LAVIB", "data/SNU-FILM", "data/X4K1000FPS", "data/my_clips"):
        (tmp_path / folder).mkdir(parents=True)
    types = {}
    for file in sorted((REPO_ROOT / "configs" / "datasets").glob("*.yaml")):
        types[file.stem] = load_dataset_config(file).type
    assert types == {
        "lavib": "lavib",
        "snu_film": "snu_film",
        "video_folder": "video_folder",
        "x4k1000fps": "x4k1000fps",
    }


def test_one_config_trains_a_tiny_model_and_evaluates_the_flow_backend(clips_folder, tmp_path):
    from ldf_vfi.models.transformer import tiny_config
    from ldf_vfi.models.vae import save_original_state_dict, tiny_vae

    config = write_config(tmp_path / "my_clips.yaml", {"type": "video_folder", "root": str(clips_folder),
                                                        "splits": {"train": "splits/train.txt", "test": ["frames/c"]},
                                                        "temporal_sf": 4})  # fmt: skip
    save_original_state_dict(tiny_vae(), tmp_path / "vae.pth")
    (tmp_path / "dit.json").write_text(json.dumps(tiny_config()))
    train = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), "--data", str(config), "--model_config", str(tmp_path / "dit.json"),
         "--vae_path", str(tmp_path / "vae.pth"), "--output_dir", str(tmp_path / "run"), "--num_frames", "15",
         "--pn", "64x64", "--temporal_sf", "2-4", "--tile_min_h", "48", "--tile_min_w", "48", "--tile_stride_h", "32",
         "--tile_stride_w", "32", "--tile_min_t", "5", "--vae_batch_size", "8", "--no_grad_checkpoint",
         "--dataloader_num_workers", "0", "--rampup_Msample", "0", "--logger", "none", "--batch_size", "1",
         "--batch_gpu", "1", "--max_train_steps", "2", "--checkpointing_steps", "2"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    steps = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(steps) == 2 and all(step["loss"] > 0 for step in steps)
    evaluate = subprocess.run(
        [sys.executable, str(REPO_ROOT / "evaluate.py"), "--dataset_config", str(config), "--backend", "flow",
         "--metrics", "psnr,ssim", "--output_dir", str(tmp_path / "eval")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert (summary["dataset"], summary["temporal_sf"], summary["num_videos"]) == ("video_folder", 4, 1)
    assert summary["num_scored_frames"] == 12 and summary["metrics"]["psnr"] > 20  # 4 blocks x 3 frames


@pytest.mark.distributed
def test_torchrun_spreads_three_videos_and_merges_one_table(clips_folder, tmp_path):
    config = write_config(
        tmp_path / "all.yaml", {"type": "video_folder", "root": str(clips_folder), "temporal_sf": 4}
    )
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29631",
    ]
    result = subprocess.run(
        [*torchrun, str(REPO_ROOT / "evaluate.py"), "--dataset_config", str(config), "--backend", "flow",
         "--metrics", "psnr", "--output_dir", str(tmp_path / "eval")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (tmp_path / "eval" / "per_clip_metrics.csv").read_text().splitlines()
    clip_ids = sorted(line.split(",")[0] for line in rows[1:])
    assert clip_ids == ["city--a", "city--b", "frames--c"]  # each exactly once
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["num_videos"] == 3
