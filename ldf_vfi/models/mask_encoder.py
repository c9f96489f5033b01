"""The parameter-free 4-channel mask code of LDF-VFI (REFERENCE_SPEC.md section 2.3).

The DiT sees, next to the noisy and the LQ latents, 4 channels saying which frames of the timeline are
input frames. The code mimics the VAE's time layout so that it lines up with the latents frame by frame:
every ``1 + 4k``-frame group is cut like the VAE's causal chunks (1, 4, 4, ...); a 4-frame part becomes
one latent frame whose channel ``c`` is frame ``c`` of the part, and the lone first frame is repeated 4
times. Space is reduced by nearest downsampling (``F.interpolate(mode="nearest")``, which for sizes
divisible by 8 takes the top-left pixel of each 8x8 block).

Through ``encode_mask`` it runs on the same tiling path as the VAE (5-frame groups, zero-padded tiles,
latent cross-fade), so the result has the LQ latent's layout: ``(B, nT, nH, nW, 4, t, h, w)``. Padding is
zero, which reads as "unknown" to the DiT.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .tiling import TilingConfig, tiled_encode

__all__ = ["MASK_CHANNELS", "MaskEncoder", "encode_mask", "frame_mask_video"]

MASK_CHANNELS = 4
"""Channels of the mask code: the VAE's temporal compression (4 frames per latent frame)."""


class MaskEncoder(nn.Module):
    """Mask video ``(N, 1, 1 + 4k, H, W)`` -> code ``(N, 4, 1 + k, H/r, W/r)``; no parameters."""

    def __init__(self, spatial_compression_ratio: int = 8) -> None:
        super().__init__()
        self.spatial_compression_ratio = spatial_compression_ratio

    def forward(self, mask: Tensor) -> Tensor:
        frames = mask.shape[2]
        if mask.shape[1] != 1 or (frames - 1) % MASK_CHANNELS:
            raise ValueError(f"expected a (N, 1, 1 + 4k, H, W) mask, got shape {tuple(mask.shape)}")
        parts = [mask[:, :, :1]] + [
            mask[:, :, s : s + MASK_CHANNELS] for s in range(1, frames, MASK_CHANNELS)
        ]
        return F.interpolate(
            rearrange([self._part(p) for p in parts], "k n c h w -> n c k h w"),
            size=(1 + (frames - 1) // MASK_CHANNELS, *self._latent_size(mask)),
            mode="nearest",
        )

    def _latent_size(self, mask: Tensor) -> tuple[int, int]:
        r = self.spatial_compression_ratio
        return mask.shape[-2] // r, mask.shape[-1] // r

    @staticmethod
    def _part(part: Tensor) -> Tensor:
        """One causal part ``(N, 1, 1 or 4, H, W)`` -> its 4 channels ``(N, 4, H, W)``."""
        if part.shape[2] == 1:
            part = part.expand(-1, -1, MASK_CHANNELS, -1, -1)
        return part[:, 0]


def frame_mask_video(frame_mask: Tensor, height: int, width: int) -> Tensor:
    """Per-frame flags ``(B, F)`` -> a mask video ``(B, 1, F, H, W)`` as a broadcast view (no memory)."""
    return frame_mask[:, None, :, None, None].expand(-1, 1, -1, height, width)


def encode_mask(
    mask: Tensor, config: TilingConfig, *, layout: Literal["chunked", "stitched"] = "chunked"
) -> Tensor:
    """Tiled mask code of a mask video ``(B, 1, F, H, W)`` (e.g. ``frame_mask_video(...)``, 1 = input frame).

    Same layouts as ``tiling.tiled_encode``: ``(B, nT, nH, nW, 4, t, h, w)`` or ``(B, nT, 4, t, H/8, W/8)``,
    in ``mask``'s dtype (use the DiT's dtype; a bool mask is converted to float32).
    """
    if not mask.is_floating_point():
        mask = mask.float()
    encoder = MaskEncoder(config.spatial_compression_ratio)
    return tiled_encode(encoder, mask, config, out_channels=MASK_CHANNELS, layout=layout)
