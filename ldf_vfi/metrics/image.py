"""Pixel metrics on batches of RGB frames: PSNR and SSIM, as the reference evaluation defines them.

Every function takes ``(B, 3, H, W)`` tensors on any device and returns one value per frame, shape ``(B,)``,
so that the caller can average per frame (the reference averaged per batch, spec 11 bug 17).

Inputs may be ``uint8`` (0..255) or floating point in [0, 1]. Floating point inputs are first quantised to
the 8-bit grid (``round(x * 255)``, clamped), exactly as the reference does before scoring: a method is
scored on the frames it would write to disk, not on its unrounded output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def quantize_uint8(x: torch.Tensor) -> torch.Tensor:
    """Integer values 0..255 as ``float32``: uint8 input unchanged, float [0, 1] input rounded and clamped."""
    if x.dtype == torch.uint8:
        return x.float()
    if not x.is_floating_point():
        raise TypeError(f"expected uint8 or floating point frames, got {x.dtype}")
    return (x.float() * 255.0).round().clamp(0.0, 255.0)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Frames on the 8-bit grid, scaled to [0, 1] (``float32``)."""
    return quantize_uint8(x) / 255.0


def _check_pair(pred: torch.Tensor, gt: torch.Tensor) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    if pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) frames, got {tuple(pred.shape)}")


def psnr(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per frame, ``10 log10(255^2 / MSE)`` on the 8-bit grid.

    Identical frames give ``inf`` (as in the reference); the mean over a video is then ``inf`` too, which
    is the honest answer for a method that reproduced every frame exactly.
    """
    _check_pair(pred, gt)
    diff = quantize_uint8(pred).double() - quantize_uint8(gt).double()
    mse = diff.pow(2).flatten(1).mean(dim=1)
    return (10.0 * torch.log10(255.0**2 / mse)).float()


def gaussian_kernel_1d(
    size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, device=None, dtype=torch.float32
) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps centred on ``size // 2``."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(device=device, dtype=dtype)


def _filter_separable(volume: torch.Tensor, kernel: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Valid correlation of ``volume`` with the outer product of the 1-D ``kernel`` along each of ``dims``.

    Each pass is ``unfold`` (a view of sliding windows) times the kernel: measured faster on the CPU than
    thin-kernel convolutions, and the same on any device.
    """
    for dim in dims:
        volume = volume.unfold(dim, kernel.numel(), 1) @ kernel
    return volume


def _ssim_from_moments(
    mu_x: torch.Tensor,
    mu_y: torch.Tensor,
    xx: torch.Tensor,
    yy: torch.Tensor,
    xy: torch.Tensor,
    data_range: float,
) -> torch.Tensor:
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def ssim_matlab(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """SSIM per frame as the reference computes it (RIFE / UPR-Net "ssim_matlab").

    The RGB frame is treated as a ``3 x H x W`` volume and filtered with an ``11 x 11 x 11`` Gaussian
    (sigma 1.5) after replicate-padding 5 on all three axes; L = 1, C1 = 0.01^2, C2 = 0.03^2; the value is
    the mean of the SSIM map. The 3-D Gaussian is separable, so it is applied as three 1-D passes (the
    reference's dense ``conv3d`` numbers up to float rounding; about 4x faster on the CPU at 720p).
    Frames are done one at a time: at 4K the padded moment volumes of one frame already take ~2 GB.
    """
    _check_pair(pred, gt)
    if min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels")
    pad = SSIM_WINDOW // 2
    kernel = gaussian_kernel_1d(device=pred.device)
    out = []
    for x, y in zip(to_unit(pred), to_unit(gt)):
        x = x[None, None]  # (1, 1, 3, H, W): the colour axis is the depth of the volume
        y = y[None, None]
        stack = torch.cat([x, y, x * x, y * y, x * y], dim=0)
        stack = F.pad(stack, (pad,) * 6, mode="replicate")  # (5, 1, 13, H + 10, W + 10)
        # The short colour axis (13 -> 3) as one banded-matrix product, then the two long axes.
        depth = stack.shape[2] - SSIM_WINDOW + 1
        band = torch.stack([F.pad(kernel, (d, depth - 1 - d)) for d in range(depth)])
        stack = torch.einsum("dk,nckhw->ncdhw", band, stack)
        mu_x, mu_y, xx, yy, xy = _filter_separable(stack, kernel, (3, 4))
        out.append(_ssim_from_moments(mu_x, mu_y, xx, yy, xy, data_range=1.0).mean())
    return torch.stack(out)


def ssim_gaussian(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Standard SSIM per frame (Wang et al. 2004): 2-D 11 x 11 Gaussian (sigma 1.5) per colour channel.

    Computed on the 8-bit grid with L = 255, population (not sample) covariances, over the positions where
    the window fits inside the frame, then averaged over channels. This equals
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255, channel_axis=-1)``. Offered for comparison with papers
    that report it; the reference protocol uses :func:`ssim_matlab`.
    """
    _check_pair(pred, gt)
    if min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels")
    kernel = gaussian_kernel_1d(device=pred.device, dtype=torch.float64)
    out = []
    for x, y in zip(quantize_uint8(pred).double(), quantize_uint8(gt).double()):
        x = x[:, None, None]  # (3, 1, 1, H, W): channels as a batch of single-slice volumes
        y = y[:, None, None]
        stack = torch.cat([x, y, x * x, y * y, x * y], dim=1).reshape(-1, 1, 1, *x.shape[-2:])
        filtered = _filter_separable(stack, kernel, (3, 4))
        filtered = filtered.reshape(3, 5, *filtered.shape[-2:])
        smap = _ssim_from_moments(*filtered.unbind(1), data_range=255.0)
        out.append(smap.mean())
    return torch.stack(out).float()


def _gaussian_volume_kernel(size: int = SSIM_WINDOW) -> torch.Tensor:
    """The dense ``(1, 1, size, size, size)`` kernel of the reference (for tests of the separable path)."""
    g = gaussian_kernel_1d(size)
    return torch.einsum("i,j,k->ijk", g, g, g)[None, None]


__all__ = [
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "gaussian_kernel_1d",
    "psnr",
    "quantize_uint8",
    "ssim_gaussian",
    "ssim_matlab",
    "to_unit",
]
