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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.temporal import upsample_temporal
from ..diffusion import sampling_time_grid, timestep_ids
from ..errors import InputError, first_line
from ..io.writer import pad_to_multiple
from ..models._condition import concat_condition
from ..models.tiling import TilingConfig
from .flow import check_temporal_sf
from .windows import Window, check_window_geometry, iter_windows


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
            elif frame.shape != self.shape:
                raise InputError(
                    f"frame {self._read} is {frame.shape[1]}x{frame.shape[0]}, earlier frames are {self.shape[1]}x{self.shape[0]}"
                )
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
        self.scene_cuts: list[int] = []  # interface parity with the flow backend (the DiT models cuts itself)

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
        return pipe

    # -- public ------------------------------------------------------------------------------------------
    def interpolate(
        self, frames: Iterable[np.ndarray], temporal_sf: int, *, tail_frames: int = 0
    ) -> Iterator[np.ndarray]:
        """``(N - 1) * sf + 1`` frames for N input frames, generated window by window.

        ``tail_frames`` (``0 .. sf - 1``) also emits that many timeline slots after the last input frame,
        the model's own extrapolation: the timeline has ``N * sf`` slots and the reference's evaluation keeps
        the first ``len(GT)`` of them (eval_snu_film.py:203), which FVD then scores.
        """
        sf = check_temporal_sf(temporal_sf)
        if not 0 <= tail_frames < sf:
            raise InputError(f"tail_frames must be in 0..{sf - 1} at --temporal_sf {sf}, got {tail_frames}")
        return self._run(frames, sf, tail_frames)

    def retime(self, frames, input_fps, output_fps):
        raise InputError(
            "the ldf backend interpolates by integer factors only; use --temporal_sf, or --backend flow for --target_fps"
        )

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
        self, window: Window, y: torch.Tensor, m: torch.Tensor, memory: dict, generator: torch.Generator
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
        steps = range(self.settings.sampling_steps)
        bar = tqdm(
            steps,
            desc=f"{window.kind} window [{window.start}, {window.start + self.settings.num_frames})",
            leave=False,
            disable=not self.progress,
            dynamic_ncols=True,
        )
        first = generated[0]
        for i in bar:
            parts = [context[j] if j in context else new[:, j - first : j - first + 1] for j in range(n_t)]
            x = torch.cat(parts, dim=1)
            t = torch.full(y.shape[:4], float(grid[i]), dtype=torch.float32)
            for j in context:
                t[:, j] = t_cond
            ids = timestep_ids(t.to(self.dtype)).to(self.device)
            velocity = self.transformer(concat_condition(x, y, m), ids).sample
            step = float(grid[i + 1] - grid[i])  # float32 difference, as the reference
            new = new + velocity[:, first : generated[-1] + 1].to(self.dtype) * step
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

    def _run(self, frames: Iterable[np.ndarray], sf: int, tail_frames: int = 0) -> Iterator[np.ndarray]:
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
            return buffer.has(math.ceil(max(k - tail_frames, 0) / sf))

        memory: dict[str, torch.Tensor] = {}
        pending: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []  # undecoded skip segments
        emitted = 0
        segments = 0

        def flush(start: int, latent, lq, mask) -> Iterator[np.ndarray]:
            nonlocal emitted, segments
            if start != emitted:
                raise AssertionError(f"segment at slot {start} emitted after {emitted} frames")
            for frame in self._decode(latent, lq, mask, height, width):
                if not keeps_slot(emitted):
                    return
                emitted += 1
                yield frame
            segments += 1

        for window in iter_windows(has_slot, keeps_slot, settings.num_frames, tc):
            if settings.max_chunks is not None and segments >= settings.max_chunks:
                break
            lq, mask = self._condition(window, buffer, sf)
            y = self.vae.tiled_encode(lq, self.tiling, sample=settings.lq_sample, generator=generator)
            m = encode_mask(
                frame_mask_video(mask[None].to(self.device, self.dtype), padded_height, padded_width),
                self.tiling,
            )
            latent = self._denoise(window, y.to(self.dtype), m.to(self.dtype), memory, generator)
            for name, chunk in window.save.items():
                memory[name] = latent[:, chunk : chunk + 1]
            for old, new in window.rename.items():
                memory[new] = memory.pop(old)
            a, b = window.keep
            kept = (window.out_start, latent[:, a:b], lq[:, :, a * tc : b * tc], mask[a * tc : b * tc])
            if window.kind == "skip":
                pending.append(kept)  # emitted after the concat window that precedes it on the timeline
                continue
            yield from flush(*kept)
            while (
                pending
                and pending[0][0] == emitted
                and (settings.max_chunks is None or segments < settings.max_chunks)
            ):
                yield from flush(*pending.pop(0))
            buffer.release_before(max(0, (window.start - tc)) // sf)
