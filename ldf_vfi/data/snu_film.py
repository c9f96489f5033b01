"""SNU-FILM (Choi et al., CAIN 2020) as the LDF-VFI evaluation uses it, plus the classic triplet levels.

Layout (``--data_dir``)::

    SNU-FILM/test/GOPRO_test/<clip>/<frames>.png
    SNU-FILM/test/YouTube_test/<clip>/<frames>.png
    SNU-FILM/test-{easy,medium,hard,extreme}.txt      (or eval_modes/test-*.txt; triplet levels only)

``task="entire"`` (the reference's only protocol, "SNU-FILM-entire"): every clip folder of ``GOPRO_test``
then ``YouTube_test`` is one whole sequence. The reference's ``--task test-extreme`` is accepted there but
ignored; here the level names select the classic *triplet* protocol instead: each line of
``test-<level>.txt`` names three frames, the outer two are the inputs and the middle one is scored (a
3-frame clip at ``temporal_sf=2``). Paths in the lists start with the authors' prefix
(``data/SNU-FILM/test/...``); they are resolved from their ``test/`` component under ``--data_dir``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from . import EvalClip, clips_from_layout

SUBSETS = ("GOPRO_test", "YouTube_test")
TRIPLET_LEVELS = ("test-easy", "test-medium", "test-hard", "test-extreme")
TASKS = ("entire", *TRIPLET_LEVELS)
LAYOUT = "SNU-FILM shaped: expected test/GOPRO_test/<clip>/*.png and/or test/YouTube_test/<clip>/*.png"


def find_snu_film_clips(
    data_dir: str | Path, task: str = "entire", crop: tuple[int, int] | None = None
) -> list[EvalClip]:
    """The clips of ``task`` (``entire`` or a triplet level), in a fixed order (subset, then natural order)."""
    if task not in TASKS:
        raise InputError(f"--task for SNU-FILM must be one of {', '.join(TASKS)}, got '{task}'")
    if task != "entire":
        return _triplet_clips(Path(data_dir).expanduser(), task, crop)
    return clips_from_layout(data_dir, SUBSETS, LAYOUT, crop=crop)


def triplet_list_path(data_dir: Path, level: str) -> Path:
    for candidate in (data_dir / f"{level}.txt", data_dir / "eval_modes" / f"{level}.txt"):
        if candidate.is_file():
            return candidate
    raise InputError(
        f"--task {level} needs '{data_dir / f'{level}.txt'}' (or eval_modes/{level}.txt), the SNU-FILM triplet list"
    )


def resolve_listed_path(data_dir: Path, listed: str) -> Path:
    """Map a list entry such as ``data/SNU-FILM/test/GOPRO_test/x/000001.png`` to ``data_dir/test/...``."""
    parts = Path(listed.strip()).parts
    if "test" not in parts:
        return data_dir / listed.strip()
    return data_dir.joinpath(*parts[parts.index("test") :])


def _triplet_clips(data_dir: Path, level: str, crop: tuple[int, int] | None) -> list[EvalClip]:
    clips = []
    for number, line in enumerate(triplet_list_path(data_dir, level).read_text().splitlines()):
        entries = line.split()
        if not entries:
            continue
        if len(entries) != 3:
            raise InputError(f"line {number + 1} of {level}.txt does not name three frames: '{line.strip()}'")
        frames = tuple(resolve_listed_path(data_dir, e) for e in entries)
        missing = [p for p in frames if not p.is_file()]
        if missing:
            raise InputError(f"{level}.txt line {number + 1} names a missing frame: '{missing[0]}'")
        video = frames[1].parent
        subset = video.parent.name
        clip_id = f"{level}--{number:04d}--{subset}--{video.name}--{frames[1].stem}"
        clips.append(EvalClip(clip_id, subset, frames, crop=crop))
    if not clips:
        raise InputError(f"{level}.txt lists no triplets")
    return clips


__all__ = ["SUBSETS", "TASKS", "TRIPLET_LEVELS", "find_snu_film_clips", "resolve_listed_path"]
