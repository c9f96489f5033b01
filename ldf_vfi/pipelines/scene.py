"""Scene-cut detection, one detector for every backend.

Two neighbouring frames are *different shots* when the second cannot be explained as the first after motion,
or when the colours of the picture change wholesale. The detector measures both on copies resized so the
longer side is :data:`WORKING_SIDE` pixels (downscaled or upscaled), so its behaviour does not depend on the
frame size: a 16x16 clip and a 4K clip of the same motion give the same score.

- **Structure**: each frame is turned to grey, blurred a little and normalised to zero mean and unit contrast
  (a flash or a fade changes brightness, not content). The second frame is warped onto the first by the best
  of two motion models, dense optical flow (OpenCV DIS) and one global shift (windowed phase correlation,
  which holds for fast pans of any texture), in both directions. What is left is compared with the
  difference two *unrelated* pictures with these grey-level distributions would have (computed exactly from
  their histograms): motion leaves only occluded and newly exposed areas, a cut leaves about as much as
  unrelated pictures.
- **Colour**: the distance between the two frames' chroma histograms (CIELAB a*, b*; brightness left out),
  which catches a cut between two shots of the same layout but different colours.

``scene_cut_score`` maps both to one number in [0, 1]; :data:`DEFAULT_SCENE_CUT_THRESHOLD` (0.5) is where
either measure reaches its cut level. Frames with fewer than :data:`MIN_PIXELS` pixels carry too little
evidence to tell motion from a cut and always score 0.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

DEFAULT_SCENE_CUT_THRESHOLD = 0.5
WORKING_SIDE = 128
MIN_PIXELS = 256
# Cut levels of the two measures, where the score reaches 0.5. Measured on the tests' corpus: motion of any
# kind and size (synthetic shapes from 16x16 to 4K, the demo clip, pans, zooms, flashes, fades) stays below
# 0.40 structure and 0.45 colour; hard cuts between different shots score 0.47-1.0 structure, and cuts between
# shots of the same layout in other colours 1.0 colour.
_STRUCTURE_AT_CUT = 0.45
_COLOUR_AT_CUT = 0.75
_CONTRAST_FLOOR = 4.0  # grey levels: flatter frames are not stretched (no noise amplification)
_RESIDUAL_FLOOR = 4.0  # grey levels added to the unrelated-pictures difference, so near-flat pairs score ~0

_flow = None


def _dis() -> cv2.DISOpticalFlow:
    global _flow
    if _flow is None:
        _flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return _flow


def _working_copy(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    scale = WORKING_SIDE / max(height, width)
    size = (max(16, round(width * scale)), max(16, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(frame), size, interpolation=interpolation)


def _normalised_grey(small: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey = cv2.GaussianBlur(grey, (0, 0), 1.0)
    grey = (grey - grey.mean()) / max(float(grey.std()), _CONTRAST_FLOOR) * 32.0 + 128.0
    return np.clip(grey + 0.5, 0, 255).astype(np.uint8)


def _unrelated_difference(grey0: np.ndarray, grey1: np.ndarray) -> float:
    """Mean absolute difference of two independent pixels drawn from each image's grey-level histogram."""
    cdf0 = np.cumsum(np.bincount(grey0.ravel(), minlength=256)) / grey0.size
    cdf1 = np.cumsum(np.bincount(grey1.ravel(), minlength=256)) / grey1.size
    return float(np.sum(cdf0 * (1 - cdf1) + cdf1 * (1 - cdf0)))


def _warp(image: np.ndarray, flow_x: np.ndarray, flow_y: np.ndarray) -> np.ndarray:
    height, width = image.shape
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(
        image.astype(np.float32), xs + flow_x, ys + flow_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _motion_residual(grey0: np.ndarray, grey1: np.ndarray, window: np.ndarray) -> float:
    """Mean absolute difference left after warping ``grey1`` onto ``grey0`` with the better motion model."""
    target = grey0.astype(np.float32)
    flow = _dis().calc(grey0, grey1, None)
    dense = float(np.abs(target - _warp(grey1, flow[..., 0], flow[..., 1])).mean())
    # phaseCorrelate multiplies its inputs by the window in place: give it copies
    (shift_x, shift_y), _ = cv2.phaseCorrelate(target.copy(), grey1.astype(np.float32), window)
    shape = grey0.shape
    shifted = _warp(grey1, np.full(shape, shift_x, np.float32), np.full(shape, shift_y, np.float32))
    return min(dense, float(np.abs(target - shifted).mean()))


def _chroma_histogram(small: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)
    hist = cv2.calcHist([lab], [1, 2], None, [16, 16], [0, 256, 0, 256]).ravel()
    return hist / max(float(hist.sum()), 1.0)


def scene_cut_measures(frame0: np.ndarray, frame1: np.ndarray) -> tuple[float, float]:
    """The two raw measures ``(structure, colour)`` (see the module docstring); for tuning and tests."""
    small0, small1 = _working_copy(frame0), _working_copy(frame1)
    grey0, grey1 = _normalised_grey(small0), _normalised_grey(small1)
    window = cv2.createHanningWindow(grey0.shape[::-1], cv2.CV_32F)
    residual = 0.5 * (_motion_residual(grey0, grey1, window) + _motion_residual(grey1, grey0, window))
    structure = residual / (_unrelated_difference(grey0, grey1) + _RESIDUAL_FLOOR)
    overlap = float(np.sum(np.sqrt(_chroma_histogram(small0) * _chroma_histogram(small1))))
    colour = float(np.sqrt(max(0.0, 1.0 - overlap)))
    return structure, colour


def scene_cut_score(frame0: np.ndarray, frame1: np.ndarray) -> float:
    """How much two neighbouring ``H x W x 3`` uint8 RGB frames look like different shots, in [0, 1].

    Above :data:`DEFAULT_SCENE_CUT_THRESHOLD` (0.5) they are treated as a cut. Motion of any size, flashes and
    fades stay well below; frames under :data:`MIN_PIXELS` pixels score 0.
    """
    if frame0.shape != frame1.shape:
        raise ValueError(f"frame sizes differ: {frame0.shape} vs {frame1.shape}")
    if frame0.shape[0] * frame0.shape[1] < MIN_PIXELS:
        return 0.0
    structure, colour = scene_cut_measures(frame0, frame1)
    return float(min(1.0, 0.5 * max(structure / _STRUCTURE_AT_CUT, colour / _COLOUR_AT_CUT)))


def is_scene_cut(
    frame0: np.ndarray, frame1: np.ndarray, threshold: float = DEFAULT_SCENE_CUT_THRESHOLD
) -> bool:
    """Whether ``frame1`` starts a new shot after ``frame0``."""
    return scene_cut_score(frame0, frame1) > threshold


def find_scene_cuts(
    frames: Iterable[np.ndarray], threshold: float = DEFAULT_SCENE_CUT_THRESHOLD
) -> list[int]:
    """Indices ``k`` where frames ``k`` and ``k + 1`` of a sequence are different shots."""
    cuts = []
    previous = None
    for index, frame in enumerate(frames):
        if previous is not None and is_scene_cut(previous, frame, threshold):
            cuts.append(index - 1)
        previous = frame
    return cuts
