"""Losses of the conditional VAE decoder training (REFERENCE_SPEC 8; the taming/LDM "KL + LPIPS + GAN" recipe).

On frames as images (``M = B * T`` images of ``3 x H x W``) with ``r = 65536 / (H W)`` (a resolution
normaliser, 1 at 256 x 256):

* ``L_nll = r / M * sum_images(|x - x_hat|_1 + 3 H W w_p LPIPS(x, x_hat))`` (the per-image LPIPS value counts
  once per pixel element);
* ``L_kl = r * mean(KL(N(mu, sigma^2) || N(0, 1)))`` over every latent element;
* ``L_g = -mean(D(x_hat))`` with the adaptive weight ``lambda = |grad L_nll| / (|grad L_g| + 1e-4)`` on the
  decoder's last layer, clamped to [0, 1e4], times ``--disc_weight``; active from step ``--disc_start``;
* generator total ``L_nll + w_kl L_kl + lambda L_g``; discriminator hinge
  ``(mean relu(1 - D(x)) + mean relu(1 + D(x_hat))) / 2``.

LPIPS is the ``lpips`` package's AlexNet v0.1 network whose ImageNet trunk is read from a file the user names
(nothing is downloaded); its feature normalisation takes the square root of ``sum + 1e-8``, the reference's
fix against NaN gradients at zero features, without patching the ``lpips`` module globally.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PerceptualLoss",
    "VAELoss",
    "adaptive_gan_weight",
    "hinge_d_loss",
    "kl_divergence",
]


class PerceptualLoss(nn.Module):
    """LPIPS distance per image, ``(M, 3, H, W)`` pairs in [-1, 1] -> ``(M, 1, 1, 1)``; frozen, eval mode."""

    def __init__(self, network: nn.Module, eps: float = 1e-8) -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.eps = eps

    @classmethod
    def from_file(cls, path: str | Path) -> PerceptualLoss:
        """``lpips.LPIPS`` AlexNet v0.1 with the package's heads and the ImageNet trunk read from ``path``
        (torchvision or lpips key layout; the evaluation's loader, so both use the same network)."""
        from ..metrics.perceptual import LPIPSMetric

        return cls(LPIPSMetric.from_file(path, flag="--lpips_weights").model)

    def _unit(self, features: torch.Tensor) -> torch.Tensor:
        return features / torch.sqrt(features.pow(2).sum(dim=1, keepdim=True) + self.eps)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        net = self.network
        fx, fy = net.net(net.scaling_layer(x)), net.net(net.scaling_layer(y))
        total = 0.0
        for head, a, b in zip(net.lins, fx, fy):
            total = total + head((self._unit(a) - self._unit(b)).pow(2)).mean(dim=(2, 3), keepdim=True)
        return total


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Element-wise ``KL(N(mu, exp(logvar)) || N(0, 1))``."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def adaptive_gan_weight(
    nll_loss: torch.Tensor,
    g_loss: torch.Tensor,
    last_layer: torch.Tensor,
    scale: float,
    max_weight: float = 1e4,
) -> torch.Tensor:
    """``scale * clamp(|d nll / d W| / (|d g / d W| + 1e-4), 0, 1e4)`` for the last layer ``W``, detached:
    balances the adversarial gradient against the reconstruction gradient where they meet the output."""
    nll_grad = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    weight = nll_grad.norm() / (g_grad.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach() * scale


class VAELoss:
    """The generator and discriminator objectives; ``step`` is the optimizer step the update belongs to."""

    def __init__(
        self,
        perceptual: PerceptualLoss | None,
        perceptual_weight: float = 1.0,
        kl_weight: float = 1e-6,
        disc_weight: float = 0.5,
        disc_start: int = 50001,  # reference: train_vae.py:78
    ) -> None:
        self.perceptual = perceptual
        self.perceptual_weight = perceptual_weight if perceptual is not None else 0.0
        self.kl_weight = kl_weight
        self.disc_weight = disc_weight
        self.disc_start = disc_start

    def adversarial(self, step: int) -> bool:
        """Whether the GAN terms are on: from ``disc_start``. Before, the reference multiplies them by 0
        (``vae_loss.py:97-99, 126-127``): the generator's loss is unchanged, and the discriminator's zero-loss
        step is what :func:`~ldf_vfi.training.vae_decoder.train_vae` replays without the passes."""
        return step >= self.disc_start and self.disc_weight > 0

    def generator(
        self,
        x: torch.Tensor,
        x_hat: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        step: int,
        discriminator: Callable[[torch.Tensor], torch.Tensor] | None = None,
        last_layer: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Generator loss for images ``x``, ``x_hat`` ``(M, 3, H, W)`` in [-1, 1] and the posterior; returns
        the loss and scalar logs."""
        images = x.shape[0]
        ratio = 65536.0 / (x.shape[-2] * x.shape[-1])
        rec = (x - x_hat).abs()
        nll = rec
        p = torch.zeros((), device=x.device)
        if self.perceptual_weight > 0:
            p = self.perceptual(x, x_hat)
            nll = rec + self.perceptual_weight * p
        nll_loss = nll.sum() / images * ratio
        kl = kl_divergence(mu.float(), logvar.float()).mean() * ratio
        loss = nll_loss + self.kl_weight * kl
        logs = {"rec": rec.mean().item(), "lpips": p.mean().item(), "kl": kl.item()}
        if self.adversarial(step) and discriminator is not None:
            g_loss = -discriminator(x_hat).mean()
            if last_layer is not None and last_layer.requires_grad:
                weight = adaptive_gan_weight(nll_loss, g_loss, last_layer, self.disc_weight)
            else:
                weight = torch.tensor(self.disc_weight, device=x.device)
            loss = loss + weight * g_loss
            logs.update(g_loss=g_loss.item(), d_weight=weight.item())
        return loss, logs

    def discriminator(self, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
        return hinge_d_loss(logits_real, logits_fake)
