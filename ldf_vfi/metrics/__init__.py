"""Metrics of the evaluation protocol, all per frame (or per sequence for FVD) and device-generic.

- :func:`psnr`, :func:`ssim_matlab` (the reference's SSIM), :func:`ssim_gaussian` (standard 2-D SSIM)
- :class:`LPIPSMetric` (AlexNet v0.1), :class:`FloLPIPSMetric` (with :class:`PWCNet` flows)
- FVD: :class:`InceptionI3D` logits of 16-frame sequences and :func:`frechet_distance`

Learned metrics read their weights from local files only (:mod:`ldf_vfi.metrics.weights`).
"""

from .fvd import (
    FVD_MAX_SEQUENCES,
    FVD_SEQUENCE_LENGTH,
    I3DFeatures,
    frechet_distance,
    fvd_windows,
    preprocess_frames,
)
from .i3d import I3DConfig, InceptionI3D
from .image import psnr, quantize_uint8, ssim_gaussian, ssim_matlab, to_unit
from .perceptual import FloLPIPSMetric, LPIPSMetric
from .pwcnet import PWCNet
from .weights import I3D_WEIGHTS, LPIPS_WEIGHTS, PWCNET_WEIGHTS, WeightSpec, resolve_weights

__all__ = [
    "FVD_MAX_SEQUENCES",
    "FVD_SEQUENCE_LENGTH",
    "I3DConfig",
    "I3DFeatures",
    "I3D_WEIGHTS",
    "FloLPIPSMetric",
    "InceptionI3D",
    "LPIPSMetric",
    "LPIPS_WEIGHTS",
    "PWCNET_WEIGHTS",
    "PWCNet",
    "WeightSpec",
    "frechet_distance",
    "fvd_windows",
    "preprocess_frames",
    "psnr",
    "quantize_uint8",
    "resolve_weights",
    "ssim_gaussian",
    "ssim_matlab",
    "to_unit",
]
