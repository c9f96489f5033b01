"""Spatial and temporal tiling of the VAE, and the chunked latent layout (REFERENCE_SPEC.md section 2).

LDF-VFI never runs its VAE on whole frames or whole clips. A clip of ``F`` frames (a multiple of
``tile_min_t`` = 20) is cut into temporal chunks; inside a chunk every 5 frames are one independent VAE
call (fresh causal cache: 5 frames -> 2 latent frames, so 20 -> 8); frames are cut into overlapping
``tile_min`` x ``tile_min`` tiles placed every ``tile_stride`` pixels (zero-padded past the frame edge). The
tile grid *is* the DiT's chunk grid, so ``tile_min_h/w = 256``, ``tile_stride_h/w = 192`` and
``tile_min_t = 20`` are part of the released model, not memory knobs: the reference CLI defaults (128/96,
``TilingConfig.reference_cli_defaults()``) would silently give the DiT 6x6-token chunks instead of 12x12.
Only ``vae_batch_size`` is a pure memory knob.

Encoding (``tiled_encode``): latent tiles are cross-faded over ``(tile_min - tile_stride) / 8`` rows, then
columns, with the tile above / to the left (linear weights ``r / extent``, in place, so the neighbour is
already blended), and each tile keeps its top-left ``tile_stride / 8`` block. Output layouts:

* ``"chunked"`` (the reference's ``for_train``, what the DiT consumes): ``(B, nT, nH, nW, C, t, h, w)``
  with ``t = tile_min_t / 5 * 2`` and ``h, w = tile_stride / 8``; edge chunks contain latents of padding.
* ``"stitched"``: ``(B, nT, C, t, H/8, W/8)``, the tiles side by side, cropped to the frame.

Decoding (``tiled_decode``): stitched latents are cut into ``tile_min/8`` tiles every ``tile_stride/8``
(edge tiles are smaller), decoded, clamped to [-1, 1], cross-faded in pixel space over
``tile_min - tile_stride`` px and cropped to ``tile_stride``. The conditional decoder gets, for each tile,
the same pixel window of the condition video (zero-padded) and of the mask (rebuilt from its per-frame
value, so not zero-padded).

Memory is bounded in resolution: tiles are encoded/decoded one at a time (``vae_batch_size`` groups per
VAE call), each result is written into the preallocated output at once, and the only other state kept is
the blended bottom strip of the previous tile row and the right strip of the previous tile (a
``(tile_min - tile_stride)``-wide band), exactly what the next cross-fades read. So beyond the input and
output tensors, peak memory is that of one tile. The cross-fade arithmetic reproduces the reference's
per-row Python loop bit for bit (``crossfade_``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from ..errors import InputError

__all__ = [
    "GROUP_FRAMES",
    "GROUP_LATENTS",
    "GroupDecoder",
    "GroupEncoder",
    "TilingConfig",
    "blend_extent",
    "chunk_grid",
    "chunked_to_stitched",
    "crop_pad",
    "crop_pad_window",
    "crossfade_",
    "crossfade_weights",
    "decode_spans",
    "decoded_size",
    "latent_canvas",
    "num_tiles",
    "stitched_to_chunked",
    "tile_origins",
    "tiled_decode",
    "tiled_encode",
    "untiled_decode",
    "untiled_encode",
]

GROUP_FRAMES = 5
"""Pixel frames of one independent VAE call inside a temporal chunk (1 + 4: one causal first frame + one
4-frame chunk)."""
GROUP_LATENTS = 2
"""Latent frames one VAE group becomes (the effective temporal compression is 2.5x, spec 2.1)."""

GroupEncoder = Callable[[Tensor], Tensor]
"""``(N, C, 5, h, w) -> (N, c, 2, h/8, w/8)``: encodes a batch of independent 5-frame groups."""
GroupDecoder = Callable[[Tensor, "Tensor | None", "Tensor | None"], Tensor]
"""``(z (N, c, 2, h, w), condition (N, 3, 5, 8h, 8w) | None, mask (N, 1, 5, 8h, 8w) | None)
-> (N, 3, 5, 8h, 8w)``: decodes a batch of independent 2-latent groups (unclamped)."""


@dataclass(frozen=True)
class TilingConfig:
    """Tiling settings; field names equal the reference's CLI flags. Defaults are the released settings
    (the quick-start/eval scripts), which the released weights need; see the module doc."""

    tile_min_h: int = 256
    tile_min_w: int = 256
    tile_stride_h: int = 192
    tile_stride_w: int = 192
    tile_min_t: int = 20
    vae_batch_size: int = 16
    spatial_compression_ratio: int = 8

    def __post_init__(self) -> None:
        r = self.spatial_compression_ratio
        for name in ("tile_min_h", "tile_min_w", "tile_stride_h", "tile_stride_w"):
            value = getattr(self, name)
            if value <= 0 or value % r:
                raise ValueError(
                    f"{name}={value} must be a positive multiple of spatial_compression_ratio={r}"
                )
        if self.tile_stride_h > self.tile_min_h or self.tile_stride_w > self.tile_min_w:
            raise ValueError("tile strides must not exceed tile sizes (tiles must cover the frame)")
        if self.tile_min_t <= 0 or self.tile_min_t % GROUP_FRAMES:
            raise ValueError(f"tile_min_t={self.tile_min_t} must be a positive multiple of {GROUP_FRAMES}")
        if self.vae_batch_size < 1:
            raise ValueError(f"vae_batch_size={self.vae_batch_size} must be >= 1")

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | argparse.Namespace) -> TilingConfig:
        """The config of the flags of the same names in ``options`` (a mapping or parsed arguments); absent
        ones keep their defaults. An impossible geometry is an :class:`~ldf_vfi.errors.InputError`."""
        values = vars(options) if isinstance(options, argparse.Namespace) else options
        try:
            return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})
        except ValueError as exc:
            raise InputError(f"tiling flags: {exc}") from None

    @classmethod
    def reference_cli_defaults(cls) -> TilingConfig:
        """The reference CLI's argparse defaults (128/96/20, batch 2). Not the released model's settings."""
        return cls(tile_min_h=128, tile_min_w=128, tile_stride_h=96, tile_stride_w=96, vae_batch_size=2)

    @property
    def latent_tile(self) -> tuple[int, int]:
        """Latent size ``(h, w)`` of one encoder tile (32 x 32 released)."""
        r = self.spatial_compression_ratio
        return self.tile_min_h // r, self.tile_min_w // r

    @property
    def latent_stride(self) -> tuple[int, int]:
        """Latent tile stride = the kept block of a tile = one DiT chunk's ``(h, w)`` (24 x 24 released)."""
        r = self.spatial_compression_ratio
        return self.tile_stride_h // r, self.tile_stride_w // r

    @property
    def latent_frames(self) -> int:
        """Latent frames of one temporal chunk (8 released)."""
        return self.tile_min_t // GROUP_FRAMES * GROUP_LATENTS


# ---------------------------------------------------------------------------------------------------------
# Pure geometry


def tile_origins(size: int, stride: int) -> list[int]:
    """Tile starts along one axis: ``0, stride, 2 stride, ...`` while ``< size``."""
    return list(range(0, size, stride))


def num_tiles(size: int, stride: int) -> int:
    """``ceil(size / stride)``: the number of tiles (nH or nW) along one axis."""
    return math.ceil(size / stride)


def crop_pad_window(origin: int, tile: int, size: int) -> tuple[int, int]:
    """``(stop, pad)`` of a ``tile``-long window at ``origin`` on an axis of ``size``: the crop is
    ``[origin, stop)`` (empty when the window lies past the end) and ``pad`` zeros complete it."""
    stop = max(origin, min(origin + tile, size))
    return stop, tile - (stop - origin)


def blend_extent(prev_len: int, cur_len: int, overlap: int) -> int:
    """Rows (or columns) cross-faded between two neighbouring tiles of lengths ``prev_len``/``cur_len``."""
    return min(prev_len, cur_len, overlap)


def crossfade_weights(extent: int) -> list[float]:
    """Weight of the *current* tile at offsets ``0 .. extent-1`` (the neighbour gets ``1 - w``)."""
    return [r / extent for r in range(extent)]


def decode_spans(latent_size: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """Latent ``[start, stop)`` of each decoder tile along one axis (edge tiles are shorter)."""
    return [(o, min(o + tile, latent_size)) for o in tile_origins(latent_size, stride)]


def decoded_size(latent_size: int, tile: int, stride: int, ratio: int) -> int:
    """Pixel length of a tiled decode along one axis: each tile contributes ``min(stride, its pixels)``."""
    return sum(min(stride * ratio, (e - s) * ratio) for s, e in decode_spans(latent_size, tile, stride))


def chunk_grid(num_frames: int, height: int, width: int, config: TilingConfig) -> tuple[int, int, int]:
    """``(nT, nH, nW)`` of a ``num_frames x height x width`` clip (e.g. 60x720x1280 -> (3, 4, 7))."""
    if num_frames % config.tile_min_t:
        raise ValueError(f"{num_frames} frames is not a multiple of tile_min_t={config.tile_min_t}")
    return (
        num_frames // config.tile_min_t,
        num_tiles(height, config.tile_stride_h),
        num_tiles(width, config.tile_stride_w),
    )


def latent_canvas(height: int, width: int, config: TilingConfig) -> tuple[int, int]:
    """Latent ``(nH * h, nW * w)`` covered by the chunk grid (e.g. 720x1280 -> (96, 168))."""
    sh, sw = config.latent_stride
    return num_tiles(height, config.tile_stride_h) * sh, num_tiles(width, config.tile_stride_w) * sw


def crop_pad(x: Tensor, top: int, left: int, height: int, width: int) -> Tensor:
    """The ``height x width`` window of ``x[..., H, W]`` at ``(top, left)``, zero-padded past the edge."""
    bottom, pad_h = crop_pad_window(top, height, x.shape[-2])
    right, pad_w = crop_pad_window(left, width, x.shape[-1])
    window = x[..., top:bottom, left:right]
    return F.pad(window, (0, pad_w, 0, pad_h)) if pad_h or pad_w else window.contiguous()


def chunked_to_stitched(latents: Tensor) -> Tensor:
    """``(B, nT, nH, nW, C, t, h, w)`` -> ``(B, nT, C, t, nH*h, nW*w)`` (the decoder's input layout)."""
    return rearrange(latents, "b nt nh nw c t h w -> b nt c t (nh h) (nw w)")


def stitched_to_chunked(latents: Tensor, config: TilingConfig) -> Tensor:
    """Inverse of ``chunked_to_stitched`` for a canvas of whole chunks (``latent_canvas`` sized)."""
    h, w = config.latent_stride
    if latents.shape[-2] % h or latents.shape[-1] % w:
        raise ValueError(f"latent canvas {tuple(latents.shape[-2:])} is not a grid of {h}x{w} chunks")
    return rearrange(latents, "b nt c t (nh h) (nw w) -> b nt nh nw c t h w", h=h, w=w)


# ---------------------------------------------------------------------------------------------------------
# Cross-fade


def crossfade_(prev: Tensor, cur: Tensor, overlap: int, dim: int) -> None:
    """Blend the start of ``cur`` with the end of ``prev`` along ``dim``, in place (spec 2.2, 2.4).

    With ``e = blend_extent(prev.shape[dim], cur.shape[dim], overlap)``, offset ``r < e`` becomes
    ``prev[-e + r] * (1 - r/e) + cur[r] * (r/e)``. Vectorised, but the same arithmetic as the reference's
    Python loop: the weights are float64 Python-style values rounded once to the op-math type (fp32 for
    bf16/fp16 tensors), each product is rounded to the tensor dtype, then the sum; bit-identical.
    """
    dim = dim % cur.ndim
    e = blend_extent(prev.shape[dim], cur.shape[dim], overlap)
    if e == 0:
        return
    a = prev.narrow(dim, prev.shape[dim] - e, e)
    b = cur.narrow(dim, 0, e)
    opmath = torch.float32 if cur.dtype in (torch.bfloat16, torch.float16) else cur.dtype
    w = torch.arange(e, dtype=torch.float64) / e
    shape = [1] * cur.ndim
    shape[dim] = e
    w_cur = w.to(device=cur.device, dtype=opmath).view(shape)
    w_prev = (1 - w).to(device=cur.device, dtype=opmath).view(shape)
    blended = (a.to(opmath) * w_prev).to(cur.dtype) + (b.to(opmath) * w_cur).to(cur.dtype)
    b.copy_(blended)


def _tail(x: Tensor, n: int, dim: int) -> Tensor:
    """A copy of the last ``min(n, len)`` entries of ``x`` along ``dim`` (what a later cross-fade reads)."""
    n = min(n, x.shape[dim])
    return x.narrow(dim, x.shape[dim] - n, n).clone()


# ---------------------------------------------------------------------------------------------------------
# Running independent VAE groups


def _run_groups(
    fn: Callable[..., Tensor], inputs: Sequence[Tensor | None], frames: Sequence[int], batch: int
):
    """Cut each ``(n, C, k*t, h, w)`` input into its ``k`` groups of ``t`` frames, stack them on the batch
    axis in the reference's ``(k n)`` order, call ``fn`` on ``batch`` groups at a time and put the results
    back in time order: ``(n, c, k*t', h', w')``. ``None`` inputs are passed through as ``None``."""
    n = inputs[0].shape[0]
    grouped = [
        None if x is None else rearrange(x, "n c (k t) h w -> (k n) c t h w", t=t)
        for x, t in zip(inputs, frames)
    ]
    total = grouped[0].shape[0]
    outs = [fn(*(None if g is None else g[s : s + batch] for g in grouped)) for s in range(0, total, batch)]
    return rearrange(torch.cat(outs), "(k n) c t h w -> n c (k t) h w", n=n)


def _encode_window(encode_groups: GroupEncoder, window: Tensor, config: TilingConfig) -> Tensor:
    """``(B, C, nT*Tc, h, w)`` pixels -> ``(B*nT, c, nT-chunk latents, h/8, w/8)`` in the window's dtype."""
    x = rearrange(window, "b c (nt t) h w -> (b nt) c t h w", t=config.tile_min_t)
    return _run_groups(encode_groups, [x], [GROUP_FRAMES], config.vae_batch_size).to(window.dtype)


def _check_clip(video: Tensor, config: TilingConfig) -> tuple[int, int]:
    if video.ndim != 5:
        raise ValueError(f"expected a (B, C, F, H, W) video, got shape {tuple(video.shape)}")
    if video.shape[2] % config.tile_min_t:
        raise ValueError(f"{video.shape[2]} frames is not a multiple of tile_min_t={config.tile_min_t}")
    return video.shape[0], video.shape[2] // config.tile_min_t


# ---------------------------------------------------------------------------------------------------------
# Encoding


def tiled_encode(
    encode_groups: GroupEncoder,
    video: Tensor,
    config: TilingConfig,
    *,
    out_channels: int,
    layout: Literal["chunked", "stitched"] = "chunked",
) -> Tensor:
    """Encode ``video (B, C, F, H, W)`` tile by tile (spec 2.1-2.2), ``F`` a multiple of ``tile_min_t``.

    ``encode_groups`` maps 5-frame groups to 2-latent groups (``WanVAE.encode``, the mask encoder) and is
    called with at most ``vae_batch_size`` groups of one tile at a time. Returns, in ``video``'s dtype,
    ``(B, nT, nH, nW, out_channels, t, h, w)`` (``layout="chunked"``) or
    ``(B, nT, out_channels, t, H/8, W/8)`` (``"stitched"``); see the module doc.
    """
    b, nt = _check_clip(video, config)
    height, width = video.shape[-2:]
    (th, tw), (sh, sw) = config.latent_tile, config.latent_stride
    rows, cols = tile_origins(height, config.tile_stride_h), tile_origins(width, config.tile_stride_w)
    lt = config.latent_frames
    if layout == "chunked":
        out = video.new_empty((b, nt, len(rows), len(cols), out_channels, lt, sh, sw))
    elif layout == "stitched":
        out = video.new_empty((b, nt, out_channels, lt, len(rows) * sh, len(cols) * sw))
    else:
        raise ValueError(f"layout must be 'chunked' or 'stitched', got {layout!r}")

    above: list[Tensor | None] = [None] * len(cols)
    for i, top in enumerate(rows):
        left_tile = None
        for j, left in enumerate(cols):
            window = crop_pad(video, top, left, config.tile_min_h, config.tile_min_w)
            lat = _encode_window(encode_groups, window, config)
            if lat.shape[-2:] != (th, tw):
                raise ValueError(f"encoder returned {tuple(lat.shape[-2:])} latents for a {th}x{tw} tile")
            if i > 0:
                crossfade_(above[j], lat, th - sh, dim=-2)
            if j > 0:
                crossfade_(left_tile, lat, tw - sw, dim=-1)
            kept = rearrange(lat[..., :sh, :sw], "(b nt) c t h w -> b nt c t h w", b=b)
            if layout == "chunked":
                out[:, :, i, j] = kept
            else:
                out[..., i * sh : (i + 1) * sh, j * sw : (j + 1) * sw] = kept
            above[j] = _tail(lat, th - sh, dim=-2)
            left_tile = _tail(lat, tw - sw, dim=-1)
    if layout == "stitched":
        r = config.spatial_compression_ratio
        out = out[..., : height // r, : width // r]
    return out


def untiled_encode(encode_groups: GroupEncoder, video: Tensor, config: TilingConfig) -> Tensor:
    """The same temporal chunks and 5-frame groups as ``tiled_encode`` on whole frames (no spatial tiling):
    ``(B, C, F, H, W)`` -> stitched ``(B, nT, c, t, H/8, W/8)``. The reference for tiling error, and the
    memory baseline of the benchmark."""
    b, _ = _check_clip(video, config)
    lat = _encode_window(encode_groups, video, config)
    return rearrange(lat, "(b nt) c t h w -> b nt c t h w", b=b)


# ---------------------------------------------------------------------------------------------------------
# Decoding


def _frame_mask(mask: Tensor | None, batch: int, frames: int) -> Tensor | None:
    """Per-frame mask ``(B, 1, F)`` from ``(B, F)`` or ``(B, 1, F, H, W)`` (its top-left value, as the
    reference rebuilds the decoder's mask)."""
    if mask is None:
        return None
    if mask.ndim == 5:
        mask = mask[:, :, :, 0, 0]
    elif mask.ndim == 2:
        mask = mask[:, None]
    if tuple(mask.shape) != (batch, 1, frames):
        raise ValueError(
            f"mask must give one value per frame for {batch}x{frames} frames, got {tuple(mask.shape)}"
        )
    return mask


def _decode_window(
    decode_groups: GroupDecoder,
    z: Tensor,
    condition: Tensor | None,
    frame_mask: Tensor | None,
    top: int,
    left: int,
    nt: int,
    config: TilingConfig,
    clamp: bool,
) -> Tensor:
    """Decode latent window ``z (B*nT, c, t, h, w)`` whose pixel window starts at ``(top, left)``:
    ``(B*nT, 3, nT-chunk frames, 8h, 8w)`` in ``z``'s dtype, clamped if asked."""
    r = config.spatial_compression_ratio
    height, width = z.shape[-2] * r, z.shape[-1] * r
    cond = msk = None
    if condition is not None:
        cond = crop_pad(condition, top, left, height, width).to(z.dtype)
        cond = rearrange(cond, "b c (nt t) h w -> (b nt) c t h w", nt=nt)
        msk = frame_mask[..., None, None].expand(-1, -1, -1, height, width).to(z.dtype)
        msk = rearrange(msk, "b c (nt t) h w -> (b nt) c t h w", nt=nt)
    px = _run_groups(
        decode_groups, [z, cond, msk], [GROUP_LATENTS, GROUP_FRAMES, GROUP_FRAMES], config.vae_batch_size
    )
    if clamp:
        px = px.clamp(-1.0, 1.0)
    if px.shape[-2:] != (height, width):
        raise ValueError(f"decoder returned {tuple(px.shape[-2:])} pixels for a {height}x{width} window")
    return px.to(z.dtype)


def _check_decode_inputs(
    latents: Tensor, condition: Tensor | None, mask: Tensor | None
) -> tuple[int, int, int, Tensor | None]:
    if latents.ndim != 6:
        raise ValueError(f"expected stitched latents (B, nT, C, t, H, W), got shape {tuple(latents.shape)}")
    b, nt, _, lt = latents.shape[:4]
    if lt % GROUP_LATENTS:
        raise ValueError(
            f"{lt} latent frames per chunk is not a whole number of {GROUP_LATENTS}-latent groups"
        )
    frames = nt * lt // GROUP_LATENTS * GROUP_FRAMES
    frame_mask = None
    if condition is not None:
        if condition.shape[0] != b or condition.shape[2] != frames:
            raise ValueError(
                f"condition {tuple(condition.shape)} does not match {b} clips of {frames} frames"
            )
        if mask is None:
            raise ValueError("a condition video needs its mask")
        frame_mask = _frame_mask(mask, b, frames)
    return b, nt, frames, frame_mask


def tiled_decode(
    decode_groups: GroupDecoder,
    latents: Tensor,
    config: TilingConfig,
    *,
    condition: Tensor | None = None,
    mask: Tensor | None = None,
    clamp: bool = True,
) -> Tensor:
    """Decode stitched latents ``(B, nT, C, t, Hl, Wl)`` tile by tile (spec 2.4).

    Returns ``(B, 3, nT * t/2 * 5, Ho, Wo)`` pixels in ``latents``' dtype, clamped to [-1, 1] per tile as the
    reference does, with ``Ho = decoded_size(Hl, ...)`` (``nH * tile_stride_h`` for a chunk-grid canvas);
    the caller crops to the frame. ``condition (B, 3, F, H, W)`` (``H, W`` up to the decoded canvas) and
    ``mask`` (``(B, F)`` or ``(B, 1, F, H, W)``) feed a conditional decoder with the matching windows.
    """
    b, nt, frames, frame_mask = _check_decode_inputs(latents, condition, mask)
    r = config.spatial_compression_ratio
    (th, tw), (sh, sw) = config.latent_tile, config.latent_stride
    lat_h, lat_w = latents.shape[-2:]
    row_spans, col_spans = decode_spans(lat_h, th, sh), decode_spans(lat_w, tw, sw)
    out_h, out_w = decoded_size(lat_h, th, sh, r), decoded_size(lat_w, tw, sw, r)
    out = latents.new_empty((b, 3, frames, out_h, out_w))
    z = rearrange(latents, "b nt c t h w -> (b nt) c t h w")
    overlap_h, overlap_w = config.tile_min_h - config.tile_stride_h, config.tile_min_w - config.tile_stride_w

    above: list[Tensor | None] = [None] * len(col_spans)
    for i, (y0, y1) in enumerate(row_spans):
        left_tile = None
        for j, (x0, x1) in enumerate(col_spans):
            px = _decode_window(
                decode_groups, z[..., y0:y1, x0:x1], condition, frame_mask, y0 * r, x0 * r, nt, config, clamp
            )
            if i > 0:
                crossfade_(above[j], px, overlap_h, dim=-2)
            if j > 0:
                crossfade_(left_tile, px, overlap_w, dim=-1)
            kept = px[..., : config.tile_stride_h, : config.tile_stride_w]
            top, left = i * config.tile_stride_h, j * config.tile_stride_w
            out[..., top : top + kept.shape[-2], left : left + kept.shape[-1]] = rearrange(
                kept, "(b nt) c t h w -> b c (nt t) h w", b=b
            )
            above[j] = _tail(px, overlap_h, dim=-2)
            left_tile = _tail(px, overlap_w, dim=-1)
    return out


def untiled_decode(
    decode_groups: GroupDecoder,
    latents: Tensor,
    config: TilingConfig,
    *,
    condition: Tensor | None = None,
    mask: Tensor | None = None,
    clamp: bool = True,
) -> Tensor:
    """``tiled_decode`` without spatial tiling: the same temporal groups, whole latent frames at once.
    ``(B, nT, C, t, Hl, Wl)`` -> ``(B, 3, F, 8 Hl, 8 Wl)``."""
    b, nt, _, frame_mask = _check_decode_inputs(latents, condition, mask)
    z = rearrange(latents, "b nt c t h w -> (b nt) c t h w")
    px = _decode_window(decode_groups, z, condition, frame_mask, 0, 0, nt, config, clamp)
    return rearrange(px, "(b nt) c t h w -> b c (nt t) h w", b=b)
