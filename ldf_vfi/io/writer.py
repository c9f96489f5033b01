"""Atomic video / frame-folder writing.

Frames go to a hidden temporary file (or folder) beside the destination, and only a clean ``close`` renames it
into place, so an interrupted or failed run never leaves a half-written video under the final name.
Videos are H.264 (libx264, yuv420p) through PyAV; odd frame sizes are padded by one replicated row/column
because yuv420p needs even sizes. The input's audio stream can be copied into the output. Frames carry exact
presentation times (variable frame rate kept) and the last frame keeps its duration.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, first_line

VIDEO_OUTPUT_EXTENSIONS = (".mp4", ".mkv", ".mov")
MAX_VIDEO_SIDE = 16384  # libx264 refuses wider or taller frames
# Audio codecs an mp4/mov muxer accepts as they are; anything else is re-encoded to AAC.
_MP4_AUDIO_COPY = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}


def pad_to_multiple(frame: np.ndarray, multiple: int) -> np.ndarray:
    """``H x W x C`` padded at the bottom and right, by repeating the last row and column, to multiples of
    ``multiple`` (H.264 in yuv420p needs even sizes; the LDF VAE multiples of 8)."""
    pad_h, pad_w = -frame.shape[0] % multiple, -frame.shape[1] % multiple
    if not pad_h and not pad_w:
        return frame
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be H x W x 3 uint8 RGB arrays, got {frame.dtype} {frame.shape}")
    return frame


def missing_parents(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, outermost first."""
    missing = []
    for parent in Path(path).absolute().parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing[::-1]


CONCURRENT_MKDIR_TRIES = 5


def make_parents(path: Path) -> list[Path]:
    """Create the folders above ``path``; returns those this call created (outermost first), so a failed
    run can remove exactly them with :func:`remove_created`. On failure nothing it made is left."""
    created: list[Path] = []
    try:
        for attempt in range(CONCURRENT_MKDIR_TRIES):
            try:
                for folder in missing_parents(path):
                    try:
                        folder.mkdir()
                    except FileExistsError:  # made meanwhile by another process: not ours to remove
                        if not folder.is_dir():
                            raise
                        continue
                    created.append(folder)
                return created
            except FileNotFoundError:
                # Another process (several ranks share --output_dir) removed an empty parent we were about
                # to use, between our check and our mkdir: look again.
                if attempt == CONCURRENT_MKDIR_TRIES - 1:
                    raise
                remove_created(created)
                created = []
    except BaseException:
        remove_created(created)
        raise
    return created


def remove_created(folders: Sequence[Path]) -> None:
    """Remove folders made by :func:`make_parents`, innermost first, as long as they are empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:  # not empty (something else was written there) or already gone
            break


def check_output_path(path: Path, video: bool) -> None:
    """Make sure a result can be written at ``path`` (a video file when ``video``, else a folder of PNG
    frames) before any work: the path is not a folder where a file goes (or the reverse), no part of it is
    a file, and its folder can be created and written to: tried for real, then removed again, so read-only
    file systems and permissions are caught too. Raises :class:`InputError` with one line."""
    path = Path(path)
    if path.is_dir() and video:
        raise InputError(f"cannot write the video '{path}': a folder of that name exists")
    if path.exists() and not path.is_dir() and not video:
        raise InputError(f"cannot write PNG frames to '{path}': it is a file, not a folder")
    for ancestor in path.absolute().parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise InputError(f"cannot write '{path}': '{ancestor}' is a file, not a folder")
            break
    created: list[Path] = []
    try:
        created = make_parents(path)
        handle, probe = tempfile.mkstemp(prefix=".ldf_vfi_write_test.", dir=path.parent)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write '{path}': {first_line(exc)}") from None
    finally:
        remove_created(created)


def check_video_size(width: int, height: int) -> None:
    """H.264 (libx264) encodes at most :data:`MAX_VIDEO_SIDE` pixels per side."""
    if max(width, height) > MAX_VIDEO_SIDE:
        raise InputError(
            f"frames of {width}x{height} are too large for an H.264 video (at most {MAX_VIDEO_SIDE} pixels "
            "per side); write PNG frames instead (--output_format png)"
        )


class VideoWriter:
    """Write RGB uint8 frames to ``path`` atomically.

    ``path`` ending in .mp4/.mkv/.mov gives an H.264 video at ``fps``; any other path is a folder of
    ``00000000.png``, ``00000001.png``, ... frames. Use as a context manager: leaving the block through an
    exception discards everything written. ``audio_from`` names a video whose first audio stream is copied.

    Frames are shown at ``k / fps`` unless :meth:`write` gets each frame's ``time`` (seconds, exact
    fractions; variable frame rate is fine), stored in units of ``time_base`` (default ``1 / fps``; pick one in
    which every time is a whole number). :meth:`close` takes ``end_time``, when the last frame stops being
    shown, so the video keeps the duration of its source (default: one frame after the last).
    Nothing is created on disk before the first frame: the parent folders are made then, and removed again
    by :meth:`abort` if they were made by this writer.
    """

    def __init__(
        self,
        path: str | Path,
        fps: Fraction | float | int,
        audio_from: str | Path | None = None,
        crf: int = 16,
        preset: str = "medium",
        overwrite: bool = True,
        time_base: Fraction | None = None,
    ) -> None:
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        if self.fps <= 0:
            raise InputError(f"output fps must be positive, got {fps}")
        if self.path.exists() and not overwrite:
            raise InputError(f"output '{self.path}' exists (pass --overwrite to replace it)")
        self.is_video = self.path.suffix.lower() in VIDEO_OUTPUT_EXTENSIONS
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.crf = crf
        self.preset = preset
        self.time_base = Fraction(time_base) if time_base else 1 / self.fps
        self.frames_written = 0
        self._size: tuple[int, int] | None = None
        self._container = None
        self._stream = None
        self._audio_in = None
        self._audio_out = None
        self._closed = False
        self._created: list[Path] = []
        self._held_packet = None
        self._last_pts: int | None = None
        tag = uuid.uuid4().hex[:8]
        if self.is_video:
            self._tmp = self.path.with_name(f".{self.path.stem}.{tag}.partial{self.path.suffix}")
        else:
            self._tmp = self.path.with_name(f".{self.path.name}.{tag}.partial")

    # -- video -----------------------------------------------------------------------------------------
    def _open_video(self, width: int, height: int) -> None:
        import av

        check_video_size(width, height)
        self._container = av.open(str(self._tmp), mode="w")
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        stream.codec_context.time_base = self.time_base
        stream.time_base = self.time_base
        self._stream = stream
        if self.audio_from is not None:
            self._add_audio_stream()

    def _add_audio_stream(self) -> None:
        import av

        try:
            source = av.open(str(self.audio_from))
        except av.error.FFmpegError:
            return
        if not source.streams.audio:
            source.close()
            return
        audio = source.streams.audio[0]
        self._audio_in = source
        if audio.codec_context.name in _MP4_AUDIO_COPY:
            self._audio_out = self._container.add_stream_from_template(audio)
            self._audio_transcode = False
        else:
            self._audio_out = self._container.add_stream("aac", rate=audio.codec_context.sample_rate or 48000)
            self._audio_transcode = True

    def _mux_audio(self) -> None:
        if self._audio_in is None:
            return
        source, out = self._audio_in, self._audio_out
        audio = source.streams.audio[0]
        if self._audio_transcode:
            for frame in source.decode(audio):
                frame.pts = None
                for packet in out.encode(frame):
                    self._container.mux(packet)
            for packet in out.encode(None):
                self._container.mux(packet)
        else:
            for packet in source.demux(audio):
                if packet.dts is None:
                    continue
                packet.stream = out
                self._container.mux(packet)
        source.close()
        self._audio_in = None

    def _mux_video(self, packets) -> None:
        """Mux encoded packets one behind, so the last one can get its duration in :meth:`close`."""
        for packet in packets:
            if self._held_packet is not None:
                self._container.mux(self._held_packet)
            self._held_packet = packet

    def _finish_video(self, end_time: Fraction | None) -> None:
        self._mux_video(self._stream.encode(None))
        last = self._held_packet
        end = self._last_pts + 1 if end_time is None else max(self._to_pts(end_time), self._last_pts + 1)
        # MP4/MOV (edit list) and Matroska end the track at the last muxed packet's pts + duration; with
        # B-frames that packet is not always the last one shown, which is fine: only the end point counts.
        last.duration = end - last.pts
        self._container.mux(last)
        self._held_packet = None

    def _to_pts(self, time: Fraction) -> int:
        return round(Fraction(time) / self.time_base)

    # -- public ----------------------------------------------------------------------------------------
    def write(self, frame: np.ndarray, time: Fraction | None = None) -> None:
        """Append one ``H x W x 3`` uint8 RGB frame shown from ``time`` seconds (default ``k / fps``); every
        frame must have the size of the first, and times must increase."""
        if self._closed:
            raise RuntimeError("writer is closed")
        frame = _check_frame(frame)
        size = (frame.shape[1], frame.shape[0])
        if self._size is None:
            if self.is_video:
                check_video_size(*size)
            self._created = make_parents(self.path)
            self._size = size
            if self.is_video:
                self._open_video(*size)
            else:
                self._tmp.mkdir()
        elif size != self._size:
            raise ValueError(f"frame size {size} differs from the first frame's {self._size}")
        if self.is_video:
            import av

            pts = self._to_pts(self.frames_written / self.fps if time is None else time)
            if self._last_pts is not None and pts <= self._last_pts:
                raise ValueError(f"frame times must increase: frame {self.frames_written} at {time} s")
            self._last_pts = pts
            video_frame = av.VideoFrame.from_ndarray(
                pad_to_multiple(np.ascontiguousarray(frame), 2), format="rgb24"
            )
            video_frame.pts, video_frame.time_base = pts, self.time_base
            self._mux_video(self._stream.encode(video_frame))
        else:
            name = self._tmp / f"{self.frames_written:08d}.png"
            if not cv2.imwrite(str(name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write '{name}'")
        self.frames_written += 1

    def close(self, end_time: Fraction | None = None) -> Path:
        """Finish the file and move it to its final name; returns that path. ``end_time`` (seconds) is when
        the last frame stops being shown (default: one frame after it)."""
        if self._closed:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise ValueError(f"no frames were written to '{self.path}'")
        if self.is_video:
            self._finish_video(end_time)
            self._mux_audio()
            self._container.close()
            os.replace(self._tmp, self.path)
        else:
            if self.path.exists():
                shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
            os.replace(self._tmp, self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard everything written so far, and the folders this writer created; the destination is left
        untouched."""
        if self._closed:
            return
        self._closed = True
        for handle in (self._audio_in, self._container):
            if handle is not None:
                try:
                    handle.close()
                except Exception:  # closing a broken container must not hide the original error
                    pass
        if self._tmp.is_dir():
            shutil.rmtree(self._tmp, ignore_errors=True)
        elif self._tmp.exists():
            self._tmp.unlink()
        remove_created(self._created)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # a writer dropped without close() must not leave its temporary behind
        try:
            self.abort()
        except Exception:
            pass


def write_frames_png(
    folder: str | Path, frames: Iterable[np.ndarray], names: Sequence[str] | None = None
) -> list[Path]:
    """Write frames as PNG files into ``folder`` (created), named ``names`` or ``00000000.png``, ...

    Each file is written under a temporary name and renamed, so a crash never leaves a truncated PNG.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, frame in enumerate(frames):
        frame = _check_frame(frame)
        name = names[index] if names is not None else f"{index:08d}.png"
        target = folder / name
        if target.suffix.lower() != ".png":
            target = target.with_suffix(".png")
        tmp = target.with_name(f".{target.stem}.partial.png")
        if not cv2.imwrite(str(tmp), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write '{tmp}'")
        os.replace(tmp, target)
        written.append(target)
    return written
