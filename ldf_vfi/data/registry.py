"""Datasets described by one small config file (``configs/datasets/*.yaml``), for training and evaluation alike.

A dataset entry names its ``type`` and ``root`` and, where needed, splits, a frame rate and the evaluation
protocol's factor::

    type: video_folder          # lavib | snu_film | x4k1000fps | video_folder
    root: data/my_clips         # searched recursively for videos and folders of frames
    fps: 30                     # frame folders have no rate of their own (video_folder only)
    splits:                     # optional: relative paths under root, inline or in a text file per split
      train: splits/train.txt
      test: [clip_07.mp4, frames/clip_08]
    temporal_sf: 8              # evaluation: every temporal_sf-th frame is input, the frames between are scored
    task: null                  # snu_film: entire | test-easy ...; x4k1000fps: 1k | 2k | 4k

Training (``train.py --data FILE``) samples clips from the ``train`` split at the configured temporal factors
and resolutions; evaluation (``evaluate.py --dataset_config FILE``) drops and re-synthesises the ``test``
split. Without splits, every clip serves both. Errors name the key and the file.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..config import load_config_file
from ..errors import InputError
from ..io import VIDEO_EXTENSIONS, list_frame_files, natural_sort_key, probe, read_frames
from . import EvalClip

DATASET_TYPES = ("lavib", "snu_film", "x4k1000fps", "video_folder")
SPLITS = ("train", "test")
DATASET_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset entry (see the module docstring). ``source`` is the file it came from (for errors)."""

    type: str
    root: str
    fps: float | str | None = None
    splits: dict[str, Any] = field(default_factory=dict)
    temporal_sf: int | None = None
    task: str | None = None
    name: str | None = None
    source: str = "<dict>"

    @property
    def root_path(self) -> Path:
        return Path(self.root).expanduser()

    @property
    def display_name(self) -> str:
        return self.name or Path(self.source).stem


_FIELD_TYPES = {"type": str, "root": str, "fps": (int, float, str), "splits": dict, "temporal_sf": int,
                "task": str, "name": str}  # fmt: skip


def is_dataset_config(path: str | Path) -> bool:
    """Whether ``path`` names a dataset config file (rather than an index or a data folder)."""
    return Path(path).suffix.lower() in DATASET_CONFIG_SUFFIXES and Path(path).is_file()


def load_dataset_config(path: str | Path) -> DatasetConfig:
    """Read and validate a dataset entry; every problem is one :class:`InputError` naming the key and file."""
    source = f"dataset config '{path}'"
    data = load_config_file(path)
    for key, value in data.items():
        if key not in _FIELD_TYPES:
            close = difflib.get_close_matches(key, list(_FIELD_TYPES), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise InputError(f"unknown key '{key}' in {source}{hint}")
        expected = _FIELD_TYPES[key]
        if value is not None and (not isinstance(value, expected) or isinstance(value, bool)):
            names = " or ".join(
                t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,))
            )
            raise InputError(f"'{key}' in {source} must be {names}, got {value!r}")
    for required in ("type", "root"):
        if data.get(required) is None:
            raise InputError(f"{source} needs '{required}'")
    if data["type"] not in DATASET_TYPES:
        close = difflib.get_close_matches(data["type"], DATASET_TYPES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InputError(
            f"'type' in {source} must be one of {', '.join(DATASET_TYPES)}, got '{data['type']}'{hint}"
        )
    root = Path(data["root"]).expanduser()
    if not root.is_absolute():  # relative roots are relative to the config file's folder, then to the cwd
        beside = Path(path).parent / root
        root = beside if beside.exists() else root
    if not root.exists():
        raise InputError(f"'root' in {source}: not found: '{data['root']}'")
    data["root"] = str(root)
    if data.get("temporal_sf") is not None and not 1 <= data["temporal_sf"] <= 16:
        raise InputError(f"'temporal_sf' in {source} must be between 1 and 16, got {data['temporal_sf']}")
    if data.get("fps") is not None:
        try:
            if Fraction(str(data["fps"])) <= 0:
                raise ValueError
        except (ValueError, ZeroDivisionError):
            raise InputError(f"'fps' in {source} must be a positive number, got {data['fps']!r}") from None
    for split in data.get("splits") or {}:
        if split not in SPLITS:
            raise InputError(f"'splits' in {source} may name {' and '.join(SPLITS)}, not '{split}'")
    return DatasetConfig(**data, source=str(path))


def save_dataset_config(config: DatasetConfig, path: str | Path) -> Path:
    """Write a dataset entry back to YAML/JSON (the file -> dataclass -> file round trip)."""
    import json

    import yaml

    values = {k: v for k, v in dataclasses.asdict(config).items() if k != "source"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        json.dumps(values, indent=2) + "\n"
        if path.suffix == ".json"
        else yaml.safe_dump(values, sort_keys=False)
    )
    path.write_text(text)
    return path


# -- the entries of a video_folder dataset ---------------------------------------------------------------


def _split_entries(config: DatasetConfig, split: str | None) -> list[str] | None:
    if split is None or split not in config.splits:
        return None
    listed = config.splits[split]
    if isinstance(listed, str):  # a text file of relative paths, one per line, beside the config or in root
        candidates = [Path(config.source).parent / listed, config.root_path / listed, Path(listed)]
        file = next((c for c in candidates if c.is_file()), None)
        if file is None:
            raise InputError(
                f"split file '{listed}' of 'splits.{split}' in dataset config '{config.source}' not found"
            )
        listed = [
            line.strip()
            for line in file.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
    if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
        raise InputError(
            f"'splits.{split}' in dataset config '{config.source}' must be a list of paths or a file"
        )
    return listed


def video_folder_entries(config: DatasetConfig, split: str | None = None) -> list[Path]:
    """Videos and frame folders below ``root`` (recursively, natural order), restricted to ``split``'s list."""
    root = config.root_path
    if root.is_file():
        return [root]
    entries = []
    for path in sorted(
        root.rglob("*"), key=lambda p: [natural_sort_key(part) for part in p.relative_to(root).parts]
    ):
        if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
            entries.append(path)
        elif path.is_dir() and list_frame_files(path):
            entries.append(path)
    listed = _split_entries(config, split)
    if listed is not None:
        wanted = {str(Path(item)) for item in listed}
        missing = wanted - {str(e.relative_to(root)) for e in entries}
        if missing:
            raise InputError(
                f"'splits.{split}' in dataset config '{config.source}' lists '{sorted(missing)[0]}', not found under '{root}'"
            )
        entries = [e for e in entries if str(e.relative_to(root)) in wanted]
    if not entries:
        raise InputError(f"no videos or frame folders under '{root}' (dataset config '{config.source}')")
    return entries


class VideoEvalClip(EvalClip):
    """An evaluation clip stored as one video file: frames decoded on demand (decord random access)."""

    def __init__(self, clip_id: str, subset: str, video: Path, num_frames: int, crop=None) -> None:
        super().__init__(clip_id, subset, (), None, crop)
        object.__setattr__(self, "video", video)
        object.__setattr__(self, "num_frames", num_frames)

    def __len__(self) -> int:
        return self.num_frames

    def load(self, index: int) -> np.ndarray:
        frame = read_frames(self.video, indices=[index])[0]
        if self.crop is not None:
            frame = np.ascontiguousarray(frame[: self.crop[0], : self.crop[1]])
        return frame

    def frame_name(self, index: int) -> str:
        return f"{index:08d}.png"


def eval_clips(
    config: DatasetConfig, crop: tuple[int, int] | None = None, split: str = "test"
) -> list[EvalClip]:
    """The evaluation clips of a dataset entry (``test`` split for a video folder)."""
    if config.type == "snu_film":
        from .snu_film import find_snu_film_clips

        return find_snu_film_clips(config.root_path, config.task or "entire", crop)
    if config.type == "x4k1000fps":
        from .x4k import find_x4k_clips

        return find_x4k_clips(config.root_path, config.task or "1k", crop)
    if config.type == "lavib":
        raise InputError(
            f"dataset config '{config.source}': LAVIB is a training set; evaluate on a video_folder of its test clips"
        )
    clips: list[EvalClip] = []
    root = config.root_path
    for entry in video_folder_entries(config, split):
        relative = entry.relative_to(root) if entry != root else Path(entry.name)
        clip_id = "--".join(relative.with_suffix("").parts)
        subset = relative.parts[0] if len(relative.parts) > 1 else config.display_name
        if entry.is_dir():
            clips.append(EvalClip(clip_id, subset, tuple(list_frame_files(entry)), None, crop))
        else:
            clips.append(VideoEvalClip(clip_id, subset, entry, probe(entry).num_frames, crop))
    return clips


def train_records(config: DatasetConfig, split: str = "train", num_workers: int = 1):
    """Training records (:class:`~ldf_vfi.data.lavib.VideoRecord`) of a dataset entry."""
    from .lavib import INDEX_NAME, build_index, find_lavib_clips, read_index

    root = config.root_path
    if config.type == "lavib":
        if (root / INDEX_NAME).is_file() or root.suffix == ".jsonl":
            return read_index(root)
        listed = config.splits.get(split, "all")
        paths, _ = find_lavib_clips(root, listed if isinstance(listed, str) else "all")
    elif config.type == "video_folder":
        paths = [p for p in video_folder_entries(config, split) if p.is_file()]
        if not paths:
            raise InputError(
                f"dataset config '{config.source}': training reads video files; '{root}' has only frame folders"
            )
    else:
        raise InputError(
            f"dataset config '{config.source}': {config.type} is an evaluation set, not a training set"
        )
    records, failures = build_index(paths, num_workers=num_workers)
    if failures:
        raise InputError(
            f"dataset config '{config.source}': cannot read '{failures[0][0]}': {failures[0][1]}"
        )
    return records
