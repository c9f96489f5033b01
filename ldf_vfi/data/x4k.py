"""X4K1000FPS (Sim et al., XVFI 2021) test set (X-TEST) as the LDF-VFI evaluation uses it.

Layout (``--data_dir``, frames decoded with the dataset's ``mp4_decoding.py``)::

    X4K1000FPS/test/Type1/<clip>/0000.png ... 0032.png      (4096 x 2160, usually 33 frames)
    X4K1000FPS/test/Type2/<clip>/...
    X4K1000FPS/test/Type3/<clip>/...

``--task`` picks the resolution every frame is brought to *before* the inputs are taken, exactly as the
reference: ``4k`` native, ``2k`` area-downscaled to 1080 x 2048, ``1k`` to 540 x 1024 (the reference CLI's
default; its launcher evaluates ``4k``). The downscale truncates to uint8 (see
:func:`ldf_vfi.data.area_resize_truncate`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from . import EvalClip, clips_from_layout

SUBSETS = ("Type1", "Type2", "Type3")
TASK_SIZES: dict[str, tuple[int, int] | None] = {"4k": None, "2k": (1080, 2048), "1k": (540, 1024)}
TASKS = tuple(TASK_SIZES)
LAYOUT = "X4K1000FPS shaped: expected test/Type1/<clip>/*.png (and Type2, Type3)"


def find_x4k_clips(
    data_dir: str | Path, task: str = "1k", crop: tuple[int, int] | None = None
) -> list[EvalClip]:
    """Every clip of Type1, Type2, Type3 (natural order within each), with the ``task``'s resize."""
    if task not in TASK_SIZES:
        raise InputError(f"--task for X4K1000FPS must be one of {', '.join(TASKS)}, got '{task}'")
    return clips_from_layout(data_dir, SUBSETS, LAYOUT, TASK_SIZES[task], crop)


__all__ = ["SUBSETS", "TASKS", "TASK_SIZES", "find_x4k_clips"]
