"""LPIPS (AlexNet, v0.1) and FloLPIPS, with every weight read from a local file.

LPIPS is the ``lpips`` package's network (so the numbers are the package's), built with a random trunk
(``pnet_rand=True``: building it downloads nothing) into which the ImageNet AlexNet weights are loaded from
the user's file. The LPIPS v0.1 linear heads ship inside the ``lpips`` package; a weight file that also
holds heads (``lin0.model.1.weight`` ...) overrides them.

FloLPIPS (Danier et al. 2022) re-weights the LPIPS distance maps by where the motion of the prediction
differs from the motion of the ground truth. The reference computes it for a frame between two key frames
``I0`` and ``I1``: with PWC-Net flows ``F(a, b)``, the weight map of ``I0`` is
``|F(gt, I0) - F(pred, I0)|`` (per-pixel magnitude, bilinearly resized to each LPIPS layer and normalised to
sum to 1); the value is the mean of the ``I0`` and ``I1`` versions.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import InputError
from .image import to_unit
from .pwcnet import PWCNet
from .weights import LPIPS_WEIGHTS, check_keys, load_state_dict

# torchvision ``alexnet().features`` index of each conv -> the lpips ``net.slice{k}`` that holds it.
_ALEX_CONV_SLICE = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


def lpips_keys_from_any(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an AlexNet/LPIPS state dict to the ``lpips.LPIPS`` layout.

    Accepts torchvision's AlexNet (``features.{i}.weight``; ``classifier.*`` ignored), the lpips layout
    (``net.slice{k}.{i}.weight``) and heads as ``lin{k}.model.1.weight`` or ``lins.{k}.model.1.weight``.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "features" and len(parts) == 3 and int(parts[1]) in _ALEX_CONV_SLICE:
            out[f"net.slice{_ALEX_CONV_SLICE[int(parts[1])]}.{parts[1]}.{parts[2]}"] = value
        elif parts[0] == "net" and parts[1].startswith("slice"):
            out[key] = value
        elif parts[0].startswith("lin") and parts[0] != "lins":
            out[key] = value
        elif parts[0] == "lins":
            out[f"lin{parts[1]}." + ".".join(parts[2:])] = value
    return out


class LPIPSMetric(torch.nn.Module):
    """LPIPS AlexNet v0.1 per frame on ``(B, 3, H, W)`` frames (uint8, or float in [0, 1] quantised).

    Both frames go through ``lpips.LPIPS(...)(pred, gt, normalize=True)``, i.e. [0, 1] -> [-1, 1] and the
    package's scaling layer, exactly the reference's call.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model.eval().requires_grad_(False)

    @classmethod
    def from_file(cls, path: str | Path, flag: str = LPIPS_WEIGHTS.flag) -> LPIPSMetric:
        model = build_lpips_alex()
        expected = {k: v.shape for k, v in model.state_dict().items() if k.startswith("net.")}
        state = lpips_keys_from_any(load_state_dict(path, flag))
        check_keys(state, expected, flag, path, "an AlexNet trunk (torchvision 'features.N' or lpips keys)")
        heads = {k: v.shape for k, v in model.state_dict().items() if k.startswith("lin") and k[3].isdigit()}
        if any(k in state for k in heads):
            check_keys(state, heads, flag, path, "a complete set of LPIPS heads")
        model.load_state_dict(state, strict=False)
        return cls(model)

    @torch.no_grad()
    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return self.model(to_unit(pred), to_unit(gt), normalize=True).flatten()

    @torch.no_grad()
    def layer_distance_maps(self, pred01: torch.Tensor, gt01: torch.Tensor) -> list[torch.Tensor]:
        """Per layer, the head-weighted squared feature difference ``(B, 1, h_l, w_l)`` (inputs in [0, 1]).

        The spatial mean of each map summed over layers is LPIPS; FloLPIPS weights the maps instead.
        """
        import lpips

        m = self.model
        f0 = m.net(m.scaling_layer(2 * pred01 - 1))
        f1 = m.net(m.scaling_layer(2 * gt01 - 1))
        return [
            m.lins[k]((lpips.normalize_tensor(a) - lpips.normalize_tensor(b)) ** 2)
            for k, (a, b) in enumerate(zip(f0, f1))
        ]


def build_lpips_alex() -> torch.nn.Module:
    """``lpips.LPIPS`` AlexNet v0.1 with a random trunk and the package's bundled heads, without a download."""
    try:
        import lpips
    except ImportError as exc:  # pragma: no cover - lpips is a declared dependency of evaluation
        raise InputError("LPIPS needs the 'lpips' package: pip install lpips") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation notes about `pretrained=`
        return lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False).eval()


def flow_weighted_average(dist_map: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sum of ``dist_map`` (B, 1, h, w) weighted by the normalised magnitude of ``flow`` (B, 2, H, W).

    The flow is bilinearly resized to ``(h, w)`` (vectors are not rescaled, as in FloLPIPS). Where the
    weights sum to zero (prediction and ground truth move identically everywhere) the reference divides 0
    by 0; we fall back to uniform weights, which makes the value that frame's plain LPIPS layer mean.
    """
    h, w = dist_map.shape[-2:]
    flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
    magnitude = flow.pow(2).sum(dim=1, keepdim=True).sqrt()
    total = magnitude.sum(dim=(1, 2, 3), keepdim=True)
    uniform = torch.full_like(magnitude, 1.0 / (h * w))
    weight = torch.where(total > 0, magnitude / total.clamp_min(torch.finfo(total.dtype).tiny), uniform)
    return (dist_map * weight).sum(dim=(1, 2, 3))


class FloLPIPSMetric(torch.nn.Module):
    """FloLPIPS per frame for predictions between key frames ``i0`` and ``i1`` (all ``(B, 3, H, W)``).

    As in the reference the frames are not re-quantised here beyond the 8-bit grid they already live on,
    and PWC-Net sees them as RGB in [0, 1].
    """

    def __init__(self, lpips_metric: LPIPSMetric, flownet: PWCNet):
        super().__init__()
        self.lpips = lpips_metric
        self.flownet = flownet.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(
        self, pred: torch.Tensor, gt: torch.Tensor, i0: torch.Tensor, i1: torch.Tensor
    ) -> torch.Tensor:
        pred, gt, i0, i1 = (to_unit(t) for t in (pred, gt, i0, i1))
        maps = self.lpips.layer_distance_maps(gt, pred)
        values = []
        for key in (i0, i1):
            both = self.flownet(torch.cat([gt, pred]), torch.cat([key, key]))
            flow_gt, flow_pred = both.chunk(2)
            diff = flow_gt - flow_pred
            values.append(sum(flow_weighted_average(m, diff) for m in maps))
        return (values[0] + values[1]) / 2


__all__ = [
    "FloLPIPSMetric",
    "LPIPSMetric",
    "build_lpips_alex",
    "flow_weighted_average",
    "lpips_keys_from_any",
]
