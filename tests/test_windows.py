"""The skip-concatenate window schedule as a pure function: indices in, indices out (spec 5.3)."""

from __future__ import annotations

import pytest

from ldf_vfi.pipelines.windows import check_window_geometry, emission_order, window_schedule


def table(windows, num_frames=60):
    return [(w.kind, (w.start, w.start + num_frames), (w.out_start, w.out_end), w.context) for w in windows]


def test_worked_example_n16_sf8():
    """Spec 5.3: N = 16, sf = 8, L = 128; computed order first, skip, concat, skip, concat, last."""
    windows = window_schedule(128, 60, 20)
    assert table(windows) == [
        ("first", (0, 60), (0, 40), {}),
        ("skip", (40, 100), (60, 80), {}),
        ("concat", (20, 80), (40, 60), {0: "prev", 2: "skip"}),
        ("skip", (80, 140), (100, 120), {}),
        ("concat", (60, 120), (80, 100), {0: "prev", 2: "skip"}),
        ("last", (100, 160), (120, 160), {0: "prev"}),
    ]
    # remembered latents: prev from the first window's chunk 1; each skip window hands chunk 1 to the next
    # concat window as right context and chunk 1 again (nT = 3) as the next prev.
    assert windows[0].save == {"prev": 1}
    assert windows[1].save == {"skip": 1, "next_prev": 1} and windows[2].rename == {"next_prev": "prev"}
    # emitted segments tile the timeline without gaps or overlaps
    segments = [(w.out_start, w.out_end) for w in emission_order(windows)]
    assert segments == [(0, 40), (40, 60), (60, 80), (80, 100), (100, 120), (120, 160)]


def test_cut_drops_windows_whose_output_is_entirely_cut():
    # X4K: N = 3 at sf 16 -> L = 48, kept 33 frames: only the first window survives (the reference also
    # computes a last window [20, 80) whose output [40, 80) is cut away).
    assert table(window_schedule(48, output_length=33)) == [("first", (0, 60), (0, 40), {})]
    assert [w.kind for w in window_schedule(48)] == ["first", "last"]
    # N = 16, sf = 8 keeps 121 frames: the last window's output starts at 120 < 121 and stays.
    assert [w.kind for w in window_schedule(128, output_length=121)][-1] == "last"
    # keeping 100 frames: the second loop (t0 = 80 -> concat [80,100), skip [100,120)) still needed
    kinds = [(w.kind, w.out_start) for w in window_schedule(128, output_length=100)]
    assert kinds == [("first", 0), ("skip", 60), ("concat", 40), ("skip", 100), ("concat", 80)]


@pytest.mark.parametrize(
    "length", [1, 20, 39, 40, 41, 60, 61, 80, 81, 100, 120, 121, 127, 128, 129, 200, 1000]
)
def test_every_slot_is_emitted_exactly_once(length):
    windows = window_schedule(length)
    covered = []
    for window in emission_order(windows):
        covered.extend(range(window.out_start, window.out_end))
    assert covered[: len(covered)] == list(range(len(covered)))
    assert len(covered) >= length
    # memory never reads a latent before it was saved
    memory = set()
    for window in windows:
        assert set(window.context.values()) <= memory, window
        memory |= set(window.save)
        for old, new in window.rename.items():
            memory.discard(old)
            memory.add(new)


def test_longer_windows_80_frames():
    windows = window_schedule(200, num_frames=80, tile_min_t=20)
    assert table(windows, 80)[:3] == [
        ("first", (0, 80), (0, 60), {}),
        ("skip", (80, 160), (100, 140), {}),
        ("concat", (40, 120), (60, 100), {0: "prev", 3: "skip"}),
    ]
    assert windows[1].save == {"skip": 1, "next_prev": 2}


@pytest.mark.parametrize("num_frames, tile_min_t", [(40, 20), (50, 20), (60, 12), (0, 20)])
def test_impossible_geometry_is_rejected(num_frames, tile_min_t):
    with pytest.raises(ValueError):
        check_window_geometry(num_frames, tile_min_t)
