"""The skip-concatenate window schedule of LDF-VFI (REFERENCE_SPEC 5.3), as pure index arithmetic.

The output timeline has ``L = N * sf`` slots (input frame ``k`` in slot ``k * sf``). The DiT denoises windows of
``num_frames`` slots = ``nT`` temporal chunks of ``tile_min_t`` slots. With one context chunk
(``nT_cond = 1``) and ``stride = (nT - 2) * tile_min_t``:

- **first** window ``[0, F)``: every chunk from noise; chunks ``0 .. nT-2`` are kept, the last kept one is
  remembered as ``prev``.
- then, while ``t0 + stride <= L - 1`` (``t0`` starts at ``(nT - 1) * tile_min_t``):
  - **skip** window ``[t0 + stride - Tc, t0 + 2 stride + Tc)``: every chunk from noise, chunks ``1 .. nT-2``
    kept (output ``[t0 + stride, t0 + 2 stride)``); its first kept chunk becomes the right context ``skip`` of
    the next concat window, its last kept chunk the next ``prev``.
  - **concat** window ``[t0 - Tc, t0 + stride + Tc)``: chunk 0 is ``prev``, chunk ``nT-1`` is ``skip`` (both
    clean latents, re-noised once to ``t_cond``), chunks ``1 .. nT-2`` generated and kept (output
    ``[t0, t0 + stride)``).
  - the concat segment is emitted before the skip segment; ``t0 += 2 stride``.
- **last** window ``[t0 - Tc, L)`` padded to ``F``, if ``t0 < L``: chunk 0 is ``prev``, the rest generated and kept.

Skip windows never see generated content, so errors cannot travel more than one hop; each concat window is
anchored on both sides. The caller cuts the concatenated output to ``(N - 1) * sf + 1`` frames.
Unlike the reference, windows whose whole output lies beyond that cut are not computed (spec 11, item 22);
this changes no kept frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

WindowKind = Literal["first", "skip", "concat", "last"]


@dataclass(frozen=True)
class Window:
    """One DiT window.

    ``start`` is the timeline slot of the window's chunk 0 (the window covers ``[start, start + num_frames)``;
    slots at or beyond the timeline length are padding). ``context`` maps a chunk index to the remembered
    latent it is filled with (``"prev"`` or ``"skip"``); every other chunk starts from noise. ``keep`` is the
    contiguous chunk range ``[first, last)`` whose decoded frames form the emitted segment ``[out_start,
    out_end)``. ``save`` maps names to the kept chunk whose clean latent is remembered for later windows;
    after the window, ``rename`` moves remembered latents to new names (a skip window's last kept chunk is
    stored as ``next_prev`` and becomes ``prev`` once the concat window has used the old ``prev``).
    """

    kind: WindowKind
    start: int
    keep: tuple[int, int]
    context: dict[int, str]
    save: dict[str, int]
    tile_min_t: int
    rename: dict[str, str] = field(default_factory=dict)

    @property
    def out_start(self) -> int:
        return self.start + self.keep[0] * self.tile_min_t

    @property
    def out_end(self) -> int:
        return self.start + self.keep[1] * self.tile_min_t


def check_window_geometry(num_frames: int, tile_min_t: int) -> int:
    """Validate the window length; returns the number of temporal chunks ``nT`` (at least 3)."""
    if tile_min_t <= 0 or tile_min_t % 5:
        raise ValueError(
            f"tile_min_t must be a positive multiple of 5 (VAE groups of 5 frames), got {tile_min_t}"
        )
    if num_frames % tile_min_t or num_frames // tile_min_t < 3:
        raise ValueError(
            f"num_frames must be a multiple of tile_min_t={tile_min_t} with at least 3 chunks "
            f"(one context chunk on each side of a generated one), got {num_frames}"
        )
    return num_frames // tile_min_t


def iter_windows(
    has_slot: Callable[[int], bool],
    keeps_slot: Callable[[int], bool] | None = None,
    num_frames: int = 60,
    tile_min_t: int = 20,
) -> Iterator[Window]:
    """The windows, in computation order, for a timeline known only through ``has_slot(k)`` ("is the timeline
    longer than ``k`` slots?"), so a streamed video's length need not be known up front. ``keeps_slot(k)``
    says whether slot ``k`` survives the final cut (default: every existing slot)."""
    keeps_slot = keeps_slot or has_slot
    n_t = check_window_geometry(num_frames, tile_min_t)
    tc = tile_min_t
    stride = (n_t - 2) * tc
    yield Window("first", 0, keep=(0, n_t - 1), context={}, save={"prev": n_t - 2}, tile_min_t=tc)
    t0 = (n_t - 1) * tc
    while has_slot(t0 + stride) and keeps_slot(t0):
        yield Window(
            "skip",
            t0 + stride - tc,
            keep=(1, n_t - 1),
            context={},
            save={"skip": 1, "next_prev": n_t - 2},
            tile_min_t=tc,
        )
        yield Window(
            "concat",
            t0 - tc,
            keep=(1, n_t - 1),
            context={0: "prev", n_t - 1: "skip"},
            save={},
            tile_min_t=tc,
            rename={"next_prev": "prev"},
        )
        t0 += 2 * stride
    if has_slot(t0) and keeps_slot(t0):
        yield Window("last", t0 - tc, keep=(1, n_t), context={0: "prev"}, save={}, tile_min_t=tc)


def window_schedule(
    timeline_length: int, num_frames: int = 60, tile_min_t: int = 20, output_length: int | None = None
) -> list[Window]:
    """The windows, in the order they are computed, for a timeline of ``timeline_length`` slots.

    ``output_length`` (default: the whole timeline) is the number of leading slots that will be kept; windows
    whose emitted segment starts at or after it are dropped, unless a later kept window needs their latent.
    """
    if timeline_length < 1:
        raise ValueError(f"timeline_length must be positive, got {timeline_length}")
    cut = timeline_length if output_length is None else min(output_length, timeline_length)
    return list(iter_windows(lambda k: k < timeline_length, lambda k: k < cut, num_frames, tile_min_t))


def emission_order(windows: list[Window]) -> list[Window]:
    """Windows in the order their segments appear on the timeline (each skip after its concat)."""
    return sorted(windows, key=lambda window: window.out_start)
