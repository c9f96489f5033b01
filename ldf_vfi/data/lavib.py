"""Indexing LAVIB (or any folder of videos) into the small table the training loader reads.

LAVIB's public layout (Stergiou 2024)::

    LAVIB/
      annotations/train.csv, val.csv, test.csv, train_high_fm.csv, ...   columns name, shot, tmp_crop, vrt_crop, hrz_crop
      segments/<name>_shot<shot>_<tmp_crop>_<vrt_crop>_<hrz_crop>/vid.mp4   ~1 s 4K clips
      segments_downsampled/<same folders>/vid.mp4                          optional 540x540 copies

The reference's ``data_tools.py`` meant to store every ``.mp4`` under the root as a one-column ``datasets``
table (``video``); it crashes before writing anything (REFERENCE_SPEC 11, bug 11) and would have listed the
downsampled copies twice. Here the index is a JSON-lines file, one clip per line, with what the loader needs
up front (``video`` path, ``num_frames``, ``fps`` as an exact fraction, ``width``, ``height``), so training
never probes 283K files at start-up and can drop clips shorter than its clip length before drawing.

``--split all`` (default) indexes every clip folder, as the reference did; ``--split train`` (or any
``annotations/<split>.csv``) indexes exactly the clips of that split. ``--layout folder`` indexes every video
below any folder, for datasets other than LAVIB.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

from ..errors import InputError, LDFVFIError
from ..io import VIDEO_EXTENSIONS, VideoWriter, natural_sort_key, probe
from ..processes import clean_context
from .synthetic import MovingShapes

__all__ = [
    "INDEX_NAME",
    "LAVIB_COLUMNS",
    "VideoRecord",
    "build_index",
    "find_folder_videos",
    "find_lavib_clips",
    "lavib_clip_folder",
    "main",
    "read_index",
    "write_index",
    "write_synthetic_lavib",
]

logger = logging.getLogger("ldf_vfi.data")

INDEX_NAME = "index.jsonl"
"""File name of the index inside the ``--dst`` folder (``--data`` may name the folder or the file)."""
LAVIB_COLUMNS = ("name", "shot", "tmp_crop", "vrt_crop", "hrz_crop")
"""Columns of LAVIB's split CSVs that name a clip folder."""
LAVIB_VIDEO_FOLDERS = ("segments", "segments_downsampled")
_LAVIB_HINT = (
    "expected <src>/segments/<name>_shot<shot>_<tmp_crop>_<vrt_crop>_<hrz_crop>/vid.mp4 "
    "(and <src>/annotations/<split>.csv); pass --layout folder to index every video below it"
)


@dataclass(frozen=True)
class VideoRecord:
    """One indexed clip. ``fps`` is an exact fraction as text (``"60"``, ``"30000/1001"``)."""

    video: str
    num_frames: int
    fps: str
    width: int
    height: int

    @property
    def path(self) -> Path:
        return Path(self.video)


# -------------------------------------------------------------------------------------------------------
# Finding the videos


def lavib_clip_folder(row: dict[str, str]) -> str:
    """``<name>_shot<shot>_<tmp_crop>_<vrt_crop>_<hrz_crop>`` of one split-CSV row (values may read ``12.0``)."""
    try:
        name, shot, tmp, vrt, hrz = (int(float(row[column])) for column in LAVIB_COLUMNS)
    except KeyError as exc:
        raise InputError(
            f"split CSV lacks column {exc.args[0]!r} (needs {', '.join(LAVIB_COLUMNS)})"
        ) from None
    except ValueError:
        raise InputError(f"split CSV row has a non-numeric clip id: {row}") from None
    return f"{name}_shot{shot}_{tmp}_{vrt}_{hrz}"


def _clip_video(folder: Path) -> Path | None:
    """The clip's ``vid.mp4``, else its only video file, else None."""
    standard = folder / "vid.mp4"
    if standard.is_file():
        return standard
    videos = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
    return videos[0] if len(videos) == 1 else None


def find_lavib_clips(
    src: str | Path, split: str = "all", videos: str = "segments"
) -> tuple[list[Path], list[str]]:
    """The clip videos of a LAVIB root and the clip folders a split names but that are missing.

    ``split="all"`` lists every clip folder of ``<src>/<videos>``; any other value reads
    ``<src>/annotations/<split>.csv``. Raises :class:`InputError` with the expected layout when ``src`` is
    not a LAVIB folder.
    """
    root = Path(src)
    video_root = root / videos
    if not video_root.is_dir():
        raise InputError(f"'{root}' has no {videos}/ folder: not a LAVIB root ({_LAVIB_HINT})")
    if split == "all":
        found = [
            clip
            for folder in sorted(video_root.iterdir(), key=natural_sort_key)
            if folder.is_dir() and (clip := _clip_video(folder)) is not None
        ]
        if not found:
            raise InputError(f"no clip folders with a video in '{video_root}' ({_LAVIB_HINT})")
        return found, []
    table = root / "annotations" / f"{split}.csv"
    if not table.is_file():
        available = sorted(p.stem for p in (root / "annotations").glob("*.csv"))
        listed = f"; available: {', '.join(available)}" if available else ""
        raise InputError(f"no split file '{table}'{listed} (or use --split all)")
    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise InputError(f"split file '{table}' lists no clips")
    found, missing = [], []
    for row in rows:
        folder = video_root / lavib_clip_folder(row)
        clip = _clip_video(folder) if folder.is_dir() else None
        if clip is None:
            missing.append(folder.name)
        else:
            found.append(clip)
    if not found:
        raise InputError(
            f"none of the {len(rows)} clips of '{table}' exist under '{video_root}' (first: {missing[0]}/vid.mp4)"
        )
    return found, missing


def find_folder_videos(src: str | Path) -> list[Path]:
    """Every video file below ``src`` (recursively, natural order)."""
    root = Path(src)
    found = sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS),
        key=lambda p: [natural_sort_key(part) for part in p.relative_to(root).parts],
    )
    if not found:
        raise InputError(f"no videos ({', '.join(VIDEO_EXTENSIONS[:5])}, ...) below '{root}'")
    return found


# -------------------------------------------------------------------------------------------------------
# Probing and the index file


def _probe_one(path: Path) -> VideoRecord | str:
    """A record, or the reason the file cannot be used (returned, not raised, so a pool keeps going)."""
    try:
        info = probe(path)
    except LDFVFIError as exc:
        return str(exc)
    return VideoRecord(str(path.resolve()), info.num_frames, str(info.fps), info.width, info.height)


def build_index(
    paths: Sequence[Path], num_workers: int = 1
) -> tuple[list[VideoRecord], list[tuple[str, str]]]:
    """Probe every video; returns the records (in ``paths`` order) and ``(path, reason)`` of unreadable ones."""
    if num_workers > 1 and len(paths) > 1:
        # Children from a clean context: forked ones can inherit locks of FFmpeg's threads (ldf_vfi.processes).
        with ProcessPoolExecutor(max_workers=num_workers, mp_context=clean_context()) as pool:
            results = list(pool.map(_probe_one, paths, chunksize=max(1, len(paths) // (8 * num_workers))))
    else:
        results = [_probe_one(p) for p in paths]
    records = [r for r in results if isinstance(r, VideoRecord)]
    failures = [(str(p), r) for p, r in zip(paths, results) if isinstance(r, str)]
    return records, failures


def write_index(records: Iterable[VideoRecord], dst: str | Path, meta: dict, overwrite: bool = False) -> Path:
    """Write ``<dst>/index.jsonl`` (one record per line) and ``<dst>/meta.json``; returns the index path.

    The index is written to a temporary name and renamed, so an interrupted run leaves no half index.
    """
    folder = Path(dst)
    index = folder / INDEX_NAME
    if index.exists() and not overwrite:
        raise InputError(f"'{index}' exists; pass --overwrite to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{INDEX_NAME}.partial"
    count = 0
    with partial.open("w") as handle:
        for record in records:
            handle.write(json.dumps(asdict(record)) + "\n")
            count += 1
    os.replace(partial, index)
    (folder / "meta.json").write_text(json.dumps({**meta, "num_videos": count}, indent=2) + "\n")
    return index


def _index_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / INDEX_NAME
    if not path.is_file():
        raise InputError(
            f"no dataset index at '{path}' (make one with: python data_tools.py --src ... --dst ...)"
        )
    return path


def read_index(path: str | Path) -> list[VideoRecord]:
    """Records of an index file, or of ``<folder>/index.jsonl``. Relative ``video`` paths are taken relative
    to the index's folder (so hand-written indexes can be moved with their videos)."""
    index = _index_path(path)
    records = []
    with index.open() as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                video = Path(entry["video"])
                fps = Fraction(str(entry["fps"]))
                record = VideoRecord(
                    str(video if video.is_absolute() else index.parent / video),
                    int(entry["num_frames"]),
                    str(fps),
                    int(entry["width"]),
                    int(entry["height"]),
                )
            except (ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
                raise InputError(
                    f"{index}:{number}: not a video record ({type(exc).__name__}: {exc})"
                ) from None
            records.append(record)
    if not records:
        raise InputError(f"dataset index '{index}' lists no videos")
    return records


# -------------------------------------------------------------------------------------------------------
# A synthetic LAVIB-shaped folder (tests, benchmarks, demos)


def write_synthetic_lavib(
    root: str | Path,
    num_clips: int = 4,
    num_frames: int = 20,
    height: int = 64,
    width: int = 80,
    fps: int = 60,
    seed: int = 0,
    splits: dict[str, Sequence[int]] | None = None,
) -> list[Path]:
    """Write ``num_clips`` moving-shapes clips in LAVIB's layout (``segments/<name>_shot.../vid.mp4``) and
    ``annotations/<split>.csv`` files (default: clips 0..n-2 in ``train``, the last in ``test``).

    Clips are lossless H.264 (crf 0) with different scenes and motions, so a model trained on them has
    something to learn. Returns the clip paths in index order.
    """
    root = Path(root)
    motions = ("translate", "rotate", "occlude", "mixed")
    clips = []
    for i in range(num_clips):
        folder = (
            root
            / "segments"
            / lavib_clip_folder(
                {
                    "name": 1000 + i // 2,
                    "shot": i % 2,
                    "tmp_crop": 1 + i % 10,
                    "vrt_crop": 1,
                    "hrz_crop": 1 + i % 2,
                }
            )
        )
        scene = MovingShapes(
            height, width, motions[i % len(motions)], seed=seed + i, speed=1.0 + 0.25 * (i % 3)
        )
        path = folder / "vid.mp4"
        with VideoWriter(path, Fraction(fps), crf=0, preset="ultrafast") as writer:
            for frame in scene.frames(num_frames):
                writer.write(frame)
        clips.append(path)
    if splits is None:
        splits = {"train": range(max(1, num_clips - 1)), "test": range(max(1, num_clips - 1), num_clips)}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, members in splits.items():
        with (root / "annotations" / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["", *LAVIB_COLUMNS, "afm"])
            for row, i in enumerate(members):
                writer.writerow([row, 1000 + i // 2, i % 2, 1 + i % 10, 1, 1 + i % 2, 0.5])
    return clips


# -------------------------------------------------------------------------------------------------------
# Command line (data_tools.py)


def build_parser() -> argparse.ArgumentParser:
    """``data_tools.py``'s flags (the reference's ``--src``/``--dst`` plus ours), with ``--config FILE`` and
    one-line argparse errors like every script of the package."""
    from ..config import ArgumentParser, add_config_argument

    parser = ArgumentParser(
        prog="data_tools.py",
        description="Index LAVIB (or a folder of videos) into the dataset file that train.py reads.",
    )
    add_config_argument(parser)
    parser.add_argument("--src", required=True, help="LAVIB root (holding segments/ and annotations/)")
    parser.add_argument("--dst", required=True, help="output folder; receives index.jsonl and meta.json")
    parser.add_argument(
        "--layout",
        choices=("auto", "lavib", "folder"),
        default="auto",
        help="lavib: LAVIB's segments/ layout; folder: every video below --src; auto: lavib if --src has segments/ or annotations/",
    )
    parser.add_argument(
        "--split",
        default="all",
        help="'all' (every clip folder, as the reference) or a LAVIB split: train, val, test, train_high_fm, ...",
    )
    parser.add_argument(
        "--videos",
        choices=LAVIB_VIDEO_FOLDERS,
        default="segments",
        help="which LAVIB copy to index: the original clips or the 540x540 segments_downsampled",
    )
    parser.add_argument("--min_frames", type=int, default=0, help="leave out videos with fewer frames")
    parser.add_argument(
        "--num_workers", type=int, default=min(8, os.cpu_count() or 1), help="probing processes"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing index")
    return parser


def _layout(src: Path, requested: str) -> str:
    if requested != "auto":
        return requested
    if any((src / name).is_dir() for name in (*LAVIB_VIDEO_FOLDERS, "annotations")):
        return "lavib"
    raise InputError(f"'{src}' is not a LAVIB root: no segments/ or annotations/ ({_LAVIB_HINT})")


def run(args: argparse.Namespace) -> Path:
    """Index ``args.src`` into ``args.dst``; returns the index path."""
    src = Path(args.src)
    if not src.is_dir():
        raise InputError(f"--src '{src}' is not a folder")
    if args.num_workers < 1:
        raise InputError(f"--num_workers must be at least 1, got {args.num_workers}")
    layout = _layout(src, args.layout)
    missing: list[str] = []
    if layout == "lavib":
        paths, missing = find_lavib_clips(src, args.split, args.videos)
    else:
        paths = find_folder_videos(src)
    records, failures = build_index(paths, args.num_workers)
    short = [r for r in records if r.num_frames < args.min_frames]
    kept = [r for r in records if r.num_frames >= args.min_frames]
    if not kept:
        raise InputError(
            f"none of the {len(paths)} videos under '{src}' is readable with >= {args.min_frames} frames"
        )
    meta = {
        "source": str(src.resolve()),
        "layout": layout,
        "split": args.split if layout == "lavib" else None,
        "videos": args.videos if layout == "lavib" else None,
        "min_frames": args.min_frames,
        "missing_clips": len(missing),
        "unreadable": len(failures),
        "too_short": len(short),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    index = write_index(kept, args.dst, meta, overwrite=args.overwrite)
    problems = [f"missing {name}" for name in missing] + [f"unreadable {p}: {why}" for p, why in failures]
    problems += [f"too short {r.video}: {r.num_frames} frames" for r in short]
    if problems:
        (Path(args.dst) / "skipped.txt").write_text("\n".join(problems) + "\n")
        logger.warning("%d videos left out (listed in %s)", len(problems), Path(args.dst) / "skipped.txt")
    total = sum(r.num_frames for r in kept)
    print(f"wrote {index}: {len(kept)} videos, {total} frames")
    return index


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``data_tools.py``; user errors print one line and return 2."""
    from ..config import parse_args_with_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        run(parse_args_with_config(build_parser(), argv))
    except LDFVFIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
