"""Reading videos and frame folders as streams of ``H x W x 3`` uint8 RGB frames.

Two decoders sit behind one interface: PyAV (always available; streams sequentially, knows fps, audio and
corrupt packets) and decord (random access, fast for training clips; optional). Every failure a user can
cause (missing path, unreadable or empty file, mixed frame sizes) raises :class:`~ldf_vfi.errors.InputError`
with a one-line message that names the path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ..errors import InputError, first_line

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".y4m")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FRAME_FOLDER_FPS = Fraction(30)

Backend = Literal["auto", "pyav", "decord"]


def natural_sort_key(name: str | Path) -> list:
    """Sort key that orders ``frame2.png`` before ``frame10.png`` (digit runs compare as numbers)."""
    text = Path(name).name if isinstance(name, Path) else str(name)
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


@dataclass(frozen=True)
class VideoInfo:
    """What we know about an input before decoding it.

    ``fps`` is exact (``Fraction(30000, 1001)`` for NTSC rates). For frame folders it is
    :data:`DEFAULT_FRAME_FOLDER_FPS` unless the caller gave one. ``num_frames`` comes from the container
    (or a packet count when the container does not store it).
    """

    path: Path
    fps: Fraction
    num_frames: int
    width: int
    height: int
    has_audio: bool
    kind: Literal["video", "frames"]

    @property
    def duration(self) -> float:
        return float(self.num_frames / self.fps) if self.fps else 0.0


def read_frame_rgb(path: Path) -> np.ndarray:
    """One image file as ``H x W x 3`` uint8 RGB (alpha dropped, grey expanded), like PIL's ``convert('RGB')``."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"cannot read image '{path}'")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def list_frame_files(folder: Path) -> list[Path]:
    """Image files of a frame folder in natural order (``2.png`` before ``10.png``)."""
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=natural_sort_key,
    )


def _is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def list_inputs(path: str | Path) -> list[Path]:
    """Expand a user path into the inputs to process, each a video file or a folder of frames.

    A video file gives itself; a folder that holds images is one frame-folder input; any other folder gives
    its videos and frame sub-folders in natural order. Raises :class:`InputError` when nothing usable is found.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: '{path}'")
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise InputError(f"'{path}' is a single image; give the folder that holds the frames instead")
        return [path]
    if list_frame_files(path):
        return [path]
    entries = []
    for child in sorted(path.iterdir(), key=natural_sort_key):
        if _is_video_file(child) or (child.is_dir() and list_frame_files(child)):
            entries.append(child)
    if not entries:
        raise InputError(
            f"no videos ({', '.join(VIDEO_EXTENSIONS[:5])}, ...) or image frames found in folder '{path}'"
        )
    return entries


def _open_container(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read video '{path}': {first_line(exc)}") from None


def _count_packets(container, stream) -> int:
    container.seek(0)
    count = sum(1 for packet in container.demux(stream) if packet.size > 0)
    container.seek(0)
    return count


def probe(path: str | Path, fps: Fraction | float | None = None) -> VideoInfo:
    """Describe a video file or a frame folder without decoding all of it.

    ``fps`` overrides the rate read from the file (frame folders have none; they get 30 unless given).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: '{path}'")
    override = Fraction(fps).limit_denominator(1_000_000) if fps is not None else None
    if override is not None and override <= 0:
        raise InputError(f"fps must be positive, got {fps}")
    if path.is_dir():
        files = list_frame_files(path)
        if not files:
            raise InputError(f"no image frames ({', '.join(IMAGE_EXTENSIONS)}) in folder '{path}'")
        first = read_frame_rgb(files[0])
        return VideoInfo(
            path=path,
            fps=override or DEFAULT_FRAME_FOLDER_FPS,
            num_frames=len(files),
            width=first.shape[1],
            height=first.shape[0],
            has_audio=False,
            kind="frames",
        )
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise InputError(f"'{path}' is a single image; give the folder that holds the frames instead")
    container = _open_container(path)
    try:
        if not container.streams.video:
            raise InputError(f"'{path}' has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if override is None and not rate:
            raise InputError(f"cannot tell the frame rate of '{path}'; pass it with --input_fps")
        num_frames = stream.frames or _count_packets(container, stream)
        width, height = stream.codec_context.width, stream.codec_context.height
        if num_frames == 0 or not width or not height:
            raise InputError(f"video '{path}' has no frames")
        return VideoInfo(
            path=path,
            fps=override or Fraction(rate),
            num_frames=int(num_frames),
            width=int(width),
            height=int(height),
            has_audio=bool(container.streams.audio),
            kind="video",
        )
    finally:
        container.close()


def _iter_frame_folder(path: Path) -> Iterator[np.ndarray]:
    size = None
    for file in list_frame_files(path):
        rgb = read_frame_rgb(file)
        if size is None:
            size = rgb.shape[:2]
        elif rgb.shape[:2] != size:
            raise InputError(
                f"frame '{file}' is {rgb.shape[1]}x{rgb.shape[0]} but earlier frames are {size[1]}x{size[0]}"
            )
        yield rgb


def _iter_pyav(path: Path) -> Iterator[np.ndarray]:
    import av

    container = _open_container(path)
    try:
        if not container.streams.video:
            raise InputError(f"'{path}' has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
                index += 1
        except av.error.FFmpegError as exc:
            raise InputError(f"video '{path}' is corrupt after frame {index}: {first_line(exc)}") from None
    finally:
        container.close()


def _decord_reader(path: Path):
    try:
        import decord
    except ImportError:
        raise InputError("the decord video backend is not installed (pip install decord)") from None
    try:
        return decord.VideoReader(str(path), ctx=decord.cpu(0))
    except Exception as exc:  # decord raises its own DECORDError and RuntimeError types
        raise InputError(f"cannot read video '{path}' with decord: {first_line(exc)}") from None


def _iter_decord(path: Path, indices: Sequence[int] | None = None, batch: int = 16) -> Iterator[np.ndarray]:
    reader = _decord_reader(path)
    wanted = list(range(len(reader))) if indices is None else list(indices)
    for start in range(0, len(wanted), batch):
        chunk = wanted[start : start + batch]
        yield from reader.get_batch(chunk).asnumpy()


def iter_frames(path: str | Path, backend: Backend = "auto") -> Iterator[np.ndarray]:
    """Stream every frame of a video file or frame folder as ``H x W x 3`` uint8 RGB (one at a time)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: '{path}'")
    if path.is_dir():
        if not list_frame_files(path):
            raise InputError(f"no image frames ({', '.join(IMAGE_EXTENSIONS)}) in folder '{path}'")
        return _iter_frame_folder(path)
    if backend == "decord":
        return _iter_decord(path)
    if backend not in ("auto", "pyav"):
        raise InputError(f"unknown video backend '{backend}' (choose auto, pyav or decord)")
    return _iter_pyav(path)


def read_frames(
    path: str | Path, indices: Sequence[int] | None = None, backend: Backend = "auto"
) -> list[np.ndarray]:
    """Decode frames into a list: all of them, or only ``indices`` (random access via decord when available).

    Meant for short clips (training samples, tests); use :func:`iter_frames` for whole videos.
    """
    path = Path(path)
    if indices is None:
        frames = list(iter_frames(path, backend))
        if not frames:
            raise InputError(f"'{path}' has no frames")
        return frames
    wanted = [int(i) for i in indices]
    if path.is_dir():
        files = list_frame_files(path)
        out = []
        for i in wanted:
            if not 0 <= i < len(files):
                raise InputError(f"frame index {i} out of range for '{path}' ({len(files)} frames)")
            out.append(read_frame_rgb(files[i]))
        return out
    use_decord = backend == "decord"
    if backend == "auto":
        try:
            import decord  # noqa: F401

            use_decord = True
        except ImportError:
            use_decord = False
    if use_decord:
        reader = _decord_reader(path)
        bad = [i for i in wanted if not 0 <= i < len(reader)]
        if bad:
            raise InputError(f"frame index {bad[0]} out of range for '{path}' ({len(reader)} frames)")
        return list(reader.get_batch(wanted).asnumpy())
    positions = {i: [] for i in wanted}
    for order, i in enumerate(wanted):
        positions[i].append(order)
    out: list[np.ndarray | None] = [None] * len(wanted)
    last = max(wanted)
    for index, frame in enumerate(_iter_pyav(path)):
        for order in positions.get(index, ()):
            out[order] = frame
        if index >= last:
            break
    missing = [wanted[k] for k, f in enumerate(out) if f is None]
    if missing:
        raise InputError(f"frame index {missing[0]} out of range for '{path}'")
    return out  # type: ignore[return-value]
