"""Inception-I3D (Carreira & Zisserman 2017), the feature network of FVD, with the public checkpoint's keys.

The module names are those of the widely used PyTorch port whose Kinetics-400 state dict is distributed as
``i3d_pretrained_400.pt`` (``Conv3d_1a_7x7.conv3d.weight``, ``Conv3d_1a_7x7.bn.running_mean``,
``Mixed_3b.b1b.conv3d.weight``, ..., ``logits.conv3d.bias``), so it loads unchanged.

Architecture facts that decide the numbers: TensorFlow "SAME" padding computed from the input size (zeros,
``pad // 2`` before), BatchNorm eps 1e-5 as the reference builds it (not the original TensorFlow model's 1e-3,
which moves FVD by 8-18 %), ReLU after every unit except the logits, max pools with the same
"SAME" rule, a final ``2 x 7 x 7`` average pool (stride 1), a 1x1x1 conv with bias to the class logits. On
16 frames of 224 x 224 that leaves one time step; the output is averaged over time and space, ``(B, C)``.

The channel widths are read from the checkpoint (:func:`config_from_state_dict`): the released file gives
the standard network, a tiny file saved in the same layout gives a tiny network, through the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .weights import I3D_WEIGHTS, check_keys, load_state_dict

_MIXED = (
    "Mixed_3b",
    "Mixed_3c",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "Mixed_5b",
    "Mixed_5c",
)
_BRANCHES = ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")
BN_EPS = 1e-5
BN_MOMENTUM = 0.001


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    (t0, t1), (h0, h1), (w0, w1) = (_same_padding(s, k, st) for s, k, st in zip(x.shape[2:], kernel, stride))
    return F.pad(x, (w0, w1, h0, h1, t0, t1))


class Unit3D(nn.Module):
    """SAME-padded 3-D conv, optional BatchNorm (eps 1e-5, momentum 0.001), optional ReLU."""

    def __init__(
        self, c_in: int, c_out: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn: bool = True, relu: bool = True
    ):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(c_in, c_out, self.kernel, stride=self.stride, padding=0, bias=not bn)
        # reference: metrics/fvd/pytorch_i3d.py:81 (the eps its published FVD numbers were computed with)
        self.bn = nn.BatchNorm3d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPoolSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max pool -> 1x1; concatenated."""

    def __init__(self, c_in: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3 = widths
        self.b0 = Unit3D(c_in, w0)
        self.b1a = Unit3D(c_in, w1a)
        self.b1b = Unit3D(w1a, w1b, kernel=(3, 3, 3))
        self.b2a = Unit3D(c_in, w2a)
        self.b2b = Unit3D(w2a, w2b, kernel=(3, 3, 3))
        self.b3a = MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(c_in, w3)
        self.out_channels = w0 + w1b + w2b + w3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


@dataclass(frozen=True)
class I3DConfig:
    """Channel widths: the stem convs, the six branch widths of each Mixed block, the number of classes."""

    stem: tuple[int, int, int] = (64, 64, 192)
    mixed: tuple[tuple[int, ...], ...] = field(
        default=(
            (64, 96, 128, 16, 32, 32),
            (128, 128, 192, 32, 96, 64),
            (192, 96, 208, 16, 48, 64),
            (160, 112, 224, 24, 64, 64),
            (128, 128, 256, 24, 64, 64),
            (112, 144, 288, 32, 64, 64),
            (256, 160, 320, 32, 128, 128),
            (256, 160, 320, 32, 128, 128),
            (384, 192, 384, 48, 128, 128),
        )
    )
    num_classes: int = 400
    in_channels: int = 3


def tiny_config() -> I3DConfig:
    """A few-thousand-parameter I3D of the same structure, for tests."""
    return I3DConfig(stem=(4, 4, 8), mixed=tuple((2, 2, 3, 1, 2, 2) for _ in _MIXED), num_classes=10)


class InceptionI3D(nn.Module):
    """I3D up to the logits; ``forward((B, 3, T, H, W) in [-1, 1]) -> (B, num_classes)``."""

    def __init__(self, config: I3DConfig = I3DConfig()):
        super().__init__()
        self.config = config
        s0, s1, s2 = config.stem
        self.Conv3d_1a_7x7 = Unit3D(config.in_channels, s0, kernel=(7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(s0, s1)
        self.Conv3d_2c_3x3 = Unit3D(s1, s2, kernel=(3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        pools_before = {"Mixed_4b": ((3, 3, 3), (2, 2, 2)), "Mixed_5b": ((2, 2, 2), (2, 2, 2))}
        self.blocks = []
        c = s2
        for name, widths in zip(_MIXED, config.mixed):
            if name in pools_before:
                pool_name = "MaxPool3d_4a_3x3" if name == "Mixed_4b" else "MaxPool3d_5a_2x2"
                setattr(self, pool_name, MaxPoolSame(*pools_before[name]))
                self.blocks.append(pool_name)
            block = InceptionBlock(c, tuple(widths))
            setattr(self, name, block)
            self.blocks.append(name)
            c = block.out_channels
        self.logits = Unit3D(c, config.num_classes, bn=False, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in (
            "Conv3d_1a_7x7",
            "MaxPool3d_2a_3x3",
            "Conv3d_2b_1x1",
            "Conv3d_2c_3x3",
            "MaxPool3d_3a_3x3",
        ):
            x = getattr(self, name)(x)
        for name in self.blocks:
            x = getattr(self, name)(x)
        x = F.avg_pool3d(x, kernel_size=(2, 7, 7), stride=1)
        return self.logits(x).mean(dim=(2, 3, 4))

    @classmethod
    def from_file(cls, path: str | Path, flag: str = I3D_WEIGHTS.flag) -> InceptionI3D:
        state = load_state_dict(path, flag)
        net = cls(config_from_state_dict(state, flag, path))
        expected = {k: v.shape for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
        check_keys(state, expected, flag, path, "an Inception-I3D state dict")
        net.load_state_dict({k: state[k] for k in expected}, strict=False)
        return net.eval()


def config_from_state_dict(
    state: dict[str, torch.Tensor], flag: str = "", path: str | Path = ""
) -> I3DConfig:
    """The :class:`I3DConfig` whose parameter shapes are those of ``state``."""

    def out_channels(key: str) -> int:
        if key not in state:
            raise InputError(f"{flag} {path} is not an Inception-I3D state dict (no {key})")
        return int(state[key].shape[0])

    stem = tuple(
        out_channels(f"{n}.conv3d.weight") for n in ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3")
    )
    mixed = tuple(tuple(out_channels(f"{m}.{b}.conv3d.weight") for b in _BRANCHES) for m in _MIXED)
    in_channels = int(state["Conv3d_1a_7x7.conv3d.weight"].shape[1])
    return I3DConfig(
        stem=stem, mixed=mixed, num_classes=out_channels("logits.conv3d.weight"), in_channels=in_channels
    )


__all__ = ["I3DConfig", "InceptionI3D", "config_from_state_dict", "tiny_config"]
