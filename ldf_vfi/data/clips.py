"""Training clips as the reference draws them (REFERENCE_SPEC 7.1), made reproducible.

One sample = ``num_frames`` consecutive frames from a random start of an indexed video, brought to a
``pn`` resolution (bicubic upscaling only when the frame is too small under ``--no_bicubic``), randomly
cropped, flipped/transposed by probability, and temporally degraded: a scale factor ``sf`` from the
``--temporal_sf`` list and a phase keep every ``sf``-th frame; the low-frame-rate clip is nearest-upsampled
back to ``num_frames`` (see :mod:`ldf_vfi.data.temporal`).

What differs from the reference on purpose:

* Reproducibility. Every random choice of a sample comes from one generator seeded with
  ``(seed, position)``, where ``position`` is the sample's place in the infinite training stream
  (:class:`ClipOrder`). A sample is therefore the same whatever the number of DataLoader workers, and a run
  resumed at position ``n`` sees exactly the samples a straight run would (the reference drew crops with the
  workers' unseeded torch RNG and the degradation with Python's unseeded ``random``).
* Bicubic results are rounded and clamped to [0, 255]; the reference cast them to uint8, which wraps the
  overshoot of bright edges to black (REFERENCE_SPEC 11, bug 15).
* The sample does not carry a second (LQ) copy of the clip: ``lq_source[k]`` names the frame that fills slot
  ``k``, so the LQ clip is ``gt[:, lq_source]``, gathered on the device (half the bytes through the workers).

Shapes: ``gt`` is ``(3, T, H, W)`` uint8 (channels first, the VAE's video layout), ``mask`` ``(T,)`` bool,
``lq_source`` ``(T,)`` int64; a DataLoader batch adds a leading ``B``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import InputError, LDFVFIError
from ..io import read_frames
from ..processes import clean_context
from .lavib import VideoRecord
from .temporal import nearest_fill_slots, sample_degradation

__all__ = [
    "PN_RESOLUTIONS",
    "ClipDataset",
    "ClipOptions",
    "ClipOrder",
    "crop_frames",
    "parse_pn",
    "resize_frames",
    "resize_target",
    "sample_seed",
]

logger = logging.getLogger("ldf_vfi.data")

PN_RESOLUTIONS: dict[str, tuple[tuple[int, int], ...]] = {
    "0.06M": ((256, 256),),
    "0.25M": ((512, 512),),
    "1M": ((1024, 1024), (720, 1280), (1280, 720)),
    "4M": ((2048, 2048), (1280, 2560), (2560, 1280), (1024, 4096), (4096, 1024)),
}
"""``--pn`` pixel-count classes -> crop sizes ``(H, W)``; the first is used unless ``--dynamic_res``."""

_SIZE = re.compile(r"^(\d+)x(\d+)$")
_MAX_TRIES = 10


def parse_pn(pn: str) -> tuple[tuple[int, int], ...]:
    """Crop sizes of a ``--pn`` value: one of :data:`PN_RESOLUTIONS` or an explicit ``HxW`` (e.g. ``480x832``,
    ``64x64`` for tiny runs)."""
    if pn in PN_RESOLUTIONS:
        return PN_RESOLUTIONS[pn]
    match = _SIZE.match(pn.strip())
    if match and int(match.group(1)) > 0 and int(match.group(2)) > 0:
        return ((int(match.group(1)), int(match.group(2))),)
    raise ValueError(f"--pn must be one of {', '.join(PN_RESOLUTIONS)} or HxW (e.g. 480x832), got '{pn}'")


def sample_seed(seed: int, position: int) -> np.random.Generator:
    """The generator of the sample at ``position`` of the stream of run ``seed``."""
    return np.random.default_rng([seed & 0xFFFFFFFF, position])


def resize_target(height: int, width: int, crop: tuple[int, int], no_bicubic: bool) -> tuple[int, int] | None:
    """The size a ``height x width`` frame is resized to before cropping ``crop``, or None for no resize.

    The reference's rule: ``s = max(H / h, W / w)``; resize to ``(ceil(h s), ceil(w s))`` always, or with
    ``no_bicubic`` only when ``s > 1`` (a frame smaller than the crop); otherwise crop at native resolution.
    """
    scale = max(crop[0] / height, crop[1] / width)
    if no_bicubic and scale <= 1:
        return None
    return math.ceil(height * scale), math.ceil(width * scale)


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of uint8 frames ``(..., H, W)`` to ``size``, rounded and clamped back to uint8.

    ``F.interpolate(mode="bicubic", align_corners=False)`` without antialiasing, as the reference.
    """
    lead = frames.shape[:-2]
    x = frames.reshape(-1, 1, *frames.shape[-2:]).float()
    y = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
    return y.round_().clamp_(0, 255).to(torch.uint8).reshape(*lead, *size)


def crop_frames(frames: torch.Tensor, top: int, left: int, size: tuple[int, int]) -> torch.Tensor:
    return frames[..., top : top + size[0], left : left + size[1]]


@dataclass(frozen=True)
class ClipOptions:
    """How clips are drawn; field names are the training flags (``--num_frames``, ``--pn``, ...)."""

    num_frames: int = 60
    pn: str = "0.25M"
    dynamic_res: bool = False
    no_bicubic: bool = False
    p_vflip: float = 0.0
    p_hflip: float = 0.0
    p_transpose: float = 0.0
    temporal_sf: tuple[int, ...] = (4,)
    seed: int = 42
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be positive, got {self.num_frames}")
        parse_pn(self.pn)
        for name in ("p_vflip", "p_hflip", "p_transpose"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if not self.temporal_sf or min(self.temporal_sf) < 1:
            raise ValueError(f"--temporal_sf needs factors >= 1, got {list(self.temporal_sf)}")

    @property
    def resolutions(self) -> tuple[tuple[int, int], ...]:
        sizes = parse_pn(self.pn)
        return sizes if self.dynamic_res else sizes[:1]


class ClipDataset(Dataset):
    """Training clips of indexed videos; indexed by ``(position, video_index)`` pairs from :class:`ClipOrder`.

    Videos shorter than ``num_frames`` are dropped up front (logged). A clip that fails to decode is replaced
    by another video drawn from the same sample generator (up to 10 tries, each failure logged), so one bad
    file does not stop a run and the replacement is still reproducible.
    """

    def __init__(self, records: Sequence[VideoRecord], options: ClipOptions) -> None:
        self.options = options
        self.records = [r for r in records if r.num_frames >= options.num_frames]
        dropped = len(records) - len(self.records)
        if dropped:
            logger.info(
                "%d of %d videos have fewer than %d frames and are not used",
                dropped,
                len(records),
                options.num_frames,
            )
        if not self.records:
            raise InputError(f"no indexed video has at least --num_frames {options.num_frames} frames")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        position, index = key
        rng = sample_seed(self.options.seed, position)
        for attempt in range(_MAX_TRIES):
            record = self.records[index]
            try:
                sample = self.draw(record, rng)
            except (LDFVFIError, RuntimeError, OSError) as exc:
                logger.warning("cannot use %s (attempt %d): %s", record.video, attempt + 1, exc)
                index = int(rng.integers(len(self.records)))
                continue
            sample.update(position=position, index=index)
            return sample
        raise InputError(f"{_MAX_TRIES} videos in a row failed to decode; last: {self.records[index].video}")

    def draw(self, record: VideoRecord, rng: np.random.Generator) -> dict:
        """One clip of ``record`` with the random choices of ``rng`` (order: start, size, crop, flips, sf,
        phase)."""
        opts = self.options
        start = int(rng.integers(0, record.num_frames - opts.num_frames + 1))
        frames = read_frames(record.path, indices=range(start, start + opts.num_frames), backend=opts.backend)
        if len(frames) != opts.num_frames:
            raise InputError(f"decoded {len(frames)} of {opts.num_frames} frames from {record.video}")
        video = torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2)  # (3, T, H, W) uint8
        sizes = opts.resolutions
        crop = sizes[int(rng.integers(len(sizes)))]
        target = resize_target(video.shape[-2], video.shape[-1], crop, opts.no_bicubic)
        if target is not None:
            video = resize_frames(video, target)
        height, width = video.shape[-2:]
        if height < crop[0] or width < crop[1]:
            raise InputError(f"{record.video} is {width}x{height}, smaller than the {crop[1]}x{crop[0]} crop")
        top = int(rng.integers(0, height - crop[0] + 1))
        left = int(rng.integers(0, width - crop[1] + 1))
        video = crop_frames(video, top, left, crop)
        if rng.random() < opts.p_vflip:
            video = video.flip(-2)
        if rng.random() < opts.p_hflip:
            video = video.flip(-1)
        if rng.random() < opts.p_transpose:
            video = video.transpose(-2, -1)
        sf, phase, mask = sample_degradation(rng, opts.num_frames, opts.temporal_sf)
        return {
            "gt": video.contiguous(),
            "mask": torch.from_numpy(mask),
            "lq_source": torch.from_numpy(nearest_fill_slots(mask)),
            "sf": sf,
            "phase": phase,
            "start": start,
        }


class ClipOrder(Sampler):
    """The infinite, shuffled stream of training samples, split over data-parallel ranks.

    Position ``p`` of the stream (``p = 0, 1, 2, ...`` over the whole run, all ranks together) is video
    ``perm_e[p mod N]`` with ``e = p // N`` and ``perm_e`` a permutation seeded by ``(seed, e)``; rank ``r``
    of ``R`` takes positions ``start + r, start + r + R, ...``. Yields ``(position, video_index)``, which
    :class:`ClipDataset` uses to seed the sample. Resuming at ``start = samples already consumed`` continues
    the exact sequence of a straight run. The ranks of a sequence-parallel group share one data-parallel
    rank, so they load identical samples.
    """

    def __init__(
        self,
        size: int,
        seed: int = 0,
        start: int = 0,
        rank: int = 0,
        num_replicas: int = 1,
        shuffle: bool = True,
    ) -> None:
        if size < 1:
            raise ValueError("ClipOrder needs a non-empty dataset")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.size, self.seed, self.start = size, seed, start
        self.rank, self.num_replicas, self.shuffle = rank, num_replicas, shuffle

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed & 0xFFFFFFFF, epoch]).permutation(self.size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start + self.rank
        epoch, order = -1, None
        while True:
            if position // self.size != epoch:
                epoch = position // self.size
                order = self.order(epoch)
            yield position, int(order[position % self.size])
            position += self.num_replicas


def _one_thread(_: int) -> None:
    """DataLoader workers decode and resize one clip at a time; more torch threads only oversubscribe."""
    torch.set_num_threads(1)


def clip_loader(
    dataset: ClipDataset, sampler: Sampler, batch_size: int, num_workers: int, pin_memory: bool = False
) -> DataLoader:
    """The training DataLoader: ``num_workers`` persistent workers started from a clean process
    (:mod:`ldf_vfi.processes`), one torch thread each, two batches prefetched per worker."""
    workers = num_workers > 0
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=workers,
        prefetch_factor=2 if workers else None,
        worker_init_fn=_one_thread if workers else None,
        multiprocessing_context=clean_context() if workers else None,
    )
