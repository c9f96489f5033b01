"""Fréchet Video Distance as the reference computes it (``calculate_fvd.py`` + ``metrics/fvd/fvd.py``).

- Sequences: consecutive, non-overlapping 16-frame runs of *all* frames of a video (key frames included),
  paired between prediction and ground truth; a tail shorter than 16 frames is dropped.
- Pre-processing: uint8 frames as float 0..255, bilinear resize to 224 x 224 (``align_corners=False``, no
  antialiasing), then ``2 x / 255 - 1``; layout ``(B, 3, T, 224, 224)``.
- Features: I3D Kinetics-400 logits (400-d), see :mod:`ldf_vfi.metrics.i3d`.
- Distance: Fréchet distance between the two Gaussians (means, unbiased covariances) with the TF-GAN
  matrix square root (SVD; singular values below 1e-10 are kept, not rooted). At most 2048 sequences.

:func:`frechet_distance` follows the reference's arithmetic step by step; ``dtype=torch.float32`` is the
reference's precision (its logits are float32 and so are all its statistics), float64 the default here. With
few sequences the covariances are rank-deficient and the two precisions differ by up to a few percent, so the
evaluation's ``paper`` FVD mode uses float32. Which sequences are pooled, in which order, is decided by the
caller (:mod:`ldf_vfi.evaluation`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

FVD_SEQUENCE_LENGTH = 16
FVD_MAX_SEQUENCES = 2048
FVD_RESOLUTION = (224, 224)


def fvd_windows(num_frames: int, length: int = FVD_SEQUENCE_LENGTH) -> list[range]:
    """Frame index ranges of the non-overlapping ``length``-frame sequences of a ``num_frames`` video."""
    return [range(s, s + length) for s in range(0, num_frames - length + 1, length)]


def preprocess_frames(frames: torch.Tensor, size: tuple[int, int] = FVD_RESOLUTION) -> torch.Tensor:
    """``(T, 3, H, W)`` uint8 frames -> ``(3, T, 224, 224)`` float in [-1, 1], the reference's I3D input."""
    x = F.interpolate(frames.float(), size=size, mode="bilinear", align_corners=False)
    return (2.0 * x / 255.0 - 1.0).transpose(0, 1)


def _symmetric_sqrt(mat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """TF-GAN's square root of a symmetric PSD matrix: ``U diag(sqrt(s)) V^T``, small ``s`` left as is.

    reference: metrics/fvd/fvd.py:44-47
    """
    u, s, vh = torch.linalg.svd(mat)
    s = torch.where(s < eps, s, s.sqrt())
    return u @ torch.diag(s) @ vh


def _covariance(x: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance of the rows of ``(N, D)``: centred product over ``N - 1`` (fvd.py:56-86)."""
    centred = (x - x.mean(dim=0, keepdim=True)).T
    return (1.0 / (x.shape[0] - 1)) * (centred @ centred.T)


def frechet_distance(
    features_a: torch.Tensor | np.ndarray,
    features_b: torch.Tensor | np.ndarray,
    dtype: torch.dtype = torch.float64,
) -> float:
    """``tr(S_a + S_b) - 2 tr(sqrt(sqrt(S_a) S_b sqrt(S_a))) + |mu_a - mu_b|^2`` over rows of ``(N, D)``,
    computed in ``dtype`` (reference: metrics/fvd/fvd.py:50-53, 89-100, in float32).

    Needs at least two rows on each side (a covariance of one sample is undefined).
    """
    a = torch.as_tensor(features_a).to(dtype).flatten(1)
    b = torch.as_tensor(features_b).to(dtype).flatten(1)
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(
            f"Fréchet distance needs at least 2 samples per side, got {a.shape[0]} and {b.shape[0]}"
        )
    cov_a, cov_b = _covariance(a), _covariance(b)
    root_a = _symmetric_sqrt(cov_a)
    trace_sqrt = torch.trace(_symmetric_sqrt(root_a @ (cov_b @ root_a)))
    trace = torch.trace(cov_a + cov_b) - 2.0 * trace_sqrt
    return float(trace + (a.mean(dim=0) - b.mean(dim=0)).pow(2).sum())


class I3DFeatures:
    """Batched I3D logits of preprocessed sequences on the network's device.

    ``add(pred_seq, gt_seq)`` queues one pair of ``(3, T, 224, 224)`` sequences; ``flush()`` runs the
    network over full batches (or everything with ``force=True``) and returns the new logits.
    """

    def __init__(self, network: torch.nn.Module, batch_size: int = 16):
        self.network = network.eval()
        self.batch_size = batch_size
        self.device = next(network.parameters()).device
        self._pred: list[torch.Tensor] = []
        self._gt: list[torch.Tensor] = []

    def add(self, pred_seq: torch.Tensor, gt_seq: torch.Tensor) -> None:
        self._pred.append(pred_seq)
        self._gt.append(gt_seq)

    @torch.no_grad()
    def flush(self, force: bool = False) -> tuple[np.ndarray, np.ndarray]:
        out_pred, out_gt = [], []
        while self._pred and (force or len(self._pred) >= self.batch_size):
            n = min(self.batch_size, len(self._pred))
            for queue, out in ((self._pred, out_pred), (self._gt, out_gt)):
                batch = torch.stack(queue[:n]).to(self.device)
                out.append(self.network(batch).float().cpu().numpy())
                del queue[:n]
        if not out_pred:
            return _empty(), _empty()
        return np.concatenate(out_pred), np.concatenate(out_gt)


def _empty() -> np.ndarray:
    return np.zeros((0, 0), np.float32)


__all__ = [
    "FVD_MAX_SEQUENCES",
    "FVD_RESOLUTION",
    "FVD_SEQUENCE_LENGTH",
    "I3DFeatures",
    "frechet_distance",
    "fvd_windows",
    "preprocess_frames",
]
