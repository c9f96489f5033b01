"""Video and frame-folder input/output: probing, streaming reads, atomic H.264/PNG writes with audio copy."""

from .reader import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    FrameReader,
    TimedFrame,
    VideoInfo,
    check_input_path,
    iter_frames,
    list_frame_files,
    list_inputs,
    natural_sort_key,
    probe,
    read_frame_rgb,
    read_frames,
)
from .writer import VideoWriter, write_frames_png

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "FrameReader",
    "TimedFrame",
    "VideoInfo",
    "VideoWriter",
    "check_input_path",
    "iter_frames",
    "list_frame_files",
    "list_inputs",
    "natural_sort_key",
    "probe",
    "read_frame_rgb",
    "read_frames",
    "write_frames_png",
]
