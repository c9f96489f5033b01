"""The LDF-VFI diffusion backend: skip-concatenate auto-regressive sampling over windows (REFERENCE_SPEC 5).

:class:`LDFVFIPipeline` composes the three parts in the diffusers way: a *model* (the local-attention DiT,
:class:`~ldf_vfi.models.transformer.LDFTransformer3DModel`), another *model* (the Wan2.1 VAE with the
conditional decoder, :class:`~ldf_vfi.models.vae.WanVAE`, driven through the spec-2 tiling), and a
*scheduler* (diffusers' FlowMatch Euler scheduler set to the reference grid). The pipeline owns the loop:

1. The output timeline has ``N * sf`` slots; input frame ``k`` sits in slot ``k * sf``.
2. Windows of ``num_frames`` slots come from :func:`~ldf_vfi.pipelines.windows.iter_windows`. For each one the
   input frames inside it fill every slot by nearest-frame upsampling (window-local, as the reference), are
   VAE-encoded (a posterior sample, spec 3.4) into the LQ latent ``y``; the slot mask becomes the 4-channel
   code ``m``.
3. Generated chunks start from noise and follow the shifted time grid; context chunks (clean latents of the
   neighbouring segments) are re-noised once to ``t_cond`` and held there. ``K`` Euler steps of the
   velocity ``v = DiT([x_t | y | m], floor(1000 t))`` in the working dtype (bf16 timestep truncation).
4. Kept chunks are decoded by the conditional decoder with the window's filled frames and mask as condition,
   mapped to bytes by truncation, and emitted in timeline order, cut to ``(N - 1) * sf + 1`` frames
   (plus ``tail_frames`` extrapolated slots on request, for the evaluation).

Input frames are streamed: only the frames of the windows in flight are held, and the latents carried
between windows are one chunk each, so memory is bounded by one window whatever the video length.
Randomness: one ``torch.Generator`` per video, seeded with ``seed``; the draws happen in the reference's
order (LQ reparameterisation noise, then the window's new chunks, then context re-noising; the last window
re-noises its context first), so a video's result does not depend on the other videos or the process count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from fractions import Fraction
from itertools import chain, islice
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.temporal import upsample_temporal
from ..diffusion import sampling_time_grid, timestep_ids
from ..errors import InputError, first_line
from ..io import TimedFrame
from ..io.writer import pad_to_multiple
from ..models._condition import concat_condition
from ..models.tiling import TilingConfig
from .flow import FlowInterpolator, check_rate_ratio, check_temporal_sf
from .scene import DEFAULT_SCENE_CUT_THRESHOLD, scene_cut_score
from .timing import (
    Subdivision,
    TimeGrid,
    UniformGrid,
    check_frame_size,
    check_rate_increase,
    resample,
    slot_factor,
    with_slot_times,
)
from .windows import Window, check_window_geometry, iter_windows, window_schedule


@dataclass
class LDFSettings:
    """Sampling settings; names are the reference launchers' flags, defaults the released model's. The tile
    flags (``tile_min_h``, ..., ``vae_batch_size``) live in ``tiling``, the VAE's own config."""

    num_frames: int = 60
    sampling_steps: int = 16
    t_shift: float = 8.0
    t_cond: float = 0.1
    temporal_upsample: str = "nearest"
    max_chunks: int | None = None
    seed: int = 42
    lq_sample: bool = True  # the reference samples the LQ posterior; False uses its mean (training's choice)
    # Sample every shot on its own (False: the whole input as one continuous video, as the reference does).
    detect_scene_cuts: bool = True
    scene_cut_threshold: float = DEFAULT_SCENE_CUT_THRESHOLD
    # The flow warping that places frames between generated slots (--target_fps), as the flow backend's flags.
    flow_preset: str = "medium"
    flow_max_side: int = 1024
    tiling: TilingConfig = field(default_factory=TilingConfig)

    @property
    def tile_min_t(self) -> int:
        return self.tiling.tile_min_t

    @classmethod
    def from_options(cls, options: dict) -> LDFSettings:
        """Build from flat flag values (CLI names); unknown names are ignored."""
        own = {f.name for f in fields(cls)} - {"tiling"}
        return cls(
            **{k: v for k, v in options.items() if k in own}, tiling=TilingConfig.from_options(options)
        )


SIZE_MULTIPLE = 8  # the VAE downsamples by 8; other sizes are padded (edge rows/columns), then cropped


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class _FrameBuffer:
    """Streams input frames and keeps only those a window still needs (index -> ``H x W x 3`` uint8)."""

    def __init__(self, frames: Iterable[np.ndarray]) -> None:
        self._iterator = iter(frames)
        self._frames: dict[int, np.ndarray] = {}
        self._read = 0
        self.total: int | None = None  # known once the stream is exhausted
        self.shape: tuple[int, ...] | None = None

    def has(self, index: int) -> bool:
        """Whether input frame ``index`` exists (reads ahead as needed)."""
        while self.total is None and self._read <= index:
            frame = next(self._iterator, None)
            if frame is None:
                self.total = self._read
                break
            frame = np.asarray(frame)
            if self.shape is None:
                self.shape = frame.shape
            else:
                check_frame_size(frame, self.shape, self._read)
            self._frames[self._read] = frame
            self._read += 1
        return index < self._read

    def get(self, index: int) -> np.ndarray:
        if not self.has(index):
            raise IndexError(index)
        return self._frames[index]

    def release_before(self, index: int) -> None:
        for key in [k for k in self._frames if k < index]:
            del self._frames[key]


class _ShotSplitter:
    """A frame stream cut at scene cuts into shots, lazily: one frame of look-ahead, nothing else held.

    :meth:`shots` yields ``(index of the shot's first frame, iterator over the shot's frames)``; a shot's
    iterator must be read to its end before the next shot is taken (:meth:`shots` reads what is left).
    ``ended_by_cut`` says, once a shot's iterator is exhausted, whether another shot follows.
    """

    def __init__(
        self, frames: Iterable[np.ndarray], is_cut: Callable[[np.ndarray, np.ndarray], bool]
    ) -> None:
        self._frames = iter(frames)
        self._is_cut = is_cut
        self._next = next(self._frames, None)
        self._index = 0  # input index of self._next
        self.cuts: list[int] = []  # k: frames k and k + 1 are different shots
        self.ended_by_cut = False

    def shots(self) -> Iterator[tuple[int, Iterator[np.ndarray]]]:
        while self._next is not None:
            shot = self._shot()
            yield self._index, shot
            for _ in shot:  # whatever the caller left unread
                pass

    def _shot(self) -> Iterator[np.ndarray]:
        previous, self._next = self._next, None
        self.ended_by_cut = False
        self._index += 1
        yield previous
        for frame in self._frames:
            check_frame_size(frame, previous.shape, self._index)
            if self._is_cut(previous, frame):
                self.cuts.append(self._index - 1)
                self._next, self.ended_by_cut = frame, True
                return
            self._index += 1
            yield frame
            previous = frame


class _DenoisingProgress:
    """One progress bar per video in denoising steps (the costly part), so its rate and estimate mean
    something: frames come out a whole window at a time. The total is re-estimated at each shot from the
    input frames left (``num_inputs``, when known), as if the rest were one shot."""

    def __init__(self, enabled: bool, settings: LDFSettings, sf: int, num_inputs: int | None) -> None:
        self.settings, self.sf, self.num_inputs = settings, sf, num_inputs
        self.done, self.total = 0, None  # steps, also when the bar is hidden
        self.bar = tqdm(desc="denoising", unit="step", leave=False, disable=not enabled, dynamic_ncols=True)

    def plan(self, first_input: int, tail_frames: int, budget: _SegmentBudget) -> None:
        """The rest of the video starts at input frame ``first_input``; ``budget`` is ``--max_chunks``' rest."""
        if self.num_inputs is None or self.num_inputs - first_input < 2:
            return
        left = self.num_inputs - first_input
        windows = len(
            window_schedule(
                left * self.sf,
                self.settings.num_frames,
                self.settings.tile_min_t,
                (left - 1) * self.sf + 1 + tail_frames,
            )
        )
        # Segments come out first, then (concat, skip) pairs: m segments take m windows (m odd) or m + 1.
        if budget.left is not None:
            windows = min(windows, budget.left + 1 - budget.left % 2)
        self.total = self.done + windows * self.settings.sampling_steps
        self.bar.total = self.total
        self.bar.refresh()

    def window(self, window: Window) -> None:
        self.bar.set_postfix_str(f"{window.kind} window at slot {window.start}", refresh=False)

    def step(self) -> None:
        self.done += 1
        self.bar.update()

    def close(self) -> None:
        self.bar.close()


class _SegmentBudget:
    """``--max_chunks``: how many output segments the whole video may still emit (``None``: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    @property
    def spent(self) -> bool:
        return self.left is not None and self.left <= 0

    def spend(self) -> None:
        if self.left is not None:
            self.left -= 1


class LDFVFIPipeline:
    """Interpolate videos with LDF-VFI (see the module docstring for the algorithm).

    Build it from the released files with :meth:`from_pretrained`, or from modules (tests use tiny ones).
    ``interpolate(frames, temporal_sf)`` streams ``H x W x 3`` uint8 frames in and out, the same interface as
    the flow backend.
    """

    def __init__(
        self,
        transformer: torch.nn.Module,
        vae: torch.nn.Module,
        settings: LDFSettings | None = None,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        progress: bool = True,
    ) -> None:
        # nn.Module.to: diffusers' ModelMixin.to warns about fp32-kept modules on every cast (there are none)
        self.transformer = nn.Module.to(transformer, device=device, dtype=dtype).eval().requires_grad_(False)
        self.vae = nn.Module.to(vae, device=device, dtype=dtype).eval().requires_grad_(False)
        self.settings = settings or LDFSettings()
        self.device = torch.device(device)
        self.dtype = dtype
        self.progress = progress
        check_window_geometry(self.settings.num_frames, self.settings.tile_min_t)
        if self.settings.temporal_upsample != "nearest":
            raise InputError(
                f"--temporal_upsample {self.settings.temporal_upsample!r} is not supported (only 'nearest')"
            )
        self.tiling = self.settings.tiling
        self.time_grid = sampling_time_grid(self.settings.sampling_steps, self.settings.t_shift)
        self.scene_cuts: list[int] = []  # pairs (k, k + 1) of input frames found to be different shots
        self._cut_pair: tuple[np.ndarray, np.ndarray] | None = None  # the newest cut's two generated frames
        self._flow: FlowInterpolator | None = None  # between generated slots, for other output rates
        self.sp = None  # the sequence-parallel group (from_pretrained sets it)

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model_path: str | Path,
        vae_path: str | Path,
        *,
        vae_type: str = "wan2_1_cond_v2",
        attention_type: str | None = None,
        device: str = "auto",
        dtype: torch.dtype | None = None,
        sp_size: int = 1,
        **options,
    ) -> LDFVFIPipeline:
        """Load ``<model_path>/transformer`` (diffusers format) and the VAE ``.pth``. The released attention
        type is applied when the checkpoint's config names the constructor default (as the released one
        does) and ``attention_type`` is not given. bf16 on CUDA, fp32 on the CPU by default.
        ``sp_size > 1`` splits every window over that many processes (launched with torchrun/accelerate)."""
        from ..distributed import process_info
        from ..distributed.sequence_parallel import enable_sequence_parallel, init_sequence_parallel
        from ..models.transformer import (
            CONFIG_DEFAULT_ATTENTION_TYPE,
            RELEASE_ATTENTION_TYPE,
            LDFTransformer3DModel,
        )
        from ..models.vae import WanVAE

        model_path, vae_path = Path(model_path), Path(vae_path) if vae_path else None
        if vae_path is None:
            raise InputError(
                "--vae_path is required with --model_path (the conditional VAE, Wan2.1_VAE_cond_v2.pth)"
            )
        transformer_dir = model_path / "transformer" if (model_path / "transformer").is_dir() else model_path
        if not (transformer_dir / "config.json").is_file():
            raise InputError(
                f"no diffusers transformer under '{model_path}' (expected {model_path}/transformer/config.json)"
            )
        if not vae_path.is_file():
            raise InputError(f"--vae_path not found: '{vae_path}'")
        if device == "auto":  # one GPU per process under torchrun/accelerate
            device = f"cuda:{process_info().local_rank}" if torch.cuda.is_available() else "cpu"
        resolved = torch.device(device)
        dtype = dtype or (torch.bfloat16 if resolved.type == "cuda" else torch.float32)
        if attention_type is None:
            # The released config.json names the constructor default, not the type the weights were trained
            # with: apply the release preset then, but respect any other type a checkpoint records.
            saved = json.loads((transformer_dir / "config.json").read_text()).get("attention_type")
            attention_type = (
                RELEASE_ATTENTION_TYPE if saved in (None, CONFIG_DEFAULT_ATTENTION_TYPE) else saved
            )
        try:
            transformer = LDFTransformer3DModel.from_release(
                transformer_dir, subfolder=None, attention_type=attention_type
            )
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            first = first_line(exc)
            raise InputError(f"cannot load the LDF transformer from '{transformer_dir}': {first}") from None
        vae = WanVAE.from_original(vae_path, conditional=vae_type == "wan2_1_cond_v2")
        sp = init_sequence_parallel(sp_size)
        enable_sequence_parallel(transformer, sp)
        pipe = cls(transformer, vae, LDFSettings.from_options(options), device=resolved, dtype=dtype)
        pipe.progress = pipe.progress and sp.rank == 0
        pipe.sp = sp
        return pipe

    # -- public ------------------------------------------------------------------------------------------
    reports_progress = True  # its own bar in denoising steps; a per-frame bar would sit still for minutes

    def interpolate(
        self,
        frames: Iterable[np.ndarray],
        temporal_sf: int,
        *,
        tail_frames: int = 0,
        num_inputs: int | None = None,
    ) -> Iterator[np.ndarray]:
        """``(N - 1) * sf + 1`` frames for N input frames, generated window by window.

        With ``detect_scene_cuts`` (the default) the input is cut into shots at scene cuts and every shot is
        sampled as a video of its own, so no window mixes two shots; the ``sf - 1`` slots between the last
        frame of a shot and the first of the next repeat the nearer of those two (generated) frames, as the
        flow backend does, and a shot of one frame is that input frame. The cuts found are in
        ``scene_cuts`` once the frames are read. Without detection the input is one video, as in the
        reference.

        ``tail_frames`` (``0 .. sf - 1``) also emits that many timeline slots after the last input frame,
        the model's own extrapolation: the timeline has ``N * sf`` slots and the reference's evaluation keeps
        the first ``len(GT)`` of them (eval_snu_film.py:203), which FVD then scores. ``num_inputs`` (N, when
        known) sizes the progress bar.
        """
        sf = check_temporal_sf(temporal_sf)
        if not 0 <= tail_frames < sf:
            raise InputError(f"tail_frames must be in 0..{sf - 1} at --temporal_sf {sf}, got {tail_frames}")
        self.scene_cuts = []
        return self._interpolate(frames, sf, tail_frames, num_inputs)

    def resample(
        self,
        frames: Iterable[TimedFrame],
        grid: TimeGrid,
        *,
        temporal_sf: int | None = None,
        num_inputs: int | None = None,
    ) -> Iterator[TimedFrame]:
        """Frames at ``grid``'s times from frames with their own (possibly variable) times.

        The model samples the timeline at ``temporal_sf`` slots per input interval (default: the smallest
        factor whose slots are at least as dense as a :class:`UniformGrid`, judged on the first interval);
        each output time that falls on a slot gets that generated frame, one between two slots is
        interpolated between them with the flow backend's warping (neighbouring generated frames differ
        little), except across a scene cut, where the nearer one is repeated.
        """
        frames = iter(frames)
        head = list(islice(frames, 2))
        if isinstance(grid, Subdivision):
            temporal_sf = grid.factor
        elif temporal_sf is None:
            if len(head) < 2:
                temporal_sf = 1  # interpolate() gives the error
            else:
                temporal_sf = slot_factor((head[1].time - head[0].time) * Fraction(grid.fps))
        times: list[Fraction] = []

        def images() -> Iterator[np.ndarray]:
            for frame in chain(head, frames):
                times.append(frame.time)
                yield frame.image

        slots = with_slot_times(
            self.interpolate(images(), temporal_sf, num_inputs=num_inputs), times, temporal_sf
        )
        if isinstance(grid, Subdivision):
            return slots
        return resample(slots, grid, self._between_slots)

    def retime(
        self, frames: Iterable[np.ndarray], input_fps: Fraction | float, output_fps: Fraction | float
    ) -> Iterator[np.ndarray]:
        """Constant-rate frames to ``output_fps`` (above the input's rate, at most 16 times it): output frame
        ``j`` shows time ``j / output_fps`` (see :meth:`resample`)."""
        input_fps, output_fps = check_rate_ratio(input_fps, output_fps)
        check_rate_increase(input_fps, output_fps)
        timed = (TimedFrame(frame, k / input_fps) for k, frame in enumerate(frames))
        grid = UniformGrid(output_fps)
        return (f.image for f in self.resample(timed, grid, temporal_sf=slot_factor(output_fps / input_fps)))

    def __call__(self, frames: Iterable[np.ndarray], temporal_sf: int) -> list[np.ndarray]:
        return list(self.interpolate(frames, temporal_sf))

    # -- internals ---------------------------------------------------------------------------------------
    def _pixels(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``(F, H, W, 3)`` -> ``(1, 3, F, H, W)`` in [-1, 1], normalised in the working dtype (bf16
        arithmetic gives the reference's values)."""
        video = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        video = video.permute(3, 0, 1, 2).unsqueeze(0).to(self.dtype)
        return video / 127.5 - 1

    def _condition(self, window: Window, buffer: _FrameBuffer, sf: int):
        """The window's LQ video ``(1, 3, F, H, W)``, every slot filled with the nearest input frame *inside
        the window* (as the reference), and its slot mask ``(F,)`` (bool). ``H, W`` are the frame size
        padded to multiples of :data:`SIZE_MULTIPLE`."""
        f = self.settings.num_frames
        mask = torch.zeros(f, dtype=torch.bool)
        known = []
        for offset, slot in enumerate(range(window.start, window.start + f)):
            if slot % sf == 0 and buffer.has(slot // sf):
                mask[offset] = True
                known.append(pad_to_multiple(buffer.get(slot // sf), SIZE_MULTIPLE))
        filled = upsample_temporal(torch.from_numpy(np.stack(known)), mask)
        return self._pixels(filled.numpy()), mask

    def _noise(self, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(like.shape, generator=generator, device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def _denoise(
        self,
        window: Window,
        y: torch.Tensor,
        m: torch.Tensor,
        memory: dict,
        generator: torch.Generator,
        progress: _DenoisingProgress,
    ) -> torch.Tensor:
        """Run the K Euler steps of one window; returns its final latent ``(1, nT, nH, nW, 16, t, h, w)``."""
        n_t = y.shape[1]
        generated = [i for i in range(n_t) if i not in window.context]
        t_cond = self.settings.t_cond

        def renoise(chunk: torch.Tensor) -> torch.Tensor:
            return chunk * (1 - t_cond) + self._noise(chunk, generator) * t_cond

        context: dict[int, torch.Tensor] = {}
        if window.kind == "last":  # the reference re-noises the context before drawing the new chunks
            context = {i: renoise(memory[name]) for i, name in window.context.items()}
        new = self._noise(y[:, generated[0] : generated[-1] + 1], generator)
        if window.kind != "last":
            context = {i: renoise(memory[name]) for i, name in sorted(window.context.items())}
        grid = self.time_grid
        progress.window(window)
        first = generated[0]
        for i in range(self.settings.sampling_steps):
            parts = [context[j] if j in context else new[:, j - first : j - first + 1] for j in range(n_t)]
            x = torch.cat(parts, dim=1)
            t = torch.full(y.shape[:4], float(grid[i]), dtype=torch.float32)
            for j in context:
                t[:, j] = t_cond
            ids = timestep_ids(t.to(self.dtype)).to(self.device)
            velocity = self.transformer(concat_condition(x, y, m), ids).sample
            step = float(grid[i + 1] - grid[i])  # float32 difference, as the reference
            new = new + velocity[:, first : generated[-1] + 1].to(self.dtype) * step
            progress.step()
        parts = [context[j] if j in context else new[:, j - first : j - first + 1] for j in range(n_t)]
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def _decode(
        self, latent: torch.Tensor, lq: torch.Tensor, mask: torch.Tensor, height: int, width: int
    ) -> np.ndarray:
        """Stitch and decode kept chunks ``(1, k, nH, nW, 16, t, h, w)`` with their condition slice."""
        from ..models.tiling import chunked_to_stitched

        stitched = chunked_to_stitched(latent)
        if getattr(self.vae, "conditional", False):
            pixels = self.vae.tiled_decode(
                stitched, self.tiling, condition=lq, mask=mask[None].to(self.device)
            )
        else:
            pixels = self.vae.tiled_decode(stitched, self.tiling)
        pixels = pixels[..., :height, :width]
        video = ((pixels + 1) * 127.5).clamp(0, 255).to(torch.uint8)  # truncation, as the reference
        return video[0].permute(1, 2, 3, 0).cpu().numpy()

    def _interpolate(
        self, frames: Iterable[np.ndarray], sf: int, tail_frames: int, num_inputs: int | None
    ) -> Iterator[np.ndarray]:
        progress = _DenoisingProgress(self.progress, self.settings, sf, num_inputs)
        budget = _SegmentBudget(self.settings.max_chunks)
        try:
            if not self.settings.detect_scene_cuts:
                progress.plan(0, tail_frames, budget)
                yield from self._run(frames, sf, lambda: tail_frames, progress, budget)
            else:
                yield from self._run_shots(frames, sf, tail_frames, progress, budget)
        finally:
            progress.close()

    def _is_cut(self, frame0: np.ndarray, frame1: np.ndarray) -> bool:
        """The detector's verdict; in a sequence-parallel group the first rank's, so that every rank cuts the
        video into the same shots (a rank that split differently would wait for the others forever)."""
        cut = scene_cut_score(frame0, frame1) > self.settings.scene_cut_threshold
        if self.sp is not None and self.sp.enabled:
            from ..distributed.sequence_parallel import broadcast_from_group_source

            verdict = torch.tensor([float(cut)], device=self.device)
            cut = bool(broadcast_from_group_source(verdict, self.sp).item())
        return cut

    def _run_shots(
        self,
        frames: Iterable[np.ndarray],
        sf: int,
        tail_frames: int,
        progress: _DenoisingProgress,
        budget: _SegmentBudget,
    ) -> Iterator[np.ndarray]:
        """Every shot sampled alone (its own windows and noise, seeded as a video of its own); across a cut
        the first ``(sf - 1) // 2`` slots repeat the shot's last frame, the others the next shot's first."""
        splitter = _ShotSplitter(frames, self._is_cut)
        self.scene_cuts = splitter.cuts
        self._cut_pair = None
        repeat_before = (sf - 1) // 2
        owed = 0  # slots after the previous shot that repeat this shot's first frame
        last: np.ndarray | None = None
        shots = 0
        for start, shot in splitter.shots():
            shots += 1
            head = list(islice(shot, 2))
            if len(head) == 1:  # a shot of one frame (a cut on both sides, or a one-frame input)
                if start == 0 and not splitter.ended_by_cut:
                    raise InputError("the input has only 1 frame; interpolation needs at least 2")
                tail = 0 if splitter.ended_by_cut else tail_frames
                outputs: Iterator[np.ndarray] = iter([head[0]] * (1 + tail))
            else:
                progress.plan(start, tail_frames, budget)
                outputs = self._run(
                    chain(head, shot),
                    sf,
                    lambda: 0 if splitter.ended_by_cut else tail_frames,
                    progress,
                    budget,
                )
            first = next(outputs)
            if last is not None:
                self._cut_pair = (last, first)
            for _ in range(owed):
                yield first
            yield first
            last = first
            for frame in outputs:
                yield frame
                last = frame
            if budget.spent or not splitter.ended_by_cut:
                break
            for _ in range(repeat_before):
                yield last
            owed = sf - 1 - repeat_before
        if shots == 0:
            raise InputError("the input has no frames")

    def _between_slots(
        self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float]
    ) -> list[np.ndarray]:
        """Frames between two neighbouring generated slots (for output rates that are not a slot grid)."""
        if frame0 is frame1:  # repeated across a cut, or a one-frame shot
            return [frame0] * len(times)
        pair = self._cut_pair
        if pair is not None and frame0 is pair[0] and frame1 is pair[1]:
            return [frame0 if t < 0.5 else frame1 for t in times]
        if self._flow is None:
            settings = self.settings
            self._flow = FlowInterpolator(
                settings.flow_preset, settings.flow_max_side, detect_scene_cuts=False
            )
        return self._flow.interpolate_pair(frame0, frame1, times)

    def _run(
        self,
        frames: Iterable[np.ndarray],
        sf: int,
        tail_frames: Callable[[], int],
        progress: _DenoisingProgress,
        budget: _SegmentBudget,
    ) -> Iterator[np.ndarray]:
        """One continuous video through the skip-concatenate schedule. ``tail_frames()`` is asked only once
        the input's end has been read (a shot learns then whether the video ends with it)."""
        from ..models.mask_encoder import encode_mask, frame_mask_video

        buffer = _FrameBuffer(frames)
        if not buffer.has(0):
            raise InputError("the input has no frames")
        if not buffer.has(1):
            raise InputError("the input has only 1 frame; interpolation needs at least 2")
        height, width = buffer.shape[:2]  # frames are padded to multiples of 8 inside, cropped back here
        padded_height, padded_width = _round_up(height, SIZE_MULTIPLE), _round_up(width, SIZE_MULTIPLE)
        settings = self.settings
        tc = settings.tile_min_t
        generator = torch.Generator(device=self.device).manual_seed(settings.seed)

        def has_slot(k: int) -> bool:  # is the timeline (N * sf slots) longer than k?
            return buffer.has(k // sf)

        def keeps_slot(k: int) -> bool:  # does slot k survive the cut to (N - 1) * sf + 1 + tail frames?
            if buffer.has(math.ceil(k / sf)):
                return True
            tail = tail_frames()  # the end of the input is known now
            return tail > 0 and buffer.has(math.ceil(max(k - tail, 0) / sf))

        def decode_kept(window: Window, latent, lq, mask) -> list[np.ndarray]:
            """The window's kept frames that survive the cut, as bytes on the host. Chunks wholly beyond the
            cut are not decoded: the decoder takes every chunk on its own."""
            a, b = window.keep
            wanted = 0
            while wanted < (b - a) * tc and keeps_slot(window.out_start + wanted):
                wanted += 1
            if wanted == 0:
                return []
            b = a + math.ceil(wanted / tc)
            decoded = self._decode(
                latent[:, a:b], lq[:, :, a * tc : b * tc], mask[a * tc : b * tc], height, width
            )
            return list(decoded[:wanted])

        memory: dict[str, torch.Tensor] = {}
        # Skip segments wait for the concat segment before them, already decoded: bytes on the host, not the
        # window's LQ video on the device.
        pending: list[tuple[int, list[np.ndarray]]] = []
        emitted = 0

        def emit(start: int, decoded: list[np.ndarray]) -> Iterator[np.ndarray]:
            nonlocal emitted
            if start != emitted:
                raise AssertionError(f"segment at slot {start} emitted after {emitted} frames")
            budget.spend()
            for frame in decoded:
                emitted += 1
                yield frame

        for window in iter_windows(has_slot, keeps_slot, settings.num_frames, tc):
            if budget.spent:
                break
            lq, mask = self._condition(window, buffer, sf)
            y = self.vae.tiled_encode(lq, self.tiling, sample=settings.lq_sample, generator=generator)
            m = encode_mask(
                frame_mask_video(mask[None].to(self.device, self.dtype), padded_height, padded_width),
                self.tiling,
            )
            latent = self._denoise(window, y.to(self.dtype), m.to(self.dtype), memory, generator, progress)
            for name, chunk in window.save.items():
                memory[name] = latent[:, chunk : chunk + 1].clone()  # not a view that keeps the window alive
            for old, new in window.rename.items():
                memory[new] = memory.pop(old)
            decoded = decode_kept(window, latent, lq, mask)
            del lq, y, m, latent
            if window.kind == "skip":
                pending.append((window.out_start, decoded))  # emitted after the concat window before it
                continue
            yield from emit(window.out_start, decoded)
            while pending and pending[0][0] == emitted and not budget.spent:
                yield from emit(*pending.pop(0))
            buffer.release_before(max(0, (window.start - tc)) // sf)
