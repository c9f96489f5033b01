"""One PNG per clip for people who would rather look than read tables.

Each row is one scored frame (the middle of the first, a middle and the last block, where interpolation is
hardest) and shows, left to right: the nearest input frame (what frame repetition would show), the
prediction, the ground truth, and the absolute error (mean over RGB, x4, inferno colour map) with the
frame's PSNR.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io import write_frames_png

TILE_WIDTH = 384
MIN_TILE_WIDTH = 256  # small frames are enlarged (nearest neighbour) so labels and details stay legible
LABEL_HEIGHT = 22
ERROR_GAIN = 4.0


@dataclass
class SheetRow:
    index: int
    input_index: int
    input_frame: np.ndarray
    prediction: np.ndarray
    ground_truth: np.ndarray


def error_map(prediction: np.ndarray, ground_truth: np.ndarray, gain: float = ERROR_GAIN) -> np.ndarray:
    """``|pred - gt|`` averaged over RGB, times ``gain``, as an RGB inferno image."""
    diff = np.abs(prediction.astype(np.float32) - ground_truth.astype(np.float32)).mean(axis=2)
    grey = np.clip(diff * gain, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def _frame_psnr(prediction: np.ndarray, ground_truth: np.ndarray) -> float:
    mse = float(np.mean((prediction.astype(np.float64) - ground_truth.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _tile(image: np.ndarray, label: str, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    height = max(1, round(h * width / w))
    interpolation = cv2.INTER_AREA if width < w else cv2.INTER_NEAREST
    body = cv2.resize(image, (width, height), interpolation=interpolation)
    strip = np.full((LABEL_HEIGHT, width, 3), 24, np.uint8)
    cv2.putText(
        strip, label, (4, LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (235, 235, 235), 1, cv2.LINE_AA
    )
    return np.concatenate([strip, body], axis=0)


def render_contact_sheet(title: str, rows: list[SheetRow], tile_width: int = TILE_WIDTH) -> np.ndarray:
    """The sheet as an ``H x W x 3`` uint8 RGB image."""
    width = max(min(tile_width, rows[0].prediction.shape[1]), MIN_TILE_WIDTH) if rows else tile_width
    lines = []
    for row in rows:
        tiles = [
            _tile(row.input_frame, f"input (frame {row.input_index})", width),
            _tile(row.prediction, f"prediction (frame {row.index})", width),
            _tile(row.ground_truth, f"ground truth (frame {row.index})", width),
            _tile(
                error_map(row.prediction, row.ground_truth),
                f"|error| x{ERROR_GAIN:g}, {_frame_psnr(row.prediction, row.ground_truth):.2f} dB",
                width,
            ),
        ]
        lines.append(np.concatenate(tiles, axis=1))
    sheet_width = lines[0].shape[1] if lines else 4 * width
    header = np.full((LABEL_HEIGHT + 4, sheet_width, 3), 0, np.uint8)
    cv2.putText(
        header, title, (4, LABEL_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA
    )
    return np.concatenate([header, *lines], axis=0)


def save_contact_sheet(path: Path, title: str, rows: list[SheetRow]) -> Path:
    """Render and write atomically to ``path`` (a ``.png``)."""
    path = Path(path)
    return write_frames_png(path.parent, [render_contact_sheet(title, rows)], names=[path.name])[0]


__all__ = ["SheetRow", "error_map", "render_contact_sheet", "save_contact_sheet"]
