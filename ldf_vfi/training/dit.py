"""Training the LDF-VFI transformer (the reference's ``train_dit.py``, REFERENCE_SPEC 4 and 7).

One micro-step, for a batch of clips ``gt (B, 3, T, H, W)`` uint8 with their degradation:

1. ``lq = gt[:, :, lq_source]`` (the nearest-upsampled low-frame-rate clip), both mapped to [-1, 1];
2. frozen, tiled encodes (spec 2): ``x0`` = posterior mean of ``gt``, ``y`` = posterior mean of ``lq`` (the
   plain Wan2.1 VAE, as the released recipe), ``m`` = the 4-channel mask code, all in the chunked layout
   ``(B, nT, nH, nW, C, t, h, w)``;
3. ``noise ~ N(0, I)`` and one noise level per chunk ``t`` (``--diffusion_forcing temporal``: per temporal
   chunk, shared by its tiles; logit-normal, cast to the working dtype, shifted by ``--t_shift``), both
   broadcast from the first rank of a sequence-parallel group;
4. ``loss = mean((DiT([x_t | y | m], floor(1000 t)) - (noise - x0))^2)`` in fp32 over every element.

Around it: AdamW with the command line's hyper-parameters (by default the ones the released model ran with,
:data:`~ldf_vfi.training.args.STAGE_DEFAULTS`), the EDM2 lr ramp, gradient accumulation to ``--batch_size``,
gradient clipping, fp32 EMAs saved as diffusers folders, and exact resume (:mod:`~ldf_vfi.training.loop`).
Without ``--vae_path`` the encoders are a random VAE of ``--vae_config`` (a first run with no weights,
``configs/train/tiny.yaml``), kept as ``<output_dir>/vae.pth`` for resuming and for ``generate.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch
from torch import nn

from ..diffusion import (
    flow_matching_loss,
    interpolate_noise,
    sample_noise_levels,
    timestep_ids,
    velocity_target,
)
from ..distributed.sequence_parallel import broadcast_from_group_source, enable_sequence_parallel
from ..errors import InputError
from ..models._condition import concat_condition
from ..models.mask_encoder import encode_mask, frame_mask_video
from ..models.tiling import TilingConfig
from ..models.transformer import (
    LATENT_CHANNELS,
    LDF_IN_CHANNELS,
    RELEASE_ATTENTION_TYPE,
    LDFTransformer3DModel,
    read_safetensors_folder,
)
from ..models.vae import WanVAE, save_original_state_dict
from .args import ema_decays, tiling_config
from .checkpoint import checkpoint_path
from .ema import EMA, ema_name
from .loop import TrainingRun, gather_lq, to_unit

__all__ = [
    "LatentEncoder",
    "build_transformer",
    "draw_noise",
    "load_vae",
    "train_dit",
    "velocity_loss",
]

logger = logging.getLogger("ldf_vfi.training")

# Purposes of keyed random draws (TrainingRun.generator): distinct streams per use.
_NOISE = 0
RANDOM_VAE_FILE = "vae.pth"


def load_vae(path: str | None, vae_type: str, config_path: str | None) -> WanVAE:
    """A WanVAE from an original-layout checkpoint (``Wan2.1_VAE.pth`` or the conditional v2 file)."""
    config = json.loads(Path(config_path).read_text()) if config_path else None
    conditional = vae_type == "wan2_1_cond_v2"
    if path is None:
        return WanVAE(**{**(config or {}), "conditional": conditional})
    return WanVAE.from_original(path, conditional=conditional, config=config)


def encoder_vae(args: argparse.Namespace, run: TrainingRun) -> WanVAE:
    """The VAE of the DiT's latents: ``--vae_path``, or else a random VAE of ``--vae_config`` written once to
    ``<output_dir>/vae.pth`` (and read back when the run resumes), so that the latent space the DiT learns can be
    decoded: that file is the ``--vae_path`` of ``generate.py``."""
    if args.vae_path is not None:
        return load_vae(args.vae_path, args.vae_type, args.vae_config)
    saved = run.output_dir / RANDOM_VAE_FILE
    exists = saved.is_file()
    run.accelerator.wait_for_everyone()  # every rank looked before the main process writes it
    if exists:
        return load_vae(str(saved), args.vae_type, args.vae_config)
    vae = load_vae(None, args.vae_type, args.vae_config)
    if run.accelerator.is_main_process:
        logger.info("no --vae_path: a random VAE of %s, saved as %s", args.vae_config, saved)
        save_original_state_dict(vae, saved)
    return vae


class LatentEncoder:
    """The frozen encoders of the DiT's inputs: tiled VAE posterior means and the mask code (spec 2).

    ``__call__(gt, lq_source, mask)`` takes the data pipeline's uint8 clip ``(B, 3, T, H, W)``, slot sources
    ``(B, T)`` and kept-frame mask ``(B, T)`` and returns ``x0, y, m`` in the chunked layout, in ``dtype``.
    GT and LQ go through the VAE together (one tiled pass over ``2B`` clips).
    """

    def __init__(self, vae: WanVAE, tiling: TilingConfig, dtype: torch.dtype) -> None:
        self.vae = vae.requires_grad_(False).eval()
        self.tiling = tiling
        self.dtype = dtype

    @torch.no_grad()
    def __call__(
        self, gt: torch.Tensor, lq_source: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        clips = to_unit(torch.cat([gt, gather_lq(gt, lq_source)]), self.dtype)
        latents = self.vae.tiled_encode(clips, self.tiling)
        x0, y = latents.chunk(2)
        height, width = gt.shape[-2:]
        m = encode_mask(frame_mask_video(mask.to(self.dtype), height, width), self.tiling)
        return x0, y, m


def draw_noise(
    x0: torch.Tensor, generators: list[torch.Generator], diffusion_forcing: str, t_shift: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise like ``x0`` and per-chunk noise levels ``(B, nT, nH, nW)``, sample ``i`` drawn from
    ``generators[i]`` (noise first, then the levels, as the reference orders them), in ``x0``'s dtype."""
    noises, levels = [], []
    for generator in generators:
        noises.append(torch.randn(x0.shape[1:], generator=generator, device=x0.device, dtype=x0.dtype))
        grid = (1, *x0.shape[1:4])
        levels.append(
            sample_noise_levels(grid, diffusion_forcing, t_shift, generator=generator, dtype=x0.dtype)
        )
    return torch.stack(noises), torch.cat(levels)


def velocity_loss(
    model: nn.Module, x0: torch.Tensor, y: torch.Tensor, m: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """The flow-matching loss of one batch (spec 4): the DiT sees ``[x_t | y | m]`` and ``floor(1000 t)``."""
    xt = interpolate_noise(x0, noise, t)
    prediction = model(concat_condition(xt, y, m), timestep_ids(t)).sample
    return flow_matching_loss(prediction, velocity_target(x0, noise))


def _transformer_folder(path: Path) -> Path:
    """A transformer folder, or a model folder holding ``transformer/``."""
    if (path / "config.json").is_file():
        return path
    if (path / "transformer" / "config.json").is_file():
        return path / "transformer"
    raise InputError(f"--model_path '{path}' holds no config.json (nor transformer/config.json)")


def build_transformer(args: argparse.Namespace) -> LDFTransformer3DModel:
    """The transformer to train, in fp32.

    * ``--model_path`` with a Wan2.1-T2V folder (16 inputs): its weights, the patch embedding widened to 36
      inputs with zeros (the start of the released training);
    * ``--model_path`` with an LDF folder (36 inputs), e.g. an EMA of an earlier run: continued as is;
    * only ``--model_config``: a random init of that diffusers config (16 or 36 inputs), seeded.
    """
    attention_type = args.attention_type or RELEASE_ATTENTION_TYPE
    if args.model_path is not None:
        folder = _transformer_folder(Path(args.model_path))
        config = json.loads((folder / "config.json").read_text())
        if config.get("in_channels") == LDF_IN_CHANNELS:
            model = LDFTransformer3DModel.from_pretrained(folder, attention_type=attention_type)
        else:
            model = LDFTransformer3DModel.from_wan_t2v(folder, attention_type=attention_type)
    else:
        config = {
            k: v for k, v in json.loads(Path(args.model_config).read_text()).items() if not k.startswith("_")
        }
        config.update(
            in_channels=LDF_IN_CHANNELS, out_channels=LATENT_CHANNELS, attention_type=attention_type
        )
        model = LDFTransformer3DModel(**config)
    model.set_attention_backend(args.attention_backend)
    if args.grad_checkpoint:
        model.enable_gradient_checkpointing()
    # nn.Module.to: diffusers' ModelMixin.to warns about float32 modules on every dtype cast, even when a model
    # has none (LDFTransformer3DModel, WanVAE); there is nothing to keep apart here.
    return nn.Module.to(model, dtype=torch.float32).requires_grad_(True).train()


def _write_ema(model: nn.Module, folder: Path) -> None:
    model.save_pretrained(folder / "transformer")


def _read_ema(model: nn.Module, folder: Path) -> bool:
    if not (folder / "transformer").is_dir():
        return False
    model.load_state_dict(read_safetensors_folder(folder / "transformer"))
    return True


def train_dit(args: argparse.Namespace) -> Path:
    """Run DiT training for parsed and validated ``args``; returns the output folder."""
    run = TrainingRun(args, name="train_dit")
    acc, device, dtype = run.accelerator, run.device, run.weight_dtype
    dataset = run.dataset()

    transformer = build_transformer(args)
    vae = nn.Module.to(encoder_vae(args, run), device=device, dtype=dtype)  # see build_transformer
    encoder = LatentEncoder(vae, tiling_config(args), dtype)
    decays = ema_decays(args.ema_decay)
    ema = EMA(
        transformer, decays if acc.is_main_process else [], device="cpu" if args.offload_ema else device
    )
    # After the EMA copies (they stay plain single-device models): each rank of an SP group keeps 1/sp of every
    # chunk's tokens. The gather's backward sums over the group, so each rank holds sp times its share of the
    # gradient and the data-parallel average over all ranks (DDP, DeepSpeed) gives the true gradient.
    enable_sequence_parallel(transformer, run.sp)
    optimizer = run.adam(transformer.parameters(), weight_decay=args.adam_weight_decay, decoupled=True)
    model, optimizer = acc.prepare(transformer, optimizer)

    def save_extra(folder: Path) -> None:
        ema.save(folder, _write_ema)

    def load_extra(folder: Path) -> None:
        for decay in ema.load(folder, _read_ema):
            logger.warning("checkpoint has no EMA %s: it starts from the current weights", decay)

    run.resume(load_extra)
    run.batches(dataset)
    run.start()
    gathers_shards = run.zero_stage == 3
    while not run.done:
        lr = run.lr(args.ref_lr)
        run.set_lr(optimizer, lr)
        model.train()
        losses, grad_norm = [], None
        for _ in range(run.gas):
            batch = run.next_batch()
            x0, y, m = encoder(batch["gt"], batch["lq_source"], batch["mask"])
            noise, t = draw_noise(
                x0, run.sample_generators(batch, _NOISE), args.diffusion_forcing, args.t_shift
            )
            for tensor in (noise, t):  # identical already (same keys); the broadcast makes it a guarantee
                broadcast_from_group_source(tensor, run.sp)
            with acc.accumulate(model):
                loss = velocity_loss(model, x0, y, m, noise, t)
                acc.backward(loss)
                grad_norm = run.clip_gradients(model)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach().item())
        if ema:
            ema.update(acc.get_state_dict(model) if gathers_shards else acc.unwrap_model(model))
        elif gathers_shards:
            acc.get_state_dict(model)  # a collective under ZeRO-3: every rank must take part
        metrics = {"loss": run.reduce_mean(sum(losses) / len(losses)), "lr": lr}
        if grad_norm is not None:
            metrics["grad_norm"] = grad_norm
        run.end_step(metrics, save_extra)
    run.finish()
    if acc.is_main_process and decays:
        model_path = checkpoint_path(run.output_dir, run.state.global_step) / ema_name(decays[-1])
        vae_hint = f"--vae_path {run.output_dir / RANDOM_VAE_FILE if args.vae_path is None else 'VAE'}"
        if args.vae_path is None and args.vae_type == "wan2_1":
            vae_hint += " --vae_type wan2_1"
        logger.info(
            "interpolate with it: python generate.py --backend ldf --model_path %s %s --data VIDEO",
            model_path,
            vae_hint,
        )
    return run.output_dir
