"""Atomic video / frame-folder writing.

Frames go to a hidden temporary file (or folder) beside the destination, and only a clean ``close`` renames it
into place, so an interrupted or failed run never leaves a half-written video under the final name.
Videos are H.264 (libx264, yuv420p) through PyAV; odd frame sizes are padded by one replicated row/column
because yuv420p needs even sizes. The input's audio stream can be copied into the output.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError

VIDEO_OUTPUT_EXTENSIONS = (".mp4", ".mkv", ".mov")
# Audio codecs an mp4/mov muxer accepts as they are; anything else is re-encoded to AAC.
_MP4_AUDIO_COPY = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}


def _even_pad(frame: np.ndarray) -> np.ndarray:
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be H x W x 3 uint8 RGB arrays, got {frame.dtype} {frame.shape}")
    return frame


class VideoWriter:
    """Write RGB uint8 frames to ``path`` atomically.

    ``path`` ending in .mp4/.mkv/.mov gives an H.264 video at ``fps``; any other path is a folder of
    ``00000000.png``, ``00000001.png``, ... frames. Use as a context manager: leaving the block through an
    exception discards everything written. ``audio_from`` names a video whose first audio stream is copied.
    """

    def __init__(
        self,
        path: str | Path,
        fps: Fraction | float | int,
        audio_from: str | Path | None = None,
        crf: int = 16,
        preset: str = "medium",
        overwrite: bool = True,
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
        self.frames_written = 0
        self._size: tuple[int, int] | None = None
        self._container = None
        self._stream = None
        self._audio_in = None
        self._audio_out = None
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        if self.is_video:
            self._tmp = self.path.with_name(f".{self.path.stem}.{tag}.partial{self.path.suffix}")
        else:
            self._tmp = self.path.with_name(f".{self.path.name}.{tag}.partial")
            self._tmp.mkdir()

    # -- video -----------------------------------------------------------------------------------------
    def _open_video(self, width: int, height: int) -> None:
        import av

        self._container = av.open(str(self._tmp), mode="w")
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
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

    # -- public ----------------------------------------------------------------------------------------
    def write(self, frame: np.ndarray) -> None:
        """Append one ``H x W x 3`` uint8 RGB frame; every frame must have the size of the first."""
        if self._closed:
            raise RuntimeError("writer is closed")
        frame = _check_frame(frame)
        size = (frame.shape[1], frame.shape[0])
        if self._size is None:
            self._size = size
            if self.is_video:
                self._open_video(*size)
        elif size != self._size:
            raise ValueError(f"frame size {size} differs from the first frame's {self._size}")
        if self.is_video:
            import av

            video_frame = av.VideoFrame.from_ndarray(_even_pad(np.ascontiguousarray(frame)), format="rgb24")
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        else:
            name = self._tmp / f"{self.frames_written:08d}.png"
            if not cv2.imwrite(str(name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write '{name}'")
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file and move it to its final name; returns that path."""
        if self._closed:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise ValueError(f"no frames were written to '{self.path}'")
        if self.is_video:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
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
        """Discard everything written so far; the destination is left untouched."""
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
