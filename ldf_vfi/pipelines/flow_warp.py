"""Pair-level interpolation of the ``flow`` backend: the frames between two neighbours from their flows.

Where the error of the first version came from (measured on real clips, ``benchmarks/flow_backend.py``):
the intermediate flow. Approximating the flow from time ``t`` back to each frame by blending the two
pair flows is wrong at every motion boundary (doubled limbs), and DIS flow spills a moving object's motion
onto the background around it. Given the flow measured from the true middle frame the same warping was
8 dB better on a walker over a panning street. Bilinear resampling softened static detail (LPIPS).

So, for each pair:

1. DIS optical flow both ways, at a working resolution (half the frame, capped by ``flow_max_side``),
   starting from the previous pair's flows when the pairs are consecutive.
2. The 0->1 motion of whatever is at each pixel at time ``t`` comes from *forward* splatting both frames'
   pixels to ``t`` along their own flows (softmax splatting, Niklaus & Liu, CVPR 2020): where several land
   on one pixel the one whose flow is photometrically and forward-backward consistent wins (the occluder,
   not the background it covers). Holes are filled from coarser levels (push-pull).
3. Both frames are backward-warped with that motion with a bicubic kernel and blended by time, a frame's
   weight falling where its content is hidden in the other frame (forward-backward check).
4. Where the two frames agree exactly around a pixel (static content) the plain temporal blend is used:
   untouched by any resampling.

Memory per pair: the two frames, two flows and a few maps at the working resolution.
"""

from __future__ import annotations

import weakref

import cv2
import numpy as np

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
SPARSE_PATCH_STRIDE = 4  # DIS patch stride for a pair that serves a single new frame
MIN_HALVED_SIDE = 48  # below this the flow is estimated at the full (capped) resolution
SPLAT_SHARPNESS = 0.05  # softmax splatting: weight exp(-SPLAT_SHARPNESS * matching cost in grey levels)
STATIC_TOLERANCE = 2  # grey levels two frames may differ by, everywhere in a 5x5 patch, to count as static


class FlowEstimator:
    """DIS optical flow both ways between two frames, at a working resolution.

    DIS's ``medium`` preset already matches patches at half resolution and upsamples; here the frames are
    halved first (and DIS's finest scale lowered by one), so everything that follows also runs on a quarter
    of the pixels; only the final warp touches the full frame.

    A pair that serves a single new frame (2x) gets a cheaper flow: patches on a sparser grid (stride 4
    instead of the preset's) and no variational refinement. Its flow is then most of the cost of that
    frame, and this saves about half of it for 0.1-0.3 dB; pairs that serve several frames share the cost
    and keep the preset (the refinement is worth +0.15-0.35 dB at 8x on the benchmark clips).

    Videos are temporally coherent: when a pair starts at the frame where the previous pair ended (the same
    array), DIS starts from the previous pair's flows instead of zero, which lets it follow motions larger
    than its coarsest scale reaches (+0.2-0.65 dB on the benchmark clips). Any other pair (a new video, the
    pair after a scene cut, which is never estimated) starts from zero.
    """

    def __init__(self, preset: str = "medium", max_side: int = 1024, temporal_init: bool = True) -> None:
        self.preset = preset
        self.max_side = max_side
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        self._finest = self._dis.getFinestScale()
        self._stride = self._dis.getPatchStride()
        self._refinement = self._dis.getVariationalRefinementIterations()
        self.temporal_init = temporal_init
        # (frame 1 of the last pair, its flows): the next pair starts from them when it begins at that frame
        self._previous: tuple[weakref.ref, np.ndarray, np.ndarray] | None = None

    def work_size(self, width: int, height: int) -> tuple[tuple[int, int], bool]:
        """Size at which flow is estimated for ``width x height`` frames, and whether it was halved."""
        scale = min(1.0, self.max_side / max(height, width))
        halved = self._finest > 0 and min(width, height) * scale >= 2 * MIN_HALVED_SIDE
        if halved:
            scale /= 2
        # DIS fails on images under ~12 px a side and on thin strips (its coarsest pyramid level would have
        # no rows): flow is estimated on at least 16 px and 1/16 of the longer side (stretched, not padded)
        shortest = max(16, round(max(width, height) * scale) // 16)
        return (max(shortest, round(width * scale)), max(shortest, round(height * scale))), halved

    def flows(
        self,
        gray0: np.ndarray,
        gray1: np.ndarray,
        halved: bool,
        new_frames: int = 2,
        frames: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flows 0->1 and 1->0 between two grey images already at the working size, for a pair that
        serves ``new_frames`` intermediate frames. ``frames``, the pair's original frames, lets a pair that
        starts where the last one ended begin from the last pair's flows."""
        self._dis.setFinestScale(self._finest - 1 if halved else self._finest)
        single = new_frames < 2
        self._dis.setPatchStride(max(self._stride, SPARSE_PATCH_STRIDE) if single else self._stride)
        self._dis.setVariationalRefinementIterations(0 if single else self._refinement)
        # A cold start passes zeros, not None: after a call with an initial flow, OpenCV's DIS given None
        # does not start from zero again (measured), and results must not depend on earlier videos.
        shape = (*gray0.shape[:2], 2)
        init01, init10 = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        if frames is not None and self.temporal_init and self._previous is not None:
            last, flow01, flow10 = self._previous
            if last() is frames[0] and flow01.shape == shape:
                init01, init10 = flow01.copy(), flow10.copy()
        flow01 = self._dis.calc(gray0, gray1, init01)
        flow10 = self._dis.calc(gray1, gray0, init10)
        self._previous = (weakref.ref(frames[1]), flow01, flow10) if frames is not None else None
        return flow01, flow10


class PairWarper:
    """Everything about one frame pair that does not depend on ``t``, reused for each intermediate time.

    Args:
        frame0, frame1: ``H x W x 3`` uint8 neighbours.
        estimator: the :class:`FlowEstimator` (DIS settings, working size, the previous pair's flows).
        static_passthrough: use the plain temporal blend where the frames agree (see the module docstring).
        new_frames: how many intermediate frames will be asked of this pair (sets the flow effort).
    """

    def __init__(
        self,
        frame0: np.ndarray,
        frame1: np.ndarray,
        estimator: FlowEstimator,
        static_passthrough: bool = True,
        new_frames: int = 2,
    ) -> None:
        height, width = frame0.shape[:2]
        self.size = (width, height)
        work, halved = estimator.work_size(width, height)
        self.work = work
        gray0 = _grey(frame0, work)
        gray1 = _grey(frame1, work)
        self.flow01, self.flow10 = estimator.flows(gray0, gray1, halved, new_frames, (frame0, frame1))
        self.frame0, self.frame1 = frame0, frame1
        self.scale = np.array([width / work[0], height / work[1]], np.float32)
        self._grid = _grid(*work)
        self._full_grid = _grid(width, height)
        gray0 = gray0.astype(np.float32)
        gray1 = gray1.astype(np.float32)
        # How far each frame's pixels are from being explained by their flow: brightness constancy plus the
        # forward-backward mismatch. Low cost = trustworthy motion = wins where splats collide.
        back01 = self._remap(self.flow10, self.flow01)
        back10 = self._remap(self.flow01, self.flow10)
        mismatch0 = np.square(self.flow01 + back01).sum(-1)
        mismatch1 = np.square(self.flow10 + back10).sum(-1)
        cost0 = _blur(np.abs(gray0 - self._remap(gray1, self.flow01))) + mismatch0
        cost1 = _blur(np.abs(gray1 - self._remap(gray0, self.flow10))) + mismatch1
        floor = min(cost0.min(), cost1.min())
        self._trust0 = np.exp(-SPLAT_SHARPNESS * np.minimum(cost0 - floor, 400.0))
        self._trust1 = np.exp(-SPLAT_SHARPNESS * np.minimum(cost1 - floor, 400.0))
        # Occlusion maps in each frame's own coordinates: 1 where that frame's content is absent from the
        # other frame (the forward flow and the backward flow at its landing point do not cancel).
        self.only_in_0 = self._occlusion(mismatch0, self.flow01, back01)
        self.only_in_1 = self._occlusion(mismatch1, self.flow10, back10)
        self._static = None
        if static_passthrough:
            difference = cv2.absdiff(frame0, frame1).max(-1)
            self._static = cv2.dilate(difference, np.ones((5, 5), np.uint8)) <= STATIC_TOLERANCE
            self._moving = (~self._static).astype(np.float32)[..., None]

    # -- per pair --------------------------------------------------------------------------------------
    def _remap(
        self, image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR
    ) -> np.ndarray:
        return cv2.remap(image, self._grid + flow, None, interpolation, borderMode=cv2.BORDER_REPLICATE)

    def _inside(self, flow: np.ndarray) -> np.ndarray:
        positions = self._grid + flow
        width, height = self.work
        inside = (
            (positions[..., 0] >= -0.5)
            & (positions[..., 0] <= width - 0.5)
            & (positions[..., 1] >= -0.5)
            & (positions[..., 1] <= height - 0.5)
        )
        return inside.astype(np.float32)

    def _occlusion(
        self, mismatch: np.ndarray, forward: np.ndarray, backward_at_target: np.ndarray
    ) -> np.ndarray:
        tolerance = 0.01 * (np.square(forward).sum(-1) + np.square(backward_at_target).sum(-1)) + 0.5
        occluded = np.clip((mismatch - tolerance) / tolerance, 0.0, 1.0)
        occluded = np.maximum(occluded, 1.0 - self._inside(forward))
        return _blur(occluded)

    # -- per time --------------------------------------------------------------------------------------
    def motion_at(self, t: float) -> np.ndarray:
        """The 0->1 motion (working-resolution pixels) of the content at each working pixel at time ``t``."""
        width, height = self.work
        # Frame 0's pixels travel t along flow01 carrying motion flow01, frame 1's travel 1 - t along flow10
        # carrying -flow10; each weighted by its time closeness and its consistency.
        positions = np.concatenate([self._grid + t * self.flow01, self._grid + (1.0 - t) * self.flow10])
        motion = np.concatenate([self.flow01, -self.flow10])
        weight = np.concatenate([(1.0 - t) * self._trust0, t * self._trust1])
        sums = _splat(positions.reshape(-1, 2), motion.reshape(-1, 2), weight.ravel(), width, height)
        return _push_pull(np.dstack([sums[0], sums[1]]), sums[2])

    def at(self, t: float) -> np.ndarray:
        """The frame at time ``t`` in (0, 1)."""
        motion = self.motion_at(t)
        flow_t0, flow_t1 = -t * motion, (1.0 - t) * motion
        # Content seen only in frame 0 (occluded in 1) must come from frame 0, and vice versa.
        weight0 = (1.0 - t) * (1.0 - self._remap(self.only_in_1, flow_t1)) * self._inside(flow_t0)
        weight1 = t * (1.0 - self._remap(self.only_in_0, flow_t0)) * self._inside(flow_t1)
        share1 = (weight1 + 1e-4 * t) / (weight0 + weight1 + 1e-4)  # frame 1's part of the blend
        if self.work != self.size:
            motion = cv2.resize(motion, self.size, interpolation=cv2.INTER_LINEAR) * self.scale
            share1 = cv2.resize(share1, self.size, interpolation=cv2.INTER_LINEAR)
        if self._static is not None:
            # Zero motion samples each frame exactly at its own pixels: the plain temporal blend.
            motion *= self._moving
            np.copyto(share1, np.float32(t), where=self._static)
        warped0 = self._warp_full(self.frame0, motion, -t)
        warped1 = self._warp_full(self.frame1, motion, 1.0 - t)
        return cv2.blendLinear(warped0, warped1, 1.0 - share1, share1)

    def _warp_full(self, frame: np.ndarray, motion: np.ndarray, fraction: float) -> np.ndarray:
        positions = self._full_grid + fraction * motion
        return cv2.remap(frame, positions, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def _grey(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if (grey.shape[1], grey.shape[0]) != size:
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey


def _grid(width: int, height: int) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.stack([xs, ys], axis=-1)


def _blur(image: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(image, (5, 5), 1.0)


def _splat(
    positions: np.ndarray, motion: np.ndarray, weight: np.ndarray, width: int, height: int
) -> np.ndarray:
    """``(3, height, width)`` sums of ``weight * (motion_x, motion_y, 1)`` of points dropped on the pixel
    nearest to their ``positions`` (points outside the image are dropped)."""
    x = np.rint(positions[:, 0]).astype(np.int64)
    y = np.rint(positions[:, 1]).astype(np.int64)
    pixels = width * height
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    index = np.where(outside, pixels, y * width + x)  # one spare bin collects the outside
    weight = weight.astype(np.float64)
    sums = [
        np.bincount(index, weight * motion[:, 0], minlength=pixels + 1),
        np.bincount(index, weight * motion[:, 1], minlength=pixels + 1),
        np.bincount(index, weight, minlength=pixels + 1),
    ]
    return np.stack(sums)[:, :pixels].reshape(3, height, width).astype(np.float32)


def _push_pull(numerator: np.ndarray, weight: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """``numerator / weight`` where pixels received enough weight; holes filled from coarser levels."""
    levels = [(numerator, weight)]
    while min(levels[-1][1].shape) > 2 and (levels[-1][1] < eps).any():
        n, w = levels[-1]
        levels.append((cv2.pyrDown(n) * 4.0, cv2.pyrDown(w) * 4.0))
    n, w = levels[-1]
    value = n / np.maximum(w, eps)[..., None]
    for n, w in reversed(levels[:-1]):
        coarse = cv2.resize(value, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR)
        confidence = np.clip(w / eps, 0.0, 1.0)[..., None]
        value = confidence * (n / np.maximum(w, eps)[..., None]) + (1.0 - confidence) * coarse
    return value
