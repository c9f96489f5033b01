"""A corpus of damaged and unusual inputs, made on the spot with PyAV and OpenCV (nothing downloaded).

Each maker takes a folder and returns the path to give ``--data``. The videos are tiny (a few 32-64 px
frames) so the whole corpus runs in CI in seconds, with both backends.
"""

from __future__ import annotations

import os
import socket
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ldf_vfi.data.synthetic import moving_shapes_video
from ldf_vfi.io import write_frames_png


def encode(
    path: Path,
    frames: list[np.ndarray],
    times: list[Fraction] | None = None,
    fps: Fraction = Fraction(25),
    time_base: Fraction | None = None,
    rotation: int | None = None,
    hflip: bool = False,
    options: dict | None = None,
) -> Path:
    """Encode ``frames`` (RGB) as H.264 with explicit presentation ``times`` (default ``k / fps``), an optional
    display rotation (degrees counter-clockwise, as PyAV's ``set_display_rotation``) and container
    ``options`` (e.g. ``movflags=faststart`` puts the index first, so a truncated file still opens)."""
    times = times or [k / Fraction(fps) for k in range(len(frames))]
    time_base = time_base or Fraction(1, 90000)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        stream.codec_context.time_base = time_base
        if rotation is not None or hflip:
            stream.set_display_rotation(rotation or 0, hflip=hflip)
        for frame, time in zip(frames, times):
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            picture.pts, picture.time_base = round(time / time_base), time_base
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def shapes(n: int, height: int = 48, width: int = 64, seed: int = 0) -> list[np.ndarray]:
    return moving_shapes_video(n, height, width, seed=seed)


def truncated_video(folder: Path, keep: float = 0.7) -> Path:
    """30 frames whose index is intact (faststart) but whose data stops at ``keep`` of the file."""
    full = encode(folder / "full.mp4", shapes(30), options={"movflags": "faststart"})
    path = folder / "truncated.mp4"
    data = full.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    full.unlink()
    return path


def truncated_mkv(folder: Path) -> Path:
    """Matroska stores no frame count: a cut file decodes cleanly, only its stated duration says more."""
    full = encode(folder / "full.mkv", shapes(30))
    path = folder / "truncated.mkv"
    data = full.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])
    full.unlink()
    return path


def zeroed_video(folder: Path) -> Path:
    """The first frame is intact, the rest of the data is zero bytes: nothing after frame 1 decodes."""
    full = encode(folder / "full.mp4", shapes(12), options={"movflags": "faststart"})
    data = bytearray(full.read_bytes())
    first_packet_end = len(data) - sum(p.size for p in list(av.open(str(full)).demux(video=0))[1:])
    data[first_packet_end:] = bytes(len(data) - first_packet_end)
    full.unlink()
    path = folder / "zeroed.mp4"
    path.write_bytes(bytes(data))
    return path


def rotated_video(folder: Path, rotation: int = 90, hflip: bool = False) -> tuple[Path, list[np.ndarray]]:
    """A phone-style video: what it should show (``shown``, 64x96 portrait) is stored turned back by
    ``rotation`` degrees, with a display matrix that turns it upright again."""
    shown = shapes(3, 96, 64, seed=5)
    stored = []
    for frame in shown:
        if hflip:
            frame = frame[:, ::-1]
        stored.append(np.ascontiguousarray(np.rot90(frame, -rotation // 90)))
    return encode(folder / f"phone_{rotation}.mp4", stored, rotation=rotation, hflip=hflip), shown


def variable_rate_video(folder: Path) -> tuple[Path, list[Fraction]]:
    """6 frames at irregular times (gaps of 1, 2, 1, 3, 1 thirtieths of a second), as phones record."""
    times = [Fraction(t, 30) for t in (0, 1, 3, 4, 7, 8)]
    return encode(folder / "vfr.mp4", shapes(6), times=times), times


def same_stem_inputs(folder: Path) -> Path:
    """``clip.mp4`` and ``clip.mov`` (same stem) beside ``other.mp4``, all in one folder."""
    batch = folder / "batch"
    encode(batch / "clip.mp4", shapes(3, seed=1))
    encode(batch / "clip.mov", shapes(3, seed=2))
    encode(batch / "other.mp4", shapes(3, seed=3))
    return batch


def named_pipe(folder: Path, name: str = "pipe.mp4") -> Path:
    path = folder / name
    os.mkfifo(path)
    return path


def unix_socket(folder: Path) -> tuple[Path, socket.socket]:
    """A socket file; the caller closes the returned socket."""
    path = folder / "sock.mp4"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    return path, server


def frame_folder(folder: Path, frames: list[np.ndarray], name: str = "frames") -> Path:
    return write_frames_png(folder / name, frames)[0].parent


def frames_with_corrupt_image(folder: Path) -> Path:
    """Five frames, the fourth a truncated PNG."""
    path = frame_folder(folder, shapes(5))
    fourth = sorted(path.iterdir())[3]
    fourth.write_bytes(fourth.read_bytes()[:60])
    return path


def frames_of_mixed_sizes(folder: Path) -> Path:
    path = frame_folder(folder, shapes(3, 48, 64))
    cv2.imwrite(str(path / "00000003.png"), np.zeros((40, 64, 3), np.uint8))
    return path


def frames_beside_a_video(folder: Path) -> Path:
    path = frame_folder(folder, shapes(3))
    encode(path / "also_here.mp4", shapes(3))
    return path
