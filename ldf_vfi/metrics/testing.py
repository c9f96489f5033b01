"""Random weight files in the official layouts, for tests and smoke runs of the evaluation pipeline.

The numbers these give are meaningless; they exercise the same loaders, key mappings and maths as the real
files. ``write_random_metric_weights(folder)`` fills ``folder`` with the file names ``--weights_dir``
recognises:

- ``alexnet-owt-7be5be79.pth``: torchvision AlexNet ``features.*`` (no classifier; LPIPS heads come from the
  ``lpips`` package)
- ``network-default.pytorch``: PWC-Net with the original ``module*`` key names
- ``i3d_pretrained_400.pt``: a *tiny* I3D (:func:`ldf_vfi.metrics.i3d.tiny_config`) in the public key layout
"""

from __future__ import annotations

from pathlib import Path

import torch

from .i3d import InceptionI3D, tiny_config
from .pwcnet import PWCNet

# torchvision AlexNet ``features``: (index, in, out, kernel).
_ALEX_CONVS = ((0, 3, 64, 11), (3, 64, 192, 5), (6, 192, 384, 3), (8, 384, 256, 3), (10, 256, 256, 3))


def random_alexnet_features(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random AlexNet trunk in torchvision's key layout (He-scaled so activations stay in range)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for index, c_in, c_out, k in _ALEX_CONVS:
        std = (2.0 / (c_in * k * k)) ** 0.5
        state[f"features.{index}.weight"] = torch.randn(c_out, c_in, k, k, generator=g) * std
        state[f"features.{index}.bias"] = torch.randn(c_out, generator=g) * 0.01
    return state


def random_pwcnet_state(seed: int = 0, original_names: bool = True) -> dict[str, torch.Tensor]:
    """A random PWC-Net state dict; ``original_names`` uses the checkpoint's ``module`` prefixes."""
    torch.manual_seed(seed)
    state = PWCNet().state_dict()
    if original_names:
        state = {k.replace("net", "module"): v for k, v in state.items()}
    return state


def random_i3d_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny random I3D (with non-trivial BatchNorm statistics) in the public key layout."""
    torch.manual_seed(seed)
    net = InceptionI3D(tiny_config())
    g = torch.Generator().manual_seed(seed + 1)
    for module in net.modules():
        if isinstance(module, torch.nn.Conv3d):  # He init keeps activations alive through the deep stack
            fan_in = module.weight[0].numel()
            module.weight.data.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=g)
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.normal_(0.0, 0.1, generator=g)
            module.running_var.uniform_(0.5, 1.5, generator=g)
    return net.state_dict()


def write_random_metric_weights(folder: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write the three files into ``folder``; returns ``{"lpips": path, "pwcnet": path, "i3d": path}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "lpips": folder / "alexnet-owt-7be5be79.pth",
        "pwcnet": folder / "network-default.pytorch",
        "i3d": folder / "i3d_pretrained_400.pt",
    }
    torch.save(random_alexnet_features(seed), paths["lpips"])
    torch.save(random_pwcnet_state(seed), paths["pwcnet"])
    torch.save(random_i3d_state(seed), paths["i3d"])
    return paths


__all__ = [
    "random_alexnet_features",
    "random_i3d_state",
    "random_pwcnet_state",
    "write_random_metric_weights",
]
