"""The protocol picks the reference's frames and does its arithmetic; the SNU-FILM / X4K loaders read the
reference layouts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ldf_vfi.data import EvalClip, area_resize_truncate, parse_resolution
from ldf_vfi.data.snu_film import find_snu_film_clips, resolve_listed_path
from ldf_vfi.data.x4k import find_x4k_clips
from ldf_vfi.errors import InputError
from ldf_vfi.evaluation.aggregation import reference_fvd_order, reference_video_mean, video_mean
from ldf_vfi.evaluation.protocol import contact_sheet_indices, plan_clip


def _write_frames(folder, count, height=16, width=24, names=None, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        name = names[i] if names else f"{i:04d}.png"
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


# -- protocol ----------------------------------------------------------------------------------------


def test_x4k_clip_of_33_frames_at_16x():
    plan = plan_clip(33, 16)
    assert plan.input_indices == (0, 16, 32)
    assert plan.scored_indices == (*range(1, 16), *range(17, 32))
    assert plan.prediction_length == 33
    assert plan.block_keys(17) == (16, 32)
    assert [list(w) for w in plan.fvd_windows(16)] == [list(range(16)), list(range(16, 32))]


def test_tail_without_closing_key_is_not_scored():
    plan = plan_clip(19, 8)  # GT[::8] = frames 0, 8, 16; frames 17 and 18 have no closing key
    assert plan.input_indices == (0, 8, 16)
    assert plan.scored_indices == (*range(1, 8), *range(9, 16))
    assert plan.prediction_length == 17
    assert plan.nearest_key(3) == 0 and plan.nearest_key(4) == 0 and plan.nearest_key(5) == 8
    assert contact_sheet_indices(plan) == [4, 12]
    assert contact_sheet_indices(plan_clip(41, 8)) == [4, 20, 36]


def test_triplet_is_a_three_frame_clip_at_2x():
    plan = plan_clip(3, 2)
    assert plan.input_indices == (0, 2) and plan.scored_indices == (1,)


def test_too_short_clip_is_a_clear_error():
    with pytest.raises(InputError, match="has 8 frame.*needs at least 9"):
        plan_clip(8, 8, "clip 'x'")
    with pytest.raises(InputError, match="at least 2"):
        plan_clip(10, 1)


# -- SNU-FILM ----------------------------------------------------------------------------------------


def test_snu_film_entire_layout_order_and_natural_sort(tmp_path):
    _write_frames(tmp_path / "test" / "YouTube_test" / "0001", 9)
    _write_frames(tmp_path / "test" / "GOPRO_test" / "GOPR10", 9)
    names = [f"{i}.png" for i in range(11)]  # 10.png must come after 9.png
    _write_frames(tmp_path / "test" / "GOPRO_test" / "GOPR2", 11, names=names)
    clips = find_snu_film_clips(tmp_path)
    assert [c.clip_id for c in clips] == [
        "test--GOPRO_test--GOPR2",
        "test--GOPRO_test--GOPR10",
        "test--YouTube_test--0001",
    ]
    assert [c.subset for c in clips] == ["GOPRO_test", "GOPRO_test", "YouTube_test"]
    assert [p.name for p in clips[0].frames] == names
    crop = find_snu_film_clips(tmp_path, crop=(8, 12))[0]
    assert crop.load(3).shape == (8, 12, 3)
    assert np.array_equal(crop.load(3), clips[0].load(3)[:8, :12])


def test_snu_film_triplet_lists(tmp_path):
    _write_frames(tmp_path / "test" / "GOPRO_test" / "GOPR1", 9)
    lines = [
        "data/SNU-FILM/test/GOPRO_test/GOPR1/0000.png data/SNU-FILM/test/GOPRO_test/GOPR1/0004.png "
        "data/SNU-FILM/test/GOPRO_test/GOPR1/0008.png",
        "",
        "test/GOPRO_test/GOPR1/0002.png test/GOPRO_test/GOPR1/0003.png test/GOPRO_test/GOPR1/0004.png",
    ]
    (tmp_path / "eval_modes").mkdir()
    (tmp_path / "eval_modes" / "test-hard.txt").write_text("\n".join(lines) + "\n")
    clips = find_snu_film_clips(tmp_path, "test-hard")
    assert [c.clip_id for c in clips] == [
        "test-hard--0000--GOPRO_test--GOPR1--0004",
        "test-hard--0002--GOPRO_test--GOPR1--0003",
    ]
    assert [p.name for p in clips[0].frames] == ["0000.png", "0004.png", "0008.png"]
    assert resolve_listed_path(tmp_path, "x/y/test/a/b.png") == tmp_path / "test" / "a" / "b.png"
    with pytest.raises(InputError, match="test-easy.txt"):
        find_snu_film_clips(tmp_path, "test-easy")


def test_snu_film_bad_layouts(tmp_path):
    with pytest.raises(InputError, match="is not a folder"):
        find_snu_film_clips(tmp_path / "nope")
    (tmp_path / "random").mkdir()
    with pytest.raises(InputError, match="not SNU-FILM shaped"):
        find_snu_film_clips(tmp_path)
    (tmp_path / "test" / "GOPRO_test" / "empty").mkdir(parents=True)
    with pytest.raises(InputError, match="holds no image frames"):
        find_snu_film_clips(tmp_path)
    with pytest.raises(InputError, match="--task for SNU-FILM"):
        find_snu_film_clips(tmp_path, "4k")


# -- X4K ---------------------------------------------------------------------------------------------


def test_x4k_layout_and_task_sizes(tmp_path):
    _write_frames(tmp_path / "test" / "Type2" / "TEST06_001_f0273", 5)
    _write_frames(tmp_path / "test" / "Type1" / "TEST01_003_f0433", 5)
    clips = find_x4k_clips(tmp_path, "4k")
    assert [c.clip_id for c in clips] == ["test--Type1--TEST01_003_f0433", "test--Type2--TEST06_001_f0273"]
    assert clips[0].resize is None
    assert find_x4k_clips(tmp_path, "2k")[0].resize == (1080, 2048)
    assert find_x4k_clips(tmp_path, "1k")[0].resize == (540, 1024)
    with pytest.raises(InputError, match="not X4K1000FPS shaped"):
        find_x4k_clips(tmp_path / "test")
    with pytest.raises(InputError, match="--task for X4K1000FPS"):
        find_x4k_clips(tmp_path, "8k")


def test_area_resize_truncates_like_the_reference(tmp_path):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    small = area_resize_truncate(frame, (4, 6))
    block_mean = frame.reshape(4, 2, 6, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.array_equal(small, np.floor(block_mean + 1e-9).astype(np.uint8))  # truncation, not rounding
    _write_frames(tmp_path / "c", 1, height=8, width=12)
    clip = EvalClip("c", "s", (tmp_path / "c" / "0000.png",), resize=(4, 6), crop=(3, 5))
    loaded = clip.load(0)
    full = cv2.cvtColor(cv2.imread(str(tmp_path / "c" / "0000.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(loaded, area_resize_truncate(full, (4, 6))[:3, :5])  # resize first, then crop


def test_parse_resolution():
    assert parse_resolution("720x1280") == (720, 1280)
    assert parse_resolution(None) is None
    with pytest.raises(InputError, match="HEIGHTxWIDTH"):
        parse_resolution("720p")


# -- the reference's arithmetic ----------------------------------------------------------------------


def test_paper_fvd_plan_covers_every_ground_truth_frame():
    """37 frames at 8x: inputs 0, 8, ..., 32 and a 4-frame tail. The paper's FVD takes frames 0-31 (two
    sequences); 48 frames: inputs up to 40 and a 7-frame tail, three sequences instead of two."""
    plan = plan_clip(37, 8, whole_sequence=True)
    assert plan.input_indices == (0, 8, 16, 24, 32) and plan.tail == 4
    assert plan.prediction_length == 37
    assert plan.scored_indices == plan_clip(37, 8).scored_indices  # the tail is never scored
    assert [list(w) for w in plan.fvd_windows(16)] == [list(range(16)), list(range(16, 32))]
    assert len(plan_clip(48, 8, whole_sequence=True).fvd_windows(16)) == 3
    assert len(plan_clip(48, 8).fvd_windows(16)) == 2  # frames 0-40 only
    assert plan_clip(33, 16, whole_sequence=True).tail == 0


def test_paper_averaging_is_the_mean_of_batch_means_over_an_8_way_split():
    """calculate_metrics.py on 8 processes: process r scores frames r, r + 8, ... in batches of 8 and the
    video's value is the mean of all batch means."""
    # 10 frames: processes 0 and 1 get two frames (0, 8) and (1, 9), processes 2-7 one each.
    values = [0.0] * 8 + [8.0, 8.0]
    assert reference_video_mean(values) == pytest.approx((4.0 + 4.0 + 0 * 6) / 8)  # 1.0
    assert video_mean(values, "frame") == pytest.approx(1.6)
    assert video_mean(values, "paper") == pytest.approx(1.0)
    # 73 frames: process 0 gets 10 frames (batches of 8 and 2), processes 1-7 get 9 (batches of 8 and 1):
    # 16 batches. Frame 72 is the second of process 0's short batch, frame 71 the single one of process 7.
    values = [0.0] * 73
    values[72] = values[71] = 1.0
    assert reference_video_mean(values) == pytest.approx((0.5 + 1.0) / 16)
    assert video_mean(values, "frame") == pytest.approx(2 / 73)
    # Exactly 8 processes and batches of 8, whoever runs it; a perfect frame (PSNR inf) stays inf.
    assert reference_video_mean([1.0, 2.0, 3.0]) == pytest.approx(2.0)
    assert reference_video_mean([float("inf"), 30.0]) == float("inf")
    assert np.isnan(reference_video_mean([]))


def test_paper_fvd_order_is_the_reference_gather_order():
    """Sorted names dealt round-robin to 8 processes, then concatenated by process."""
    clips = [f"test--Type1--clip{i:02d}" for i in range(10)][::-1]
    order = [c[-2:] for c in reference_fvd_order(clips)]
    assert order == ["00", "08", "01", "09", "02", "03", "04", "05", "06", "07"]
