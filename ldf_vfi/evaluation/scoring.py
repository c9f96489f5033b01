"""The set of metrics of one evaluation run: built once from the flags, applied to batches of frames.

Frame metrics (``psnr``, ``ssim``, ``ssim2d``, ``lpips``, ``flolpips``) return one value per scored frame;
``fvd`` collects I3D logits of 16-frame sequences per clip, and the distance is computed over all clips at
the end (:mod:`ldf_vfi.evaluation.results`). A learned metric whose weights were not given is dropped with
a note (kept in :attr:`MetricSuite.skipped`, logged once by the runner and written to the summary), never
silently reported as zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..metrics import (
    I3D_WEIGHTS,
    LPIPS_WEIGHTS,
    PWCNET_WEIGHTS,
    FloLPIPSMetric,
    I3DFeatures,
    InceptionI3D,
    LPIPSMetric,
    PWCNet,
    WeightSpec,
    preprocess_frames,
    psnr,
    resolve_weights,
    ssim_gaussian,
    ssim_matlab,
)

FRAME_METRICS = ("psnr", "ssim", "ssim2d", "lpips", "flolpips")
ALL_METRICS = (*FRAME_METRICS, "fvd")
DEFAULT_METRICS = ("psnr", "ssim", "lpips", "flolpips", "fvd")
# Direction of "better", for tables.
HIGHER_IS_BETTER = {
    "psnr": True,
    "ssim": True,
    "ssim2d": True,
    "lpips": False,
    "flolpips": False,
    "fvd": False,
}


def parse_metric_list(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"psnr,ssim,lpips"`` -> names in the canonical order; unknown names are an :class:`InputError`."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown:
        raise InputError(f"unknown metric '{unknown[0]}' in --metrics (choose from {', '.join(ALL_METRICS)})")
    if not names:
        raise InputError("--metrics names no metric")
    return tuple(n for n in ALL_METRICS if n in names)


@dataclass
class WeightPaths:
    """The weight flags of a run: explicit files and/or a folder searched for the standard file names."""

    lpips: str | Path | None = None
    i3d: str | Path | None = None
    pwcnet: str | Path | None = None
    weights_dir: str | Path | None = None

    def check(self) -> None:
        """Fail early (one line) on a given path that does not exist, before any model is loaded."""
        for spec, path in (
            (LPIPS_WEIGHTS, self.lpips),
            (I3D_WEIGHTS, self.i3d),
            (PWCNET_WEIGHTS, self.pwcnet),
        ):
            resolve_weights(spec, path, self.weights_dir)


@dataclass
class MetricSuite:
    """Built metrics: ``frame_metrics`` (names, canonical order), optional FVD features, skip notes."""

    frame_metrics: tuple[str, ...]
    device: torch.device
    lpips: LPIPSMetric | None = None
    flolpips: FloLPIPSMetric | None = None
    i3d: InceptionI3D | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    weight_files: dict[str, str] = field(default_factory=dict)

    @property
    def fvd(self) -> bool:
        return self.i3d is not None

    @property
    def names(self) -> tuple[str, ...]:
        """Every metric this run reports (frame metrics, then ``fvd`` when enabled)."""
        return self.frame_metrics + (("fvd",) if self.fvd else ())

    @property
    def needs_keys(self) -> bool:
        """Whether scoring needs the two key frames around each scored frame (FloLPIPS does)."""
        return self.flolpips is not None

    @classmethod
    def build(cls, requested: Sequence[str], weights: WeightPaths, device: torch.device | str) -> MetricSuite:
        device = torch.device(device)
        requested = parse_metric_list(requested)
        suite = cls(frame_metrics=(), device=device)

        def find(spec: WeightSpec, path) -> Path | None:
            found = resolve_weights(spec, path, weights.weights_dir)
            if found is not None:
                suite.weight_files[spec.flag.lstrip("-")] = str(found)
            return found

        def note(metric: str, *missing: WeightSpec) -> None:
            suite.skipped[metric] = "no weights: give " + " and ".join(spec.describe() for spec in missing)

        lpips_file = find(LPIPS_WEIGHTS, weights.lpips) if {"lpips", "flolpips"} & set(requested) else None
        if lpips_file is not None:
            suite.lpips = LPIPSMetric.from_file(lpips_file).to(device)
        elif "lpips" in requested:
            note("lpips", LPIPS_WEIGHTS)
        if "flolpips" in requested:
            pwc_file = find(PWCNET_WEIGHTS, weights.pwcnet)
            if lpips_file is None or pwc_file is None:
                note(
                    "flolpips",
                    *(s for s, f in ((LPIPS_WEIGHTS, lpips_file), (PWCNET_WEIGHTS, pwc_file)) if f is None),
                )
            else:
                suite.flolpips = FloLPIPSMetric(suite.lpips, PWCNet.from_file(pwc_file)).to(device)
        if "fvd" in requested:
            i3d_file = find(I3D_WEIGHTS, weights.i3d)
            if i3d_file is None:
                note("fvd", I3D_WEIGHTS)
            else:
                suite.i3d = InceptionI3D.from_file(i3d_file).to(device)
        built = {"psnr", "ssim", "ssim2d"}
        built |= {"lpips"} if suite.lpips is not None else set()
        built |= {"flolpips"} if suite.flolpips is not None else set()
        suite.frame_metrics = tuple(n for n in FRAME_METRICS if n in requested and n in built)
        return suite

    @torch.no_grad()
    def score(
        self,
        pred: Sequence[np.ndarray],
        gt: Sequence[np.ndarray],
        key0: Sequence[np.ndarray] | None = None,
        key1: Sequence[np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Per-frame values of every frame metric for a batch of ``H x W x 3`` uint8 frames."""
        p, g = _to_batch(pred, self.device), _to_batch(gt, self.device)
        out: dict[str, torch.Tensor] = {}
        if "psnr" in self.frame_metrics:
            out["psnr"] = psnr(p, g)
        if "ssim" in self.frame_metrics:
            out["ssim"] = ssim_matlab(p, g)
        if "ssim2d" in self.frame_metrics:
            out["ssim2d"] = ssim_gaussian(p, g)
        if "lpips" in self.frame_metrics:
            out["lpips"] = self.lpips(p, g)
        if "flolpips" in self.frame_metrics:
            if key0 is None or key1 is None:
                raise ValueError("FloLPIPS needs the key frames around each scored frame")
            out["flolpips"] = self.flolpips(p, g, _to_batch(key0, self.device), _to_batch(key1, self.device))
        return {name: value.float().cpu().numpy() for name, value in out.items()}

    def fvd_features(self, batch_size: int = 16) -> I3DFeatures:
        if self.i3d is None:
            raise RuntimeError("FVD is not enabled in this run")
        return I3DFeatures(self.i3d, batch_size=batch_size)

    def fvd_preprocess(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """A run of uint8 frames -> the I3D input ``(3, T, 224, 224)`` (computed on the metric device)."""
        return preprocess_frames(_to_batch(frames, self.device))


def _to_batch(frames: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """``H x W x 3`` uint8 frames -> ``(B, 3, H, W)`` uint8 on ``device``."""
    array = np.stack([np.asarray(f) for f in frames])
    return torch.from_numpy(array).to(device).permute(0, 3, 1, 2)


__all__ = [
    "ALL_METRICS",
    "DEFAULT_METRICS",
    "FRAME_METRICS",
    "HIGHER_IS_BETTER",
    "MetricSuite",
    "WeightPaths",
    "parse_metric_list",
]
