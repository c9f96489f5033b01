"""The condition path of the DiT: filling the output timeline from the input frames, and the 36-channel input.

The low-frame-rate input reaches the DiT twice: as the LQ latent ``y`` (the VAE latent of the input video
upsampled in time to the output timeline, ``--temporal_upsample nearest``) and as the mask code ``m`` that
says which slots hold real input frames. Neither is noised; both are concatenated to the noisy latent at
every step (REFERENCE_SPEC 1.2).
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["TEMPORAL_UPSAMPLE_MODES", "concat_condition", "temporal_upsample"]

TEMPORAL_UPSAMPLE_MODES = ("nearest", "pad")


def temporal_upsample(
    frames: torch.Tensor, keep: torch.Tensor, mode: Literal["nearest", "pad"] = "nearest"
) -> torch.Tensor:
    """Place the input frames on the output timeline and fill the other slots.

    Args:
        frames: ``(K, ...)``, the input frames in time order (any trailing shape, e.g. ``C, H, W``).
        keep: ``(T,)`` bool, True at the K slots that hold input frames.
        mode: ``"nearest"`` (the released setting): every slot takes the input frame at the nearest kept
            slot; a slot exactly between two kept slots takes the **earlier** one (the reference's argmin
            keeps the first minimum). ``"pad"``: other slots are zeros (a reference option never launched).

    Returns:
        ``(T, ...)`` with the dtype and device of ``frames``.
    """
    keep = keep.to(device=frames.device, dtype=torch.bool)
    kept = torch.nonzero(keep).flatten()
    if kept.numel() != frames.shape[0]:
        raise ValueError(f"{frames.shape[0]} frames for {kept.numel()} kept slots")
    if kept.numel() == 0:
        raise ValueError("at least one slot must hold an input frame")
    if mode == "nearest":
        slots = torch.arange(keep.shape[0], device=frames.device)
        return frames[(slots[:, None] - kept[None, :]).abs().argmin(dim=1)]
    if mode == "pad":
        out = frames.new_zeros(keep.shape[0], *frames.shape[1:])
        out[kept] = frames
        return out
    raise ValueError(f"Unknown temporal upsample mode {mode!r}; valid: {', '.join(TEMPORAL_UPSAMPLE_MODES)}")


def concat_condition(noisy: torch.Tensor, lq_latent: torch.Tensor, mask_code: torch.Tensor) -> torch.Tensor:
    """The DiT input ``[x_t | y | m]``: concatenate along the channel axis of the chunked latent.

    Args:
        noisy: ``(B, nT, nH, nW, 16, t, h, w)``, the noisy latent x_t.
        lq_latent: same shape, the LQ latent y.
        mask_code: ``(B, nT, nH, nW, 4, t, h, w)``, the encoded frame mask m.

    Returns:
        ``(B, nT, nH, nW, 36, t, h, w)`` in the dtype of ``noisy``.
    """
    if noisy.ndim != 8 or lq_latent.shape != noisy.shape:
        raise ValueError(
            f"noisy {tuple(noisy.shape)} and LQ latent {tuple(lq_latent.shape)} must match (8-D)"
        )
    if mask_code.shape[:4] != noisy.shape[:4] or mask_code.shape[5:] != noisy.shape[5:]:
        raise ValueError(f"mask code {tuple(mask_code.shape)} does not fit the latent {tuple(noisy.shape)}")
    return torch.cat([noisy, lq_latent.to(noisy.dtype), mask_code.to(noisy.dtype)], dim=4)
