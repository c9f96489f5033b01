"""PWC-Net optical flow (Sun et al. 2018) as FloLPIPS uses it, in plain PyTorch (no CUDA extension).

The module and attribute names are those of the public ``network-default.pytorch`` checkpoint of
sniklaus/pytorch-pwc after its ``module`` -> ``net`` rename (``netExtractor.netOne.0.weight``,
``netSix.netOne.0.weight``, ``netTwo.netUpflow.weight``, ``netRefiner.netMain.0.weight`` ...), so that file
loads unchanged. The cost volume, which the original computes with a cupy kernel, is computed here with
81 shifted products: for a displacement ``(dx, dy)`` in [-4, 4]^2 (channel ``(dy + 4) * 9 + (dx + 4)``)
the value is the channel mean of ``first[y, x] * second[y + dy, x + dx]``, zero outside the image.

Forward pass (as FloLPIPS calls it): RGB frames in [0, 1] are bilinearly resized to multiples of 64, six
feature levels are extracted, flow is estimated coarse to fine from level 6 to level 2 (each level warps
the second features by the upsampled flow, scaled by 20 / 2^level), refined by a dilated context network,
multiplied by 20, resized back to the input size and rescaled per axis.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .weights import PWCNET_WEIGHTS, check_keys, load_state_dict

MAX_DISPLACEMENT = 4
_CORR = (2 * MAX_DISPLACEMENT + 1) ** 2  # 81 cost-volume channels
_PYRAMID = (3, 16, 32, 64, 96, 128, 196)  # feature channels of levels 0 (image) .. 6
_DENSE = (128, 128, 96, 64, 32)  # outputs of the five densely connected decoder convs
_LEVEL_NAMES = {2: "netTwo", 3: "netThr", 4: "netFou", 5: "netFiv", 6: "netSix"}


def _leaky() -> nn.LeakyReLU:
    return nn.LeakyReLU(negative_slope=0.1, inplace=False)


def correlation(
    first: torch.Tensor, second: torch.Tensor, max_displacement: int = MAX_DISPLACEMENT
) -> torch.Tensor:
    """Cost volume ``(B, (2d+1)^2, H, W)``: channel means of products with shifted ``second`` (zero padded)."""
    d = max_displacement
    h, w = first.shape[-2:]
    padded = F.pad(second, (d, d, d, d))
    out = []
    for dy in range(2 * d + 1):
        for dx in range(2 * d + 1):
            out.append((first * padded[:, :, dy : dy + h, dx : dx + w]).mean(dim=1))
    return torch.stack(out, dim=1)


def backwarp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at ``x + flow`` (bilinear, ``align_corners=False``); pixels that sample outside
    the image (a bilinear footprint weight below 0.999) are zeroed, as in the original.

    Faithful to the FloLPIPS copy of PWC-Net, including its quirk: the grid holds pixel centres
    (``align_corners=False``) but the flow is normalised by ``(W - 1) / 2``, so a flow of ``u`` pixels moves
    ``u * W / (W - 1)`` pixels. The released weights were used this way by the reference metric.
    """
    b, _, h, w = flow.shape
    xs = torch.linspace(-1.0 + 1.0 / w, 1.0 - 1.0 / w, w, device=flow.device, dtype=flow.dtype)
    ys = torch.linspace(-1.0 + 1.0 / h, 1.0 - 1.0 / h, h, device=flow.device, dtype=flow.dtype)
    base = torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)], dim=0)[None]
    scale = torch.tensor([(w - 1.0) / 2.0, (h - 1.0) / 2.0], device=flow.device, dtype=flow.dtype)
    grid = (base + flow / scale.view(1, 2, 1, 1)).permute(0, 2, 3, 1)
    ones = image.new_ones(b, 1, h, w)
    sampled = F.grid_sample(
        torch.cat([image, ones], 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    mask = (sampled[:, -1:] > 0.999).to(image.dtype)
    return sampled[:, :-1] * mask


class Extractor(nn.Module):
    """Six levels of three 3x3 convs (the first with stride 2), LeakyReLU 0.1 after each."""

    def __init__(self):
        super().__init__()
        for level, name in enumerate(("netOne", "netTwo", "netThr", "netFou", "netFiv", "netSix"), start=1):
            c_in, c_out = _PYRAMID[level - 1], _PYRAMID[level]
            layers = []
            for i in range(3):
                layers += [
                    nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, stride=2 if i == 0 else 1, padding=1),
                    _leaky(),
                ]
            setattr(self, name, nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for name in ("netOne", "netTwo", "netThr", "netFou", "netFiv", "netSix"):
            x = getattr(self, name)(x)
            feats.append(x)
        return feats


def _decoder_input_channels(level: int) -> int:
    """Channels entering the decoder of ``level``: cost volume, plus (below level 6) features, flow, upfeat."""
    return _CORR if level == 6 else _CORR + _PYRAMID[level] + 2 + 2


class Decoder(nn.Module):
    """Flow estimator of one pyramid level: cost volume -> five dense convs -> 2-channel flow."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level
        c = _decoder_input_channels(level)
        if level < 6:
            c_prev = _decoder_input_channels(level + 1) + sum(_DENSE)
            self.netUpflow = nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1)
            self.netUpfeat = nn.ConvTranspose2d(c_prev, 2, 4, stride=2, padding=1)
            # The flow is kept at 1/20 scale; warping at level l needs pixels of that level: 20 / 2^l.
            self.backwarp_scale = 20.0 / 2**level
        for name, c_out in zip(("netOne", "netTwo", "netThr", "netFou", "netFiv"), _DENSE):
            setattr(self, name, nn.Sequential(nn.Conv2d(c, c_out, 3, padding=1), _leaky()))
            c += c_out
        self.netSix = nn.Sequential(nn.Conv2d(c, 2, 3, padding=1))

    def forward(self, first: torch.Tensor, second: torch.Tensor, previous: dict | None) -> dict:
        if previous is None:
            feat = F.leaky_relu(correlation(first, second), 0.1)
        else:
            flow = self.netUpflow(previous["flow"])
            upfeat = self.netUpfeat(previous["feat"])
            volume = F.leaky_relu(correlation(first, backwarp(second, flow * self.backwarp_scale)), 0.1)
            feat = torch.cat([volume, first, flow, upfeat], 1)
        for name in ("netOne", "netTwo", "netThr", "netFou", "netFiv"):
            feat = torch.cat([getattr(self, name)(feat), feat], 1)
        return {"flow": self.netSix(feat), "feat": feat}


class Refiner(nn.Module):
    """Context network: seven 3x3 convs with dilations 1, 2, 4, 8, 16, 1, 1 on the level-2 features."""

    def __init__(self):
        super().__init__()
        c_in = _decoder_input_channels(2) + sum(_DENSE)
        spec = [(128, 1), (128, 2), (128, 4), (96, 8), (64, 16), (32, 1), (2, 1)]
        layers = []
        for i, (c_out, dilation) in enumerate(spec):
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation))
            if i < len(spec) - 1:
                layers.append(_leaky())
            c_in = c_out
        self.netMain = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.netMain(x)


class PWCNet(nn.Module):
    """PWC-Net; ``forward(first, second)`` returns the flow ``(B, 2, H, W)`` in pixels from first to second."""

    def __init__(self):
        super().__init__()
        self.netExtractor = Extractor()
        for level, name in _LEVEL_NAMES.items():
            setattr(self, name, Decoder(level))
        self.netRefiner = Refiner()

    @classmethod
    def from_file(cls, path: str | Path, flag: str = PWCNET_WEIGHTS.flag) -> PWCNet:
        net = cls()
        state = {k.replace("module", "net"): v for k, v in load_state_dict(path, flag).items()}
        expected = {k: v.shape for k, v in net.state_dict().items()}
        check_keys(state, expected, flag, path, "a PWC-Net state dict (sniklaus/pytorch-pwc layout)")
        net.load_state_dict({k: state[k] for k in expected})
        return net.eval()

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        h, w = first.shape[-2:]
        hp, wp = int(math.ceil(h / 64.0) * 64), int(math.ceil(w / 64.0) * 64)
        first = F.interpolate(first, size=(hp, wp), mode="bilinear", align_corners=False)
        second = F.interpolate(second, size=(hp, wp), mode="bilinear", align_corners=False)
        feats1, feats2 = self.netExtractor(first), self.netExtractor(second)
        estimate = None
        for level in (6, 5, 4, 3, 2):
            decoder = getattr(self, _LEVEL_NAMES[level])
            estimate = decoder(feats1[level - 1], feats2[level - 1], estimate)
        flow = estimate["flow"] + self.netRefiner(estimate["feat"])
        flow = 20.0 * F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
        scale = torch.tensor([w / wp, h / hp], device=flow.device, dtype=flow.dtype)
        return flow * scale.view(1, 2, 1, 1)


__all__ = ["PWCNet", "backwarp", "correlation"]
