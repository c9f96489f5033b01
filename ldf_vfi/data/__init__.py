"""Datasets and data generators.

Evaluation sets (spec 9) are described by :class:`EvalClip`: one ground-truth frame sequence on disk plus
the per-frame transform the protocol applies (X4K's area downscale, an optional top-left crop). The
dataset modules (:mod:`.snu_film`, :mod:`.x4k`) only find clips; the protocol (which frames are inputs and
which are scored) lives in :mod:`ldf_vfi.evaluation.protocol`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..io import list_frame_files, natural_sort_key, read_frame_rgb


def area_resize_truncate(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area (box-average) resize to ``(height, width)`` then truncation to uint8, as the reference's X4K
    loader does (``F.interpolate(x.float(), mode='area').clip(0, 255).byte()``: truncation, not rounding)."""
    if frame.shape[:2] == tuple(size):
        return frame
    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=tuple(size), mode="area").clamp(0, 255).to(torch.uint8)
    return x[0].permute(1, 2, 0).contiguous().numpy()


@dataclass(frozen=True)
class EvalClip:
    """One ground-truth sequence of an evaluation set.

    ``clip_id`` is the clip's path below the dataset root with ``--`` between parts (the reference's
    flattened names, e.g. ``test--GOPRO_test--GOPR0384_11_00``); ``subset`` is the group it is reported
    under (``GOPRO_test``, ``Type1``, ...). :meth:`load` applies ``resize`` (area, truncating) and then the
    top-left ``crop`` to every frame, so inputs and ground truth always see the same transform.
    """

    clip_id: str
    subset: str
    frames: tuple[Path, ...]
    resize: tuple[int, int] | None = None
    crop: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def load(self, index: int) -> np.ndarray:
        frame = read_frame_rgb(self.frames[index])
        if self.resize is not None:
            frame = area_resize_truncate(frame, self.resize)
        if self.crop is not None:
            frame = np.ascontiguousarray(frame[: self.crop[0], : self.crop[1]])
        return frame

    def frame_name(self, index: int) -> str:
        """File name of frame ``index`` as a PNG (the name saved predictions get)."""
        return Path(self.frames[index]).with_suffix(".png").name


def parse_resolution(text: str | None) -> tuple[int, int] | None:
    """``"720x1280"`` -> ``(720, 1280)`` (height first, as the reference's ``--resolution``)."""
    if text is None:
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--resolution must look like HEIGHTxWIDTH (e.g. 720x1280), got '{text}'") from None
    if height < 1 or width < 1:
        raise InputError(f"--resolution must be positive, got '{text}'")
    return height, width


def clips_from_layout(
    data_dir: str | Path,
    subsets: tuple[str, ...],
    layout: str,
    resize: tuple[int, int] | None = None,
    crop: tuple[int, int] | None = None,
) -> list[EvalClip]:
    """Every clip folder ``data_dir/test/<subset>/<clip>`` as an :class:`EvalClip`, subsets in the given order
    and clips in natural order, named ``test--<subset>--<clip>`` (the reference's flattened names).

    Raises a one-line :class:`InputError` when ``data_dir`` does not look like ``layout`` describes.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise InputError(f"--data_dir '{root}' is not a folder")
    clips = []
    for subset in subsets:
        folder = root / "test" / subset
        if not folder.is_dir():
            continue
        for clip_dir in sorted((p for p in folder.iterdir() if p.is_dir()), key=natural_sort_key):
            frames = list_frame_files(clip_dir)
            if not frames:
                raise InputError(f"'{clip_dir}' holds no image frames; --data_dir is not {layout}")
            clips.append(EvalClip(f"test--{subset}--{clip_dir.name}", subset, tuple(frames), resize, crop))
    if not clips:
        raise InputError(f"--data_dir '{root}' is not {layout}")
    return clips


__all__ = [
    "EvalClip",
    "area_resize_truncate",
    "clips_from_layout",
    "list_frame_files",
    "parse_resolution",
    "read_frame_rgb",
]
