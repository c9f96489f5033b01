"""Interpolation backends behind one interface: ``.interpolate(frames, temporal_sf) -> iterator of frames``.

- ``flow``: classical bidirectional optical flow on the CPU (:class:`FlowInterpolator`), no weights needed.
- ``ldf``: the LDF-VFI diffusion transformer (needs the released weights).
"""

from __future__ import annotations

from typing import Any

from ..errors import BackendUnavailableError, InputError
from .flow import FlowInterpolator, check_temporal_sf, output_frame_count
from .scene import DEFAULT_SCENE_CUT_THRESHOLD, find_scene_cuts, is_scene_cut, scene_cut_score

BACKENDS = ("flow", "ldf")


def get_interpolator(backend: str, **options: Any):
    """Build the interpolator named ``backend`` with its keyword ``options``.

    Raises :class:`InputError` for an unknown name and :class:`BackendUnavailableError` when the backend
    cannot run here.
    """
    if backend == "flow":
        return FlowInterpolator(**options)
    if backend == "ldf":
        from .ldf import LDFVFIPipeline

        model_path, vae_path = options.pop("model_path", None), options.pop("vae_path", None)
        if not model_path:
            raise BackendUnavailableError(
                "the 'ldf' backend needs the released weights: --model_path <folder with transformer/> and "
                "--vae_path Wan2.1_VAE_cond_v2.pth (or use --backend flow, which needs none)"
            )
        return LDFVFIPipeline.from_pretrained(model_path, vae_path, **options)
    raise InputError(f"unknown backend '{backend}' (choose {', '.join(BACKENDS)})")


__all__ = [
    "BACKENDS",
    "DEFAULT_SCENE_CUT_THRESHOLD",
    "FlowInterpolator",
    "check_temporal_sf",
    "find_scene_cuts",
    "get_interpolator",
    "is_scene_cut",
    "output_frame_count",
    "scene_cut_score",
]
