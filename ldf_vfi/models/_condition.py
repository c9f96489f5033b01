"""The condition path of the DiT: the 36-channel input ``[x_t | y | m]``.

The low-frame-rate input reaches the DiT twice: as the LQ latent ``y`` (the VAE latent of the input video
upsampled in time to the output timeline, ``--temporal_upsample nearest``) and as the mask code ``m`` that
says which slots hold real input frames. Neither is noised; both are concatenated to the noisy latent at
every step (REFERENCE_SPEC 1.2). The nearest-frame filling of the timeline is
:func:`ldf_vfi.data.temporal.upsample_temporal`, shared by the trainer and the sampler.
"""

from __future__ import annotations

import torch

__all__ = ["concat_condition"]


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
