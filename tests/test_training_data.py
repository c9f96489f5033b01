"""The training data pipeline: nearest temporal filling, degradation, clip geometry and the sample order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import DataLoader

from ldf_vfi.data.clips import (
    PN_RESOLUTIONS,
    ClipDataset,
    ClipOptions,
    ClipOrder,
    clip_loader,
    parse_pn,
    resize_frames,
    resize_target,
)
from ldf_vfi.data.lavib import VideoRecord, build_parser, read_index, run, write_synthetic_lavib
from ldf_vfi.data.temporal import (
    degradation_mask,
    nearest_fill_indices,
    nearest_fill_slots,
    parse_int_list,
    sample_degradation,
    upsample_temporal,
)
from ldf_vfi.errors import InputError


def _mask(length: int, kept: list[int]) -> np.ndarray:
    mask = np.zeros(length, dtype=bool)
    mask[kept] = True
    return mask


# Rows: (slots, kept slots, expected fill: index among the kept frames for every slot).
NEAREST_TABLE = [
    (5, [0], [0, 0, 0, 0, 0]),  # one frame fills everything
    (5, [4], [0, 0, 0, 0, 0]),
    (5, [0, 4], [0, 0, 0, 1, 1]),  # slot 2 is a tie: the earlier frame
    (6, [1, 4], [0, 0, 0, 1, 1, 1]),  # before the first / after the last: copies
    (9, [0, 4, 8], [0, 0, 0, 1, 1, 1, 1, 2, 2]),
    (7, [0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6]),  # sf 1: identity
    (8, [2, 5], [0, 0, 0, 0, 1, 1, 1, 1]),  # slot 3: |3-2|=1 < |3-5|=2; slot 4: 2 > 1
]


@pytest.mark.parametrize("length, kept, expected", NEAREST_TABLE)
def test_nearest_fill_table(length, kept, expected):
    mask = _mask(length, kept)
    assert nearest_fill_indices(mask).tolist() == expected
    assert nearest_fill_slots(mask).tolist() == [kept[i] for i in expected]
    # Same rule as argmin |slot - kept| with first-occurrence ties (the reference's formulation).
    distances = np.abs(np.arange(length)[:, None] - np.array(kept)[None, :])
    assert nearest_fill_indices(torch.from_numpy(mask)).tolist() == distances.argmin(axis=1).tolist()


def test_nearest_fill_spec_window_example():
    """REFERENCE_SPEC 5.4: sf 8, concat window [20, 80): input frames sit at timeline slots 24, 32, ..., 72."""
    mask = np.zeros(60, dtype=bool)
    mask[[s - 20 for s in range(24, 80, 8)]] = True
    fill = nearest_fill_indices(mask)
    first_frame_in_window = 3  # timeline frame 3 sits at slot 24
    assert fill[0] + first_frame_in_window == 3  # slot 20 takes frame 3 (a global tie rule would pick 2)
    assert (fill[57:] + first_frame_in_window == 9).all()  # slots 77-79 take frame 9, not frame 10 (slot 80)


def test_nearest_fill_rejects_empty_and_upsample_matches():
    with pytest.raises(ValueError, match="keeps no frame"):
        nearest_fill_indices(np.zeros(4, dtype=bool))
    mask = _mask(9, [1, 5])
    kept = torch.tensor([[10.0], [50.0]])
    assert upsample_temporal(kept, mask).flatten().tolist() == [10, 10, 10, 10, 50, 50, 50, 50, 50]
    with pytest.raises(ValueError, match="keeps 2"):
        upsample_temporal(torch.zeros(3, 1), mask)


@pytest.mark.parametrize(
    "text, expected",
    [("4", [4]), ("2-5", [2, 3, 4, 5]), ("1,3,8-10", [1, 3, 8, 9, 10]), (" 2 , 2-3", [2, 2, 3])],
)
def test_parse_int_list(text, expected):
    assert parse_int_list(text) == expected


@pytest.mark.parametrize("text", ["", "a", "5-2", "1,,2", "1.5"])
def test_parse_int_list_errors(text):
    with pytest.raises(ValueError):
        parse_int_list(text)


def test_degradation_distribution():
    """sf uniform over the list, phase uniform in [0, min(sf-1, T-1)], mask = every sf-th frame from phase."""
    rng = np.random.default_rng(0)
    factors = parse_int_list("2-16")
    draws = [sample_degradation(rng, 60, factors) for _ in range(6000)]
    counts = np.bincount([sf for sf, _, _ in draws], minlength=17)[2:]
    assert stats.chisquare(counts).pvalue > 1e-3
    phases_16 = [phase for sf, phase, _ in draws if sf == 16]
    assert stats.chisquare(np.bincount(phases_16, minlength=16)).pvalue > 1e-3
    for sf, phase, mask in draws[:200]:
        assert 0 <= phase <= sf - 1
        assert np.flatnonzero(mask).tolist() == list(range(phase, 60, sf))
    # A factor longer than the clip still keeps one frame: phase is capped at T - 1.
    for _ in range(50):
        sf, phase, mask = sample_degradation(rng, 5, [16])
        assert mask.sum() == 1 and phase <= 4
    assert degradation_mask(6, 1, 0).all()


def test_pn_table_and_explicit_sizes():
    assert parse_pn("0.25M") == ((512, 512),)
    assert parse_pn("1M") == PN_RESOLUTIONS["1M"] and len(PN_RESOLUTIONS["4M"]) == 5
    assert parse_pn("48x80") == ((48, 80),)
    with pytest.raises(ValueError, match="HxW"):
        parse_pn("0.5M")


@pytest.mark.parametrize(
    "size, crop, no_bicubic, expected",
    [
        ((2160, 3840), (512, 512), True, None),  # big enough: native resolution, crop only
        ((2160, 3840), (512, 512), False, (512, 911)),  # always resized: short side to the crop
        ((360, 640), (512, 512), True, (512, 911)),  # too small: upscaled even with --no_bicubic
        ((720, 1280), (720, 1280), True, None),
        ((300, 200), (256, 256), True, (384, 256)),
    ],
)
def test_resize_rule(size, crop, no_bicubic, expected):
    assert resize_target(*size, crop, no_bicubic) == expected


def test_bicubic_rounds_and_clamps_instead_of_wrapping():
    """Bug 15: a bright edge overshoots past 255 under bicubic upscaling; uint8 casting wrapped it to black."""
    frame = torch.zeros(1, 8, 8, dtype=torch.uint8)
    frame[:, :, 4:] = 255
    up = resize_frames(frame, (16, 16))
    raw = torch.nn.functional.interpolate(
        frame[None].float(), size=(16, 16), mode="bicubic", align_corners=False
    )
    assert raw.max() > 255 and raw.min() < 0  # the overshoot exists
    over, under = raw[0] > 255.5, raw[0] < -0.5
    assert up.dtype == torch.uint8 and (up[over] == 255).all() and (up[under] == 0).all()
    wrapped = raw[0].to(torch.uint8)  # the reference's cast
    assert (wrapped[over] < 128).any()  # ...turned the brightest pixels dark
    assert torch.equal(up, raw[0].round().clamp(0, 255).to(torch.uint8))


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> list[VideoRecord]:
    root = tmp_path_factory.mktemp("lavib")
    write_synthetic_lavib(root, num_clips=3, num_frames=24, height=40, width=56, fps=60)
    run(build_parser().parse_args(["--src", str(root), "--dst", str(root / "idx"), "--num_workers", "1"]))
    return read_index(root / "idx")


def test_clip_shapes_resolutions_and_scale_factors(records):
    options = ClipOptions(num_frames=20, pn="32x48", no_bicubic=True, temporal_sf=(2, 3, 7), seed=1)
    dataset = ClipDataset(records, options)
    for position in range(12):
        sample = dataset[(position, position % len(dataset))]
        assert sample["gt"].shape == (3, 20, 32, 48) and sample["gt"].dtype == torch.uint8
        mask, source = sample["mask"], sample["lq_source"]
        assert mask.shape == (20,) and mask.dtype == torch.bool
        assert sample["sf"] in (2, 3, 7) and 0 <= sample["phase"] < sample["sf"]
        assert torch.nonzero(mask).flatten().tolist() == list(range(sample["phase"], 20, sample["sf"]))
        assert source.tolist() == nearest_fill_slots(mask.numpy()).tolist()
        assert mask[source].all()  # every slot is filled by a kept frame
        assert 0 <= sample["start"] <= 24 - 20


def test_small_videos_are_upscaled_and_flips_apply(records):
    base = ClipOptions(num_frames=5, pn="64x64", no_bicubic=True, seed=3)
    sample = ClipDataset(records, base)[(0, 0)]
    assert sample["gt"].shape == (3, 5, 64, 64)  # 40x56 upscaled to 64x90, then cropped
    flipped = ClipDataset(
        records, ClipOptions(num_frames=5, pn="32x32", p_hflip=1.0, p_vflip=1.0, p_transpose=1.0, seed=4)
    )
    plain = ClipDataset(records, ClipOptions(num_frames=5, pn="32x32", seed=4))
    a, b = flipped[(7, 1)]["gt"], plain[(7, 1)]["gt"]
    assert torch.equal(a, b.flip(-2).flip(-1).transpose(-2, -1))


def test_samples_are_reproducible_and_independent_of_workers(records):
    dataset = ClipDataset(
        records, ClipOptions(num_frames=8, pn="24x24", temporal_sf=tuple(range(2, 9)), seed=5)
    )
    order = ClipOrder(len(dataset), seed=5)
    single = [next(iter(DataLoader(dataset, batch_size=2, sampler=order, num_workers=0))) for _ in range(1)][
        0
    ]
    loader = clip_loader(dataset, ClipOrder(len(dataset), seed=5), batch_size=2, num_workers=2)
    assert loader.multiprocessing_context.get_start_method() in ("forkserver", "spawn")  # never a bare fork
    batch = next(iter(loader))
    assert batch["gt"].shape == (2, 3, 8, 24, 24) and batch["mask"].shape == (2, 8)
    for key in ("gt", "mask", "lq_source", "position", "index"):
        assert torch.equal(batch[key], single[key])


def test_clip_order_shards_resumes_and_reshuffles():
    take = lambda it, n: [next(it) for _ in range(n)]  # noqa: E731
    straight = take(iter(ClipOrder(5, seed=9)), 12)
    assert [p for p, _ in straight] == list(range(12))
    assert sorted(i for _, i in straight[:5]) == list(range(5))  # each epoch is a permutation
    assert [i for _, i in straight[:5]] != [i for _, i in straight[5:10]]  # reshuffled per epoch
    resumed = take(iter(ClipOrder(5, seed=9, start=7)), 5)
    assert resumed == straight[7:12]
    ranks = [take(iter(ClipOrder(5, seed=9, rank=r, num_replicas=2)), 6) for r in range(2)]
    merged = sorted(ranks[0] + ranks[1])
    assert merged == straight[:12]


def test_dataset_errors(records):
    with pytest.raises(InputError, match="--num_frames 100"):
        ClipDataset(records, ClipOptions(num_frames=100))
    with pytest.raises(ValueError, match="p_hflip"):
        ClipOptions(p_hflip=1.5)
    broken = [VideoRecord("/nonexistent/vid.mp4", 50, "60", 64, 64)]
    with pytest.raises(InputError, match="failed to decode"):
        ClipDataset(broken, ClipOptions(num_frames=5, pn="16x16"))[(0, 0)]
