"""Deterministic synthetic videos with known motion, for tests, demos and tiny training runs.

Textured objects translate, rotate and pass in front of each other over a textured, slowly panning
background. Positions are continuous functions of time, so a sequence rendered at ``sf`` times the frame
rate holds the exact ground truth of every frame that interpolation should recreate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Motion = Literal["translate", "rotate", "occlude", "mixed"]


def smooth_texture(height: int, width: int, rng: np.random.Generator, scales=(4, 16, 64)) -> np.ndarray:
    """An RGB uint8 texture: a sum of upsampled noise octaves, so flow methods have structure to match."""
    image = np.zeros((height, width, 3), np.float32)
    for weight, cell in zip((0.5, 0.3, 0.2), scales):
        h, w = max(2, height // cell + 2), max(2, width // cell + 2)
        noise = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
        image += weight * cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6)
    return np.clip(image * 255.0, 0, 255).astype(np.uint8)


@dataclass
class _Sprite:
    texture: np.ndarray  # (s, s, 3) uint8
    alpha: np.ndarray  # (s, s) float32 in [0, 1]
    start: np.ndarray  # (2,) centre at time 0, pixels (x, y)
    velocity: np.ndarray  # (2,) pixels per unit time
    angular_velocity: float  # degrees per unit time


def _make_sprite(size: int, rng: np.random.Generator, shape: str) -> tuple[np.ndarray, np.ndarray]:
    texture = smooth_texture(size, size, rng, scales=(3, 6, 12))
    alpha = np.zeros((size, size), np.float32)
    if shape == "ellipse":
        cv2.ellipse(
            alpha, (size // 2, size // 2), (size // 2 - 1, size // 3), 0, 0, 360, 1.0, -1, cv2.LINE_AA
        )
    else:
        margin = size // 6
        alpha[margin : size - margin, margin : size - margin] = 1.0
    return texture, alpha


class MovingShapes:
    """Renderer of one synthetic scene; ``frame(time)`` is the image at any real-valued time.

    ``motion`` picks what moves: ``translate`` (objects slide at different speeds), ``rotate`` (objects spin in
    place), ``occlude`` (two objects cross, one hiding the other), ``mixed`` (all of it plus a panning
    background). ``speed`` scales every motion (pixels per time unit at 64 px frame height).
    """

    def __init__(
        self,
        height: int = 96,
        width: int = 128,
        motion: Motion = "mixed",
        seed: int = 0,
        speed: float = 1.0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.height, self.width = height, width
        self.motion = motion
        unit = speed * height / 64.0
        pad = int(np.ceil(abs(unit) * 400)) + 8
        self.background = smooth_texture(height + 2 * pad, width + 2 * pad, rng)
        self.pad = pad
        self.pan = np.array([0.6, 0.3]) * unit if motion == "mixed" else np.zeros(2)
        size = max(8, height // 2 if motion == "rotate" else height // 3)
        self.sprites: list[_Sprite] = []
        if motion == "translate":
            specs = [((0.3, 0.35), (2.0, 0.8), 0.0), ((0.65, 0.7), (-1.2, -0.5), 0.0)]
        elif motion == "rotate":
            specs = [((0.27, 0.5), (0.0, 0.0), 6.0), ((0.73, 0.5), (0.0, 0.0), -5.0)]
        elif motion == "occlude":
            specs = [((0.25, 0.5), (2.2, 0.0), 0.0), ((0.75, 0.5), (-2.2, 0.0), 0.0)]
        elif motion == "mixed":
            specs = [
                ((0.25, 0.4), (2.0, 0.4), 3.0),
                ((0.75, 0.6), (-1.6, -0.2), -2.0),
                ((0.5, 0.25), (0.3, 1.0), 0.0),
            ]
        else:
            raise ValueError(f"unknown motion '{motion}' (choose translate, rotate, occlude or mixed)")
        for index, (centre, velocity, spin) in enumerate(specs):
            texture, alpha = _make_sprite(size, rng, "ellipse" if index % 2 else "square")
            self.sprites.append(
                _Sprite(
                    texture=texture,
                    alpha=alpha,
                    start=np.array([centre[0] * width, centre[1] * height]),
                    velocity=np.array(velocity) * unit,
                    angular_velocity=spin * speed,
                )
            )

    def frame(self, time: float) -> np.ndarray:
        """The ``H x W x 3`` uint8 RGB frame at ``time`` (one time unit = one frame of the base rate)."""
        shift = self.pan * time
        matrix = np.float32([[1, 0, self.pad + shift[0]], [0, 1, self.pad + shift[1]]])
        canvas = cv2.warpAffine(
            self.background,
            matrix,
            (self.width, self.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        ).astype(np.float32)
        for sprite in self.sprites:
            size = sprite.texture.shape[0]
            centre = sprite.start + sprite.velocity * time
            rotation = cv2.getRotationMatrix2D((size / 2.0, size / 2.0), sprite.angular_velocity * time, 1.0)
            rotation[:, 2] += centre - size / 2.0
            texture = cv2.warpAffine(
                sprite.texture, rotation, (self.width, self.height), flags=cv2.INTER_LINEAR
            ).astype(np.float32)
            alpha = cv2.warpAffine(sprite.alpha, rotation, (self.width, self.height), flags=cv2.INTER_LINEAR)
            canvas = canvas * (1.0 - alpha[..., None]) + texture * alpha[..., None]
        return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)

    def frames(self, num_frames: int, step: float = 1.0, start: float = 0.0) -> list[np.ndarray]:
        """``num_frames`` frames at times ``start, start + step, ...``."""
        return [self.frame(start + index * step) for index in range(num_frames)]


def moving_shapes_video(
    num_frames: int,
    height: int = 96,
    width: int = 128,
    motion: Motion = "mixed",
    seed: int = 0,
    speed: float = 1.0,
) -> list[np.ndarray]:
    """Shortcut: ``num_frames`` consecutive frames of :class:`MovingShapes`."""
    return MovingShapes(height, width, motion, seed, speed).frames(num_frames)
