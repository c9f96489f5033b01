"""Training the conditional Wan2.1 VAE decoder (the reference's ``train_vae.py``, REFERENCE_SPEC 8).

The model is :class:`~ldf_vfi.models.vae.WanVAE` with ``conditional=True``, started from ``Wan2.1_VAE.pth``
(encoder, decoder, conv1/conv2) with a fresh condition encoder and zero-initialised injection convolutions.
One iteration, as the reference's (``train_vae.py:434-595``):

1. generator step (``--batch_size`` clips): ``mu, logvar = encode(gt)`` (raw latent space; the encoder trains
   too unless ``--freeze_encoder``), ``z = mu + sigma * eps``, ``x_hat = decode(z)`` with the condition = the
   nearest-upsampled low-frame-rate clip and its mask; loss of :class:`~.losses.VAELoss`;
2. a discriminator step on a fresh batch (hinge loss on frames). Before ``--disc_start`` the reference's
   discriminator loss is multiplied by 0, so that step changes no weight, but it still takes the batch, lets
   ActNorm initialise on the first batch's real frames and counts an Adam step (Adam's bias correction at
   ``disc_start`` is then that of a late step); :func:`train_vae` does exactly that without the VAE and
   discriminator passes whose result is multiplied by 0.

Clips of ``1 + 4k`` frames (``--num_frames 5`` by default: one group, as the sampler decodes them) are encoded
and decoded through the feature cache in one pass, with the same 1, 4, 4, ... chunking as at inference.
Optimisers are Adam (not AdamW) as the reference; EMAs are saved per decay as ``ema-<decay>.pth`` in the
original checkpoint layout, loadable as ``--vae_path`` of the sampler.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from ..errors import InputError
from ..models.vae import (
    WanVAE,
    infer_config,
    load_state_dict_file,
    original_key_map,
    save_original_state_dict,
)
from .args import ema_decays
from .discriminator import ActNorm, PatchDiscriminator
from .ema import EMA
from .loop import TrainingRun, gather_lq, to_unit
from .losses import PerceptualLoss, VAELoss

__all__ = ["ConditionalReconstruction", "load_conditional_vae", "train_vae"]

logger = logging.getLogger("ldf_vfi.training")

_REPARAMETERISE_G, _REPARAMETERISE_D = 1, 2
_CONDITION_PARTS = ("cond_encoder.", "zero_convs.")


def load_conditional_vae(path: str | None, config_path: str | None = None) -> WanVAE:
    """A conditional WanVAE initialised from ``path``: a plain ``Wan2.1_VAE.pth`` (the condition encoder and
    zero convolutions start fresh) or a conditional v2 checkpoint (everything loaded, e.g. to continue). The
    sizes come from the file unless ``config_path`` (a JSON WanVAE config) says otherwise."""
    config = json.loads(Path(config_path).read_text()) if config_path else {}
    if path is None:
        logger.warning("no --vae_path: the whole VAE starts from a random init")
        return WanVAE(**{**config, "conditional": True})
    state = load_state_dict_file(path)
    model = WanVAE(**{**(config or infer_config(state)), "conditional": True})  # sizes read off the file
    to_original = original_key_map(model)
    from_original = {v: k for k, v in to_original.items()}
    unexpected = [k for k in state if k not in from_original]
    missing = [k for k in to_original.values() if k not in state]
    base_missing = [k for k in missing if not k.startswith(_CONDITION_PARTS)]
    if unexpected or base_missing:
        sample = (unexpected or base_missing)[0]
        raise InputError(
            f"--vae_path '{path}' is not a Wan2.1 VAE of this config ({'unexpected' if unexpected else 'missing'} key {sample})"
        )
    own = model.state_dict()
    for key, value in state.items():
        if value.shape != own[from_original[key]].shape:
            raise InputError(
                f"--vae_path '{path}': {key} has shape {tuple(value.shape)}, the model {tuple(own[from_original[key]].shape)}"
            )
    model.load_state_dict({from_original[k]: v for k, v in state.items()}, strict=False)
    if missing:
        logger.info("%d condition-encoder tensors start fresh (not in %s)", len(missing), path)
    return model


class ConditionalReconstruction(nn.Module):
    """``(gt, lq, mask) -> (x_hat, mu, logvar)`` through a conditional WanVAE: what DDP wraps and syncs.

    ``gt``/``lq`` are ``(B, 3, T, H, W)`` in [-1, 1] with ``T = 1 + 4k``, ``mask`` ``(B, T)`` (1 = input frame).
    ``mu, logvar`` are raw (un-normalised) posterior moments ``(B, 16, 1 + k, H/8, W/8)``; ``x_hat`` is the
    unclamped decode ``(B, 3, T, H, W)``.
    """

    def __init__(self, vae: WanVAE, freeze_encoder: bool) -> None:
        super().__init__()
        self.vae = vae
        self.freeze_encoder = freeze_encoder

    def forward(
        self, gt: torch.Tensor, lq: torch.Tensor, mask: torch.Tensor, generators: list | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``generators``: one per sample for the reparameterisation noise (None: the global RNG)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            mu, logvar = self.vae.encode_moments(gt)
        draws = generators or [None] * mu.shape[0]
        eps = torch.stack(
            [torch.randn(mu.shape[1:], generator=g, device=mu.device, dtype=mu.dtype) for g in draws]
        )
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.vae.decode_raw(z, condition=lq, mask=mask), mu, logvar


def _freeze(vae: WanVAE, freeze_encoder: bool, freeze_decoder: bool) -> None:
    auto = vae.autoencoder
    if freeze_encoder:
        auto.encoder.requires_grad_(False)
        auto.quant_conv.requires_grad_(False)
    if freeze_decoder:
        auto.decoder.requires_grad_(False)
        auto.post_quant_conv.requires_grad_(False)


def freeze_unused(module: ConditionalReconstruction, frames: int = 5, size: int = 16) -> list[str]:
    """Freeze trainable parameters that take no part in a forward pass (probed on a tiny clip), e.g. the
    condition encoder's last middle block that exists only for the checkpoint's keys. DDP then needs no
    unused-parameter search (the reference ran with ``find_unused_parameters``). Returns their names."""
    gt = torch.zeros(1, 3, frames, size, size)
    x_hat, mu, logvar = module(gt, gt, torch.ones(1, frames))
    (x_hat.sum() + mu.sum() + logvar.sum()).backward()
    unused = [name for name, p in module.named_parameters() if p.requires_grad and p.grad is None]
    for name, p in module.named_parameters():
        p.grad = None
        if name in unused:
            p.requires_grad_(False)
    return unused


def _frames(video: torch.Tensor) -> torch.Tensor:
    return rearrange(video.float(), "b c t h w -> (b t) c h w")


def _write_ema(model: nn.Module, folder: Path) -> None:
    save_original_state_dict(model, folder.with_name(folder.name + ".pth"))


def _read_ema(model: nn.Module, folder: Path) -> bool:
    path = folder.with_name(folder.name + ".pth")
    if not path.is_file():
        return False
    model.load_original_state_dict(load_state_dict_file(path))
    return True


def train_vae(args: argparse.Namespace) -> Path:
    """Run conditional-decoder training for parsed and validated ``args``; returns the output folder."""
    run = TrainingRun(args, name="train_vae")
    acc, device, dtype = run.accelerator, run.device, run.weight_dtype
    if run.zero_stage:
        raise InputError(
            "train_vae.py trains two models with two optimizers: use configs/accelerate/ddp.yaml, not DeepSpeed"
        )
    dataset = run.dataset()

    # nn.Module.to: diffusers' ModelMixin.to would warn about float32 modules that WanVAE does not have.
    vae = nn.Module.to(load_conditional_vae(args.vae_path, args.vae_config), dtype=torch.float32)
    _freeze(vae, args.freeze_encoder, args.freeze_decoder)
    module = ConditionalReconstruction(vae, args.freeze_encoder)
    unused = freeze_unused(module)
    if unused:
        logger.info(
            "%d parameter tensors never reach the loss and are frozen (e.g. %s)", len(unused), unused[0]
        )
    last_layer = vae.autoencoder.decoder.conv_out.weight
    if not last_layer.requires_grad and args.disc_weight > 0:
        logger.warning(
            "--freeze_decoder: no adaptive GAN weight without a trainable last layer; using --disc_weight as is"
        )
    discriminator = PatchDiscriminator(3, args.disc_ndf, args.disc_layers)
    perceptual = (
        PerceptualLoss.from_file(args.lpips_weights).to(device) if args.perceptual_weight > 0 else None
    )
    criterion = VAELoss(perceptual, args.perceptual_weight, args.kl_weight, args.disc_weight, args.disc_start)

    decays = ema_decays(args.ema_decay)
    ema = EMA(vae, decays if acc.is_main_process else [], device="cpu" if args.offload_ema else device)
    opt_g = run.adam(module.parameters(), weight_decay=args.adam_weight_decay, decoupled=False)
    opt_d = run.adam(discriminator.parameters(), weight_decay=args.adam_weight_decay, decoupled=False)
    model, disc, opt_g, opt_d = acc.prepare(module, discriminator, opt_g, opt_d)
    disc_module = acc.unwrap_model(disc)

    def judge(images: torch.Tensor) -> torch.Tensor:
        """D's logits with D's weights held constant: the generator's gradient reaches only the images."""
        weights = {name: p.detach() for name, p in disc_module.named_parameters()}
        return torch.func.functional_call(disc_module, weights, (images,))

    def save_extra(folder: Path) -> None:
        ema.save(folder, _write_ema)

    def load_extra(folder: Path) -> None:
        for decay in ema.load(folder, _read_ema):
            logger.warning("checkpoint has no EMA %s: it starts from the current weights", decay)

    def clips(batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gt = to_unit(batch["gt"], dtype)
        return gt, gather_lq(gt, batch["lq_source"]), batch["mask"].to(dtype)

    run.resume(load_extra)
    run.batches(dataset)
    run.start()
    while not run.done:
        step = run.state.global_step
        lr, disc_lr = run.lr(args.ref_lr), run.lr(args.disc_lr)
        run.set_lr(opt_g, lr)
        run.set_lr(opt_d, disc_lr)
        model.train()
        disc.eval()
        logs: dict[str, float] = {}
        for _ in range(run.gas):
            batch = run.next_batch()
            gt, lq, mask = clips(batch)
            with acc.accumulate(model):
                x_hat, mu, logvar = model(gt, lq, mask, run.sample_generators(batch, _REPARAMETERISE_G))
                loss, parts = criterion.generator(
                    _frames(gt), _frames(x_hat), mu, logvar, step, judge, last_layer
                )
                acc.backward(loss)
                grad_norm = run.clip_gradients(model)
                if grad_norm is not None:
                    logs["grad_norm"] = grad_norm
                opt_g.step()
                opt_g.zero_grad(set_to_none=True)
            for key, value in {"loss": loss.item(), **parts}.items():
                logs[key] = logs.get(key, 0.0) + value / run.gas
        if ema:
            ema.update(acc.unwrap_model(model).vae)
        # The discriminator steps every iteration on fresh batches (train_vae.py:538-595).
        adversarial = criterion.adversarial(step)
        disc.train()
        if adversarial:
            logs["d_loss"] = 0.0
        for _ in range(run.gas):
            batch = run.next_batch()
            if not all(bool(m.initialized) for m in disc_module.modules() if isinstance(m, ActNorm)):
                # ActNorm's data-dependent init sees real frames first, as in the reference.
                with torch.no_grad():
                    disc_module(_frames(to_unit(batch["gt"], dtype)))
            with acc.accumulate(disc):
                if adversarial:
                    gt, lq, mask = clips(batch)
                    with torch.no_grad():
                        x_hat = model(gt, lq, mask, run.sample_generators(batch, _REPARAMETERISE_D))[0]
                    logits = disc(torch.cat([_frames(gt), _frames(x_hat)]))  # one DDP forward
                    d_loss = criterion.discriminator(*logits.chunk(2))
                    acc.backward(d_loss)
                    logs["d_loss"] += d_loss.item() / run.gas
                else:
                    # The reference's loss is 0 * hinge here (vae_loss.py:126-127): gradients of exactly 0.
                    for p in disc_module.parameters():
                        p.grad = torch.zeros_like(p) if p.grad is None else p.grad.zero_()
                opt_d.step()
                opt_d.zero_grad(set_to_none=True)
        metrics = {key: run.reduce_mean(value) for key, value in sorted(logs.items())}
        run.end_step({**metrics, "lr": lr, "disc_lr": disc_lr}, save_extra)
    run.finish()
    return run.output_dir
