"""Exponential moving averages of a model's weights, several decays at once (REFERENCE_SPEC 7.2).

Each decay keeps a full fp32 copy of the model (on the training device, or in CPU memory with
``--offload_ema``), updated after every optimizer step as ``ema = decay * ema + (1 - decay) * weights``
from the training weights as they are (bf16 under DeepSpeed bf16, fp32 otherwise), like the reference.
Buffers are copied, not averaged. Copies are written per decay under ``ema-<decay>`` in the checkpoint by a
caller-given writer (the DiT: a diffusers folder ``ema-<decay>/transformer/``; the VAE: an original-layout
``ema-<decay>.pth``), so an EMA is directly loadable by the inference code.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = ["EMA", "ema_name"]


def ema_name(decay: float) -> str:
    """``ema-0.995``: the checkpoint entry of one decay (the reference's naming)."""
    return f"ema-{decay}"


class EMA:
    """fp32 moving averages of ``model`` for each of ``decays``, initialised to the model's current weights."""

    def __init__(
        self, model: nn.Module, decays: Sequence[float], device: torch.device | str | None = None
    ) -> None:
        self.decays = [float(d) for d in decays]
        self.models: dict[float, nn.Module] = {}
        for decay in self.decays:
            # nn.Module.to: diffusers' ModelMixin.to warns about float32 modules on any dtype cast, even none.
            average = nn.Module.to(copy.deepcopy(model), device=device, dtype=torch.float32)
            self.models[decay] = average.requires_grad_(False).eval()

    def __bool__(self) -> bool:
        return bool(self.decays)

    def __iter__(self) -> Iterator[tuple[float, nn.Module]]:
        return iter(self.models.items())

    @torch.no_grad()
    def update(self, source: nn.Module | Mapping[str, torch.Tensor]) -> None:
        """One averaging step from ``source``: a module with the same parameter names, or its state dict
        (e.g. ``accelerator.get_state_dict(model)``, which gathers ZeRO-3 shards)."""
        if isinstance(source, nn.Module):
            tensors = dict(source.named_parameters())
            tensors.update(source.named_buffers())
        else:
            tensors = dict(source)
        for decay, average in self.models.items():
            for name, param in average.named_parameters():
                value = tensors[name].detach().to(device=param.device, dtype=torch.float32)
                param.mul_(decay).add_(value, alpha=1.0 - decay)
            for name, buffer in average.named_buffers():
                if name in tensors:
                    buffer.copy_(tensors[name].detach().to(device=buffer.device, dtype=buffer.dtype))

    def save(self, folder: str | Path, write: Callable[[nn.Module, Path], None]) -> None:
        """``write(average, <folder>/ema-<decay>)`` for every decay."""
        for decay, average in self.models.items():
            write(average, Path(folder) / ema_name(decay))

    def load(self, folder: str | Path, read: Callable[[nn.Module, Path], bool]) -> list[float]:
        """``read(average, <folder>/ema-<decay>)`` for every decay; ``read`` returns False when the checkpoint
        has no copy for that decay (the average then keeps its current value). Returns the decays not found."""
        return [
            decay
            for decay, average in self.models.items()
            if not read(average, Path(folder) / ema_name(decay))
        ]
