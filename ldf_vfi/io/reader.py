"""Reading videos and frame folders as streams of ``H x W x 3`` uint8 RGB frames.

Two decoders sit behind one interface: PyAV (always available; streams sequentially, knows fps, audio and
corrupt packets) and decord (random access, fast for training clips; optional). Every failure a user can
cause (missing path, unreadable or empty file, mixed frame sizes) raises :class:`~ldf_vfi.errors.InputError`
with a one-line message that names the path.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, NamedTuple

import cv2
import numpy as np

from ..errors import InputError, first_line

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".y4m")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FRAME_FOLDER_FPS = Fraction(30)

Backend = Literal["auto", "pyav", "decord"]
logger = logging.getLogger("ldf_vfi")


def natural_sort_key(name: str | Path) -> list:
    """Sort key that orders ``frame2.png`` before ``frame10.png`` (digit runs compare as numbers)."""
    text = Path(name).name if isinstance(name, Path) else str(name)
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


class TimedFrame(NamedTuple):
    """One decoded frame and its presentation time in seconds (exact: the container's ``pts * time_base``)."""

    image: np.ndarray
    time: Fraction


@dataclass(frozen=True)
class VideoInfo:
    """What we know about an input before decoding it.

    ``fps`` is the nominal rate, exact (``Fraction(30000, 1001)`` for NTSC rates); frames carry their own
    times (:class:`TimedFrame`), which differ from ``k / fps`` for variable-frame-rate video. For frame folders
    it is :data:`DEFAULT_FRAME_FOLDER_FPS` unless the caller gave one. ``num_frames`` comes from the container
    (or a packet count when the container does not store it). ``width``/``height`` are the *displayed* size:
    a phone video stored 96x64 with a 90-degree display rotation is 64x96 here, and its frames are read
    rotated. ``time_base`` is the unit of the input's timestamps; ``start_time`` the first frame's time.
    """

    path: Path
    fps: Fraction
    num_frames: int
    width: int
    height: int
    has_audio: bool
    kind: Literal["video", "frames"]
    time_base: Fraction = Fraction(0)
    start_time: Fraction = Fraction(0)
    rotation: int = 0  # degrees counter-clockwise applied to the stored frames (0, 90, 180, 270)

    @property
    def duration(self) -> float:
        return float(self.num_frames / self.fps) if self.fps else 0.0


_SPECIAL_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _special_kind(mode: int) -> str | None:
    """What a path is when it is neither a regular file nor a folder (``None`` for those two)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return next((name for test, name in _SPECIAL_FILE_KINDS if test(mode)), "not a regular file")


def check_input_path(path: str | Path) -> Path:
    """The input path as a :class:`Path` once it is known to be a readable regular file or folder.

    Checked on the text as typed, before anything is opened (opening a named pipe would block): an empty
    path, ``clip.mp4/`` (a trailing slash on a file), a missing path, a pipe, socket or device, and an
    unreadable one each raise :class:`InputError` with one line.
    """
    text = os.fspath(path)
    if not text.strip():
        raise InputError(
            "the input path is empty; give a video file, a folder of frames or a folder of videos"
        )
    try:
        mode = os.stat(text).st_mode
    except NotADirectoryError:
        bare = text.rstrip("/" + os.sep)
        if bare != text and os.path.isfile(bare):
            raise InputError(f"'{text}' ends with '/' but '{bare}' is a file, not a folder") from None
        raise InputError(f"not found: '{text}' (a part of it is a file, not a folder)") from None
    except FileNotFoundError:
        raise InputError(f"not found: '{text}'") from None
    except PermissionError:
        raise InputError(f"cannot access '{text}': permission denied") from None
    except OSError as exc:
        raise InputError(f"cannot access '{text}': {first_line(exc)}") from None
    special = _special_kind(mode)
    if special is not None:
        raise InputError(f"'{text}' is {special}, not a video file or a folder")
    wanted = os.R_OK | (os.X_OK if stat.S_ISDIR(mode) else 0)
    if not os.access(text, wanted):
        raise InputError(f"cannot read '{text}': permission denied")
    return Path(text)


def read_frame_rgb(path: Path) -> np.ndarray:
    """One image file as ``H x W x 3`` uint8 RGB (alpha dropped, grey expanded), like PIL's ``convert('RGB')``."""
    data = np.fromfile(str(path), dtype=np.uint8)
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # a damaged image is our one-line error
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    finally:
        cv2.utils.logging.setLogLevel(level)
    if image is None:
        raise InputError(f"cannot read image '{path}' (not an image, or damaged)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def list_frame_files(folder: Path) -> list[Path]:
    """Image files of a frame folder in natural order (``2.png`` before ``10.png``)."""
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=natural_sort_key,
    )


def _is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def _note_ignored_in_frame_folder(folder: Path) -> None:
    videos = sorted((p.name for p in folder.iterdir() if _is_video_file(p)), key=natural_sort_key)
    if videos:
        shown = ", ".join(videos[:3]) + (", ..." if len(videos) > 3 else "")
        logger.warning(
            "'%s' holds image frames, so it is read as one frame folder; the %d video file(s) in it (%s) "
            "are not processed (give them as --data separately)",
            folder, len(videos), shown,
        )  # fmt: skip


def list_inputs(path: str | Path) -> list[Path]:
    """Expand a user path into the inputs to process, each a video file or a folder of frames.

    A video file gives itself; a folder that holds images is one frame-folder input (a video beside the
    images is not processed, with a note); any other folder gives its videos and frame sub-folders in natural
    order (pipes, sockets and devices named like videos are skipped with a note). Raises :class:`InputError`
    when nothing usable is found.
    """
    path = check_input_path(path)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise InputError(f"'{path}' is a single image; give the folder that holds the frames instead")
        return [path]
    if list_frame_files(path):
        _note_ignored_in_frame_folder(path)
        return [path]
    entries = []
    for child in sorted(path.iterdir(), key=natural_sort_key):
        try:
            if _is_video_file(child) or (child.is_dir() and list_frame_files(child)):
                entries.append(child)
            elif child.suffix.lower() in VIDEO_EXTENSIONS and child.exists():
                logger.warning(
                    "skipping '%s': %s", child, _special_kind(child.stat().st_mode) or "not readable"
                )
        except OSError as exc:  # an unreadable sub-folder
            logger.warning("skipping '%s': %s", child, first_line(exc))
    if not entries:
        raise InputError(
            f"no videos ({', '.join(VIDEO_EXTENSIONS[:5])}, ...) or image frames found in folder '{path}'"
        )
    return entries


def _open_container(path: Path):
    import av

    check_input_path(path)
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read video '{path}': {first_line(exc)}") from None


def _count_packets(container, stream) -> int:
    container.seek(0)
    count = sum(1 for packet in container.demux(stream) if packet.size > 0)
    container.seek(0)
    return count


def _nominal_rate(container, stream, sample: int = 64) -> Fraction | None:
    """The frame rate a video is meant to play at, exact when the container states it.

    The container's average rate is frames / duration, which a long last frame (or a gap) lowers, and its
    "real base" rate can be a multiple (field rate, timestamp grid); the median interval between the first
    ``sample`` frames' timestamps is neither. A stated rate within 0.5% of that median is returned as stated
    (``30000/1001`` stays exact); otherwise the median's rate is.
    """
    import av

    stated = [Fraction(r) for r in (stream.average_rate, stream.guessed_rate, stream.base_rate) if r]
    times = []
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.size > 0:
                times.append(packet.pts)
            if len(times) >= sample:
                break
    except av.error.FFmpegError:  # a damaged file: decoding will say so
        pass
    container.seek(0)
    steps = sorted(np.diff(sorted(set(times))).tolist())
    if not steps:
        return stated[0] if stated else None
    interval = steps[len(steps) // 2] * Fraction(stream.time_base)
    for rate in stated:
        if abs(rate * interval - 1) < Fraction(1, 200):
            return rate
    return (1 / interval).limit_denominator(1001)


def _orientation(frame) -> tuple[int, bool]:
    """``(quarter turns counter-clockwise, mirrored after turning)`` that bring a decoded frame to how players
    show it, from its display matrix (FFmpeg's layout: 3x3 int32, 16.16 fixed point); ``(0, False)`` when it
    has none. Angles that are not multiples of 90 degrees go to the nearest one."""
    import av

    for side_data in frame.side_data:
        if side_data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            matrix = np.frombuffer(bytes(side_data), dtype=np.int32)
            a, b, c, d = (float(matrix[i]) / 65536 for i in (0, 1, 3, 4))
            mirrored = a * d - b * c < 0
            if mirrored:  # un-mirror the first column; what remains is a pure rotation
                a, c = -a, -c
            angle = -math.degrees(math.atan2(b, a))
            return round(angle / 90) % 4, mirrored
    return 0, False


def _oriented(image: np.ndarray, orientation: tuple[int, bool]) -> np.ndarray:
    turns, mirrored = orientation
    if turns:
        image = np.rot90(image, turns)
    if mirrored:
        image = image[:, ::-1]
    return np.ascontiguousarray(image) if turns or mirrored else image


def _fps_override(fps: Fraction | float | None) -> Fraction | None:
    override = Fraction(fps).limit_denominator(1_000_000) if fps is not None else None
    if override is not None and override <= 0:
        raise InputError(f"fps must be positive, got {fps}")
    return override


def probe(path: str | Path, fps: Fraction | float | None = None) -> VideoInfo:
    """Describe a video file or a frame folder, decoding only its first frame.

    ``fps`` overrides the rate read from the file (frame folders have none; they get 30 unless given); with
    it, frame ``k`` is taken to be at ``k / fps``.
    """
    path = check_input_path(path)
    override = _fps_override(fps)
    if path.is_dir():
        files = list_frame_files(path)
        if not files:
            raise InputError(f"no image frames ({', '.join(IMAGE_EXTENSIONS)}) in folder '{path}'")
        first = read_frame_rgb(files[0])
        rate = override or DEFAULT_FRAME_FOLDER_FPS
        return VideoInfo(
            path=path,
            fps=rate,
            num_frames=len(files),
            width=first.shape[1],
            height=first.shape[0],
            has_audio=False,
            kind="frames",
            time_base=1 / rate,
        )
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise InputError(f"'{path}' is a single image; give the folder that holds the frames instead")
    container = _open_container(path)
    try:
        if not container.streams.video:
            raise InputError(f"'{path}' has no video stream")
        stream = container.streams.video[0]
        rate = _nominal_rate(container, stream)
        if override is None and not rate:
            raise InputError(f"cannot tell the frame rate of '{path}'; pass it with --input_fps")
        num_frames = stream.frames or _count_packets(container, stream)
        first = next(_decode(path, container, stream, announced=num_frames), None)
        if num_frames == 0 or first is None:
            raise InputError(f"video '{path}' has no frames")
        orientation = _orientation(first)
        height, width = _oriented(first.to_ndarray(format="rgb24"), orientation).shape[:2]
        start = Fraction(0) if override or first.pts is None else first.pts * Fraction(stream.time_base)
        return VideoInfo(
            path=path,
            fps=override or rate,
            num_frames=int(num_frames),
            width=int(width),
            height=int(height),
            has_audio=bool(container.streams.audio),
            kind="video",
            time_base=1 / override if override else Fraction(stream.time_base),
            start_time=start,
            rotation=orientation[0] * 90,
        )
    finally:
        container.close()


def _decode(path: Path, container, stream, announced: int) -> Iterator:
    """Decoded frames with error detection: any undecodable packet or frame flagged corrupt is an
    :class:`InputError` that says how far decoding got. Frame threading is off because it drops broken frames
    silently (a truncated file would pass as a shorter video); slice threading reports errors."""
    import av

    stream.thread_type = "SLICE"
    index = 0
    of_total = f" of {announced}" if announced else ""
    try:
        for frame in container.decode(stream):
            if frame.is_corrupt:
                raise InputError(
                    f"video '{path}' is damaged: frame {index + 1}{of_total} is corrupt ({index} frames read)"
                )
            yield frame
            index += 1
    except av.error.FFmpegError as exc:
        raise InputError(
            f"video '{path}' is damaged: decoding stopped after {index}{of_total} frames ({first_line(exc)})"
        ) from None


class FrameReader:
    """Stream a video file or frame folder as :class:`TimedFrame` (``H x W x 3`` uint8 RGB, upright).

    Times are the container's presentation times (variable frame rate kept; timestamps that do not increase
    are replaced by the previous one plus one nominal frame), or ``k / fps`` for frame folders and when ``fps``
    overrides the file's rate. Once the iteration is over, ``frames_read`` is the true count and ``end_time``
    the time the last frame stops being shown (its own duration kept); a video whose frames stop well before
    the length its header states decodes cleanly but was cut short: it is read as far as it goes, with a
    warning that says how far. Undecodable data is an error (see :func:`_decode`).
    """

    def __init__(self, path: str | Path, fps: Fraction | float | None = None) -> None:
        self.path = check_input_path(path)
        self.fps_override = _fps_override(fps)
        self.frames_read = 0
        self.end_time: Fraction | None = None

    def __iter__(self) -> Iterator[TimedFrame]:
        self.frames_read, self.end_time = 0, None
        if self.path.is_dir():
            return self._iter_folder()
        return self._iter_video()

    def _iter_folder(self) -> Iterator[TimedFrame]:
        rate = self.fps_override or DEFAULT_FRAME_FOLDER_FPS
        files = list_frame_files(self.path)
        if not files:
            raise InputError(f"no image frames ({', '.join(IMAGE_EXTENSIONS)}) in folder '{self.path}'")
        size = None
        for index, file in enumerate(files):
            rgb = read_frame_rgb(file)
            if size is None:
                size = rgb.shape[:2]
            elif rgb.shape[:2] != size:
                raise InputError(
                    f"frame '{file}' is {rgb.shape[1]}x{rgb.shape[0]} but earlier frames are {size[1]}x{size[0]}"
                )
            self.frames_read = index + 1
            yield TimedFrame(rgb, index / rate)
        self.end_time = len(files) / rate

    def _iter_video(self) -> Iterator[TimedFrame]:
        container = _open_container(self.path)
        try:
            if not container.streams.video:
                raise InputError(f"'{self.path}' has no video stream")
            stream = container.streams.video[0]
            rate = self.fps_override or _nominal_rate(container, stream)
            if not rate:
                raise InputError(f"cannot tell the frame rate of '{self.path}'; pass it with --input_fps")
            time_base = Fraction(stream.time_base)
            announced = int(stream.frames or 0)
            orientation = None
            previous: Fraction | None = None
            shown_until = Fraction(0)  # the latest time + duration of any frame (Matroska's track end)
            for frame in _decode(self.path, container, stream, announced):
                if orientation is None:
                    orientation = _orientation(frame)
                if self.fps_override:
                    time = self.frames_read / rate
                elif frame.pts is not None:
                    time = frame.pts * time_base
                else:
                    time = previous + 1 / rate if previous is not None else Fraction(0)
                if previous is not None and time <= previous:
                    if not self.fps_override:
                        logger.warning(
                            "'%s': frame %d does not come after frame %d in time; placing it one frame later",
                            self.path, self.frames_read + 1, self.frames_read,
                        )  # fmt: skip
                    time = previous + 1 / rate
                image = _oriented(frame.to_ndarray(format="rgb24"), orientation)
                self.frames_read += 1
                previous = time
                if frame.duration and not self.fps_override:
                    shown_until = max(shown_until, time + frame.duration * time_base)
                yield TimedFrame(image, time)
            if previous is None:
                raise InputError(f"video '{self.path}' has no frames")
            self.end_time = self._end_time(container, stream, previous, shown_until, 1 / rate, announced)
        finally:
            container.close()

    def _end_time(
        self, container, stream, last: Fraction, shown_until: Fraction, step: Fraction, announced: int
    ) -> Fraction:
        """When the last frame stops being shown: the video track's end (MP4/MOV edit list), else the latest
        end of a frame's own duration (Matroska), else one nominal frame after the last. A video whose frames
        stop well before the length its header states was cut short: a warning says how far it got, and
        the last frame gets one nominal frame."""
        time_base = Fraction(stream.time_base)
        start = int(stream.start_time or 0) * time_base
        if stream.duration:
            stated = start + int(stream.duration) * time_base
        elif container.duration:
            stated = start + Fraction(int(container.duration), 1_000_000)  # every stream's longest
        else:
            stated = None
        if stated is not None and stated - last > max(5 * step, (stated - start) / 10):
            of_total = f" of the {announced} it announces" if announced > self.frames_read else ""
            logger.warning(
                "'%s' ends after %d frames%s (%.2f s) but its header says %.2f s (truncated?); using the %d read",
                self.path, self.frames_read, of_total, float(last - start + step), float(stated - start),
                self.frames_read,
            )  # fmt: skip
            return last + step
        if self.fps_override:
            return last + step
        if stream.duration and stated > last:
            return stated
        return shown_until if shown_until > last else last + step


def iter_frames(path: str | Path, backend: Backend = "auto") -> Iterator[np.ndarray]:
    """Stream every frame of a video file or frame folder as ``H x W x 3`` uint8 RGB (one at a time, upright;
    :class:`FrameReader` gives their times too)."""
    path = check_input_path(path)
    if path.is_dir():
        if not list_frame_files(path):
            raise InputError(f"no image frames ({', '.join(IMAGE_EXTENSIONS)}) in folder '{path}'")
        return (frame.image for frame in FrameReader(path))
    if backend == "decord":
        return _iter_decord(path)
    if backend not in ("auto", "pyav"):
        raise InputError(f"unknown video backend '{backend}' (choose auto, pyav or decord)")
    return (frame.image for frame in FrameReader(path))


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
    for index, frame in enumerate(iter_frames(path, backend="pyav")):
        for order in positions.get(index, ()):
            out[order] = frame
        if index >= last:
            break
    missing = [wanted[k] for k, f in enumerate(out) if f is None]
    if missing:
        raise InputError(f"frame index {missing[0]} out of range for '{path}'")
    return out  # type: ignore[return-value]
