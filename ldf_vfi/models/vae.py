"""The Wan2.1 causal 3-D VAE of LDF-VFI, with the optional conditional decoder ("cond v2").

One module serves both released checkpoints (REFERENCE_SPEC.md section 3):

* ``WanVAE()`` is the plain Wan2.1 VAE: 16 latent channels, 8x spatial and 4x temporal compression
  (``1 + 4k`` frames -> ``1 + k`` latent frames), causal convolutions with a per-conv feature cache so a clip
  can be processed in time chunks. It loads ``Wan2.1_VAE.pth`` as it is.
* ``WanVAE(conditional=True)`` adds the condition encoder and the 19 zero-initialised 1x1x1 convolutions of
  ``Wan2.1_VAE_cond_v2.pth``: the decoder then also receives multi-scale features of the nearest-upsampled
  low-frame-rate video and its mask (spec 3.3). Encoder, ``conv1``/``conv2`` and decoder are the Wan2.1 ones.

Why diffusers' ``AutoencoderKLWan`` is the base
------------------------------------------------
The network is *not* written again here: ``WanVAE.autoencoder`` is a stock ``diffusers.AutoencoderKLWan``.
Measured (VAE_ON_DIFFUSERS.md): with a key rename it loads every key of ``Wan2.1_VAE.pth`` strictly and
matches the original encode/decode within 3e-6 in fp32, with the same 2-frame feature cache, the same
1, 4, 4, ... encode chunks and one-latent-frame decode steps. Reusing it gives us a maintained network, the
diffusers export for free (``vae.autoencoder.save_pretrained``) and only four things to own:

1. the key mapping between the original ``.pth`` names and ours (``original_key_map``; tested against
   a key list written from the spec and against diffusers' own converter);
2. the time loops (``encode_moments``/``decode_raw``): diffusers' ``decode`` always clamps and its
   ``latent_dist`` draws its own noise, while the reference decodes unclamped at model level and samples
   ``mu + exp(logvar / 2) * eps`` with the caller's RNG;
3. the conditional decoder: a ``ConditionEncoder`` built from diffusers' blocks plus the zero convs, whose
   features are added to the outputs of 19 decoder submodules through forward hooks that live only for
   the duration of one decode call (so copies of the module never share hook state);
4. one numeric detail: diffusers' RMS norm normalises bf16 input in fp32, the reference in the input dtype;
   with ``norm_in_input_dtype=True`` (default, faithful) the reference arithmetic is used. In fp32 both are
   the same computation.

The price is a dependency on diffusers' module structure (``conv_in``, ``mid_block``, ``up_blocks`` ...):
pinned to 0.42 in pyproject and guarded by the tests.

Latent normalisation (spec 3.1) lives in ``LATENTS_MEAN``/``LATENTS_STD`` and is applied in the
reference's reciprocal form: ``z = (z_raw - mean) * (1 / std)`` and ``z_raw = z / (1 / std) + mean``, with the
constants built directly in the compute dtype (bf16 at inference), as the reference does.

Shapes: videos are ``(B, 3, T, H, W)`` in [-1, 1]; latents ``(B, 16, T', H/8, W/8)`` with
``T' = 1 + (T - 1) / 4``. The spatial/temporal tiling of spec 2 lives in ``tiling.py``;
``WanVAE.tiled_encode``/``tiled_decode`` are shortcuts to it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.autoencoder_kl_wan import (
    WanAttentionBlock,
    WanCausalConv3d,
    WanMidBlock,
    WanResample,
    WanResidualBlock,
    WanRMS_norm,
)
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from ..errors import InputError, first_line
from . import tiling as _tiling

__all__ = [
    "LATENTS_MEAN",
    "LATENTS_STD",
    "CausalCache",
    "CheckpointMismatchError",
    "ConditionEncoder",
    "WanVAE",
    "latent_stats",
    "load_state_dict_file",
    "original_key_map",
    "save_original_state_dict",
    "tiny_config",
    "tiny_vae",
]

# Per-channel statistics of Wan2.1 latents (spec 3.1). The only copy of these numbers in the package.
LATENTS_MEAN: tuple[float, ...] = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
LATENTS_STD: tuple[float, ...] = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip

# Frames of the first causal chunk and of every later chunk (the VAE's 4x temporal compression).
_FIRST_CHUNK = 1
_CHUNK = 4


def latent_stats(dtype: torch.dtype, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """``(mean, inv_std)``, each ``(1, 16, 1, 1, 1)``, built in ``dtype`` the way the reference builds them.

    The reference creates both tensors directly in the compute dtype (bf16 at inference) and takes the
    reciprocal in that dtype; doing the same keeps normalised latents bit-compatible.
    """
    mean = torch.tensor(LATENTS_MEAN, dtype=dtype, device=device)
    inv_std = 1.0 / torch.tensor(LATENTS_STD, dtype=dtype, device=device)
    return mean.view(1, -1, 1, 1, 1), inv_std.view(1, -1, 1, 1, 1)


def tiny_config(**overrides: object) -> dict:
    """A few-thousand-parameter config for tests and CPU demos (z_dim stays 16 for the latent statistics).

    ``num_res_blocks=1`` on purpose: it exercises the key mapping for a stage length other than the
    released one.
    """
    cfg = dict(
        base_dim=4, z_dim=16, dim_mult=(1, 2, 4, 4), num_res_blocks=1, temperal_downsample=(False, True, True)
    )
    cfg.update(overrides)
    return cfg


def tiny_vae(conditional: bool = False, seed: int = 0, **overrides: object) -> WanVAE:
    """A randomly initialised ``WanVAE`` of ``tiny_config()``, built with ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return WanVAE(**tiny_config(conditional=conditional, **overrides)).eval()


# ---------------------------------------------------------------------------------------------------------
# Building blocks that are ours


class _RMSNormInputDtype(WanRMS_norm):
    """diffusers' ``WanRMS_norm`` computed like the reference: ``F.normalize`` in the input dtype.

    Same parameters and keys; swapped in place of ``WanRMS_norm`` (only the forward differs, and only for
    half-precision input, where diffusers upcasts to fp32).
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=1 if self.channel_first else -1) * self.scale * self.gamma + self.bias


class ConditionEncoder(nn.Module):
    """The condition encoder of cond v2 ("ConditionEncoderSymmetric" in the reference, spec 3.3).

    A Wan2.1-style encoder over ``[RGB, mask]`` (4 channels) with ``num_res_blocks + 1`` residual blocks per
    stage (mirroring the decoder) and no output head. It always runs without a feature cache, so its
    ``downsample3d`` layers do not reduce time and every call is independent.

    ``forward`` returns the 19 features (for the released config) in decoder order: feature ``k`` is added,
    through ``zero_convs[k]``, to the output of decoder injection point ``k``. The last middle block only
    exists for the checkpoint's keys: its output is never used, so it is not computed.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        dim_mult: Sequence[int],
        num_res_blocks: int,
        temperal_downsample: Sequence[bool],
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        dims = [dim * u for u in (1, *dim_mult)]
        self.conv_in = WanCausalConv3d(in_channels, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(num_res_blocks + 1):
                blocks.append(WanResidualBlock(in_dim, out_dim, dropout))
                in_dim = out_dim
            if i != len(dim_mult) - 1:
                blocks.append(
                    WanResample(out_dim, "downsample3d" if temperal_downsample[i] else "downsample2d")
                )
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = WanMidBlock(dims[-1], dropout, num_layers=1)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``(N, 4, t, H, W)`` -> features, deepest first (the order of the decoder's injection points)."""
        h = self.conv_in(x)
        feats = []
        for block in self.down_blocks:
            feats.append(h)
            h = block(h)
        feats += [h, h]  # the last down block's output feeds two points (before and at middle[0]'s input)
        h = self.mid_block.resnets[0](h)
        feats.append(h)
        feats.append(self.mid_block.attentions[0](h))
        return feats[::-1]

    def feature_channels(self) -> list[int]:
        """Channels of the features returned by ``forward``, in the same order."""
        chans = [self.conv_in.out_channels]
        for block in self.down_blocks[:-1]:
            chans.append(_out_channels(block))
        top = _out_channels(self.down_blocks[-1])
        chans += [top, top, top, top]
        return chans[::-1]


def _out_channels(module: nn.Module) -> int:
    if isinstance(module, WanResidualBlock):
        return module.out_dim
    if isinstance(module, WanAttentionBlock):
        return module.dim
    if isinstance(module, WanResample):
        return module.resample[1].out_channels
    if isinstance(module, nn.Conv3d):
        return module.out_channels
    raise TypeError(f"no channel rule for {type(module).__name__}")


# ---------------------------------------------------------------------------------------------------------
# Checkpoint layout: original (.pth) key names <-> ours


class CheckpointMismatchError(InputError):
    """A state dict whose keys or shapes do not fit the model (wrong file, wrong ``conditional`` or config)."""


_RESBLOCK_TO_ORIGINAL = {
    "norm1": "residual.0",
    "conv1": "residual.2",
    "norm2": "residual.3",
    "conv2": "residual.6",
    "conv_shortcut": "shortcut",
}
_MIDDLE_TO_ORIGINAL = {("resnets", "0"): "0", ("attentions", "0"): "1", ("resnets", "1"): "2"}


def _block_to_original(parts: list[str]) -> str:
    """Inside one residual/attention/resample block: diffusers names -> original names."""
    if parts[0] in _RESBLOCK_TO_ORIGINAL:
        parts = [_RESBLOCK_TO_ORIGINAL[parts[0]], *parts[1:]]
    return ".".join(parts)


def _coder_to_original(parts: list[str], num_res_blocks: int) -> str:
    """Inside an encoder/decoder/condition encoder: diffusers names -> original names."""
    head, rest = parts[0], parts[1:]
    if head == "conv_in":
        return "conv1." + ".".join(rest)
    if head == "norm_out":
        return "head.0." + ".".join(rest)
    if head == "conv_out":
        return "head.2." + ".".join(rest)
    if head == "down_blocks":
        return f"downsamples.{rest[0]}." + _block_to_original(rest[1:])
    if head == "mid_block":
        return f"middle.{_MIDDLE_TO_ORIGINAL[(rest[0], rest[1])]}." + _block_to_original(rest[2:])
    if head == "up_blocks":
        # Original: one flat Sequential; per stage num_res_blocks + 1 residual blocks, then the upsampler.
        stage_len = num_res_blocks + 2
        stage, kind, index = int(rest[0]), rest[1], int(rest[2])
        flat = stage * stage_len + (index if kind == "resnets" else num_res_blocks + 1)
        return f"upsamples.{flat}." + _block_to_original(rest[3:])
    raise KeyError(".".join(parts))


def _to_original_key(key: str, num_res_blocks: int) -> str:
    parts = key.split(".")
    if parts[0] == "autoencoder":
        if parts[1] == "quant_conv":
            return "conv1." + ".".join(parts[2:])
        if parts[1] == "post_quant_conv":
            return "conv2." + ".".join(parts[2:])
        if parts[1] in ("encoder", "decoder"):
            return f"{parts[1]}." + _coder_to_original(parts[2:], num_res_blocks)
    if parts[0] == "cond_encoder":
        return "cond_encoder." + _coder_to_original(parts[1:], num_res_blocks + 1)
    if parts[0] == "zero_convs":
        return f"zero_convs.{parts[1]}.0." + ".".join(parts[2:])
    raise KeyError(key)


def original_key_map(model: WanVAE) -> dict[str, str]:
    """``{our state-dict key: original checkpoint key}`` for every tensor of ``model``."""
    nrb = model.config.num_res_blocks
    return {k: _to_original_key(k, nrb) for k in model.state_dict()}


def infer_config(state_dict: dict[str, Tensor]) -> dict:
    """The size fields of a Wan2.1 VAE config read from an original-layout state dict: ``base_dim`` (width of
    ``encoder.conv1``), ``z_dim`` (half of ``conv1``'s outputs) and ``num_res_blocks`` (the encoder has
    ``4 * n + 3`` ``downsamples`` modules for the 4 stages). Other fields keep the released values."""
    try:
        base_dim = int(state_dict["encoder.conv1.weight"].shape[0])
        z_dim = int(state_dict["conv1.weight"].shape[0]) // 2
    except KeyError as exc:
        raise CheckpointMismatchError(f"not a Wan2.1 VAE checkpoint: no {exc.args[0]!r} tensor") from None
    modules = {int(k.split(".")[2]) for k in state_dict if k.startswith("encoder.downsamples.")}
    num_res_blocks = (max(modules) + 1 - 3) // 4 if modules else 2
    return {"base_dim": base_dim, "z_dim": z_dim, "num_res_blocks": num_res_blocks}


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a ``.pth``/``.pt`` (``torch.load(weights_only=True)``, on CPU) or ``.safetensors`` state dict."""
    path = os.fspath(path)
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path, device="cpu")
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip, safetensors-header and I/O errors all mean "not a state dict"
        first = first_line(exc)
        raise CheckpointMismatchError(f"cannot read {path} as a state dict of tensors: {first}") from None
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointMismatchError(f"{path} does not hold a flat state dict of tensors")
    return obj


def save_original_state_dict(model: WanVAE, path: str | os.PathLike) -> None:
    """Write ``model`` in the original key layout (``.safetensors`` by extension, else ``torch.save``)."""
    sd = model.original_state_dict()
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, path)
    else:
        torch.save(sd, path)


def _preview(keys: Sequence[str], n: int = 5) -> str:
    keys = sorted(keys)
    more = f", ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


# ---------------------------------------------------------------------------------------------------------
# The feature cache of causal passes


@dataclass
class CausalCache:
    """Feature cache of one causal pass (encoder or decoder), kept between calls to continue a clip.

    ``feats`` holds, per causal conv, the last <= 2 input frames seen (diffusers' ``feat_cache`` list);
    ``frames`` counts the input frames (encoder: pixel frames, decoder: latent frames) consumed so far, which
    decides whether the next call starts the clip (a lone first frame) or continues it.
    """

    feats: list = field(default_factory=list)
    frames: int = 0


def _causal_spans(num_frames: int, at_start: bool) -> list[tuple[int, int]]:
    """Frame spans of the encoder's causal chunks: ``[0,1), [1,5), [5,9) ...`` at the start of a clip, else
    ``[0,4), [4,8) ...``; the same split cuts a condition video into the parts of its latent frames."""
    if at_start:
        if num_frames < 1 or (num_frames - _FIRST_CHUNK) % _CHUNK:
            raise ValueError(f"a clip must start with 1 + 4k frames (got {num_frames})")
        spans = [(0, _FIRST_CHUNK)]
        start = _FIRST_CHUNK
    else:
        if num_frames % _CHUNK:
            raise ValueError(f"a continued clip takes a multiple of 4 frames per call (got {num_frames})")
        spans, start = [], 0
    spans += [(s, s + _CHUNK) for s in range(start, num_frames, _CHUNK)]
    return spans


def _align_time(feat: Tensor, frames: int) -> Tensor:
    """Time-align a condition feature to a decoder activation (spec 3.3): keep the first frames when the
    feature is longer, repeat it when it is shorter."""
    t = feat.shape[2]
    if t > frames:
        return feat[:, :, :frames]
    if t < frames:
        return feat.repeat(1, 1, frames // t, 1, 1)
    return feat


# ---------------------------------------------------------------------------------------------------------
# The model


class WanVAE(ModelMixin, ConfigMixin):
    """Wan2.1 causal 3-D VAE on diffusers' ``AutoencoderKLWan``, with the optional conditional decoder.

    Args:
        base_dim, z_dim, dim_mult, num_res_blocks, temperal_downsample, dropout: the Wan2.1 VAE config
            (defaults = the released one; ``z_dim`` must be 16, the size of the latent statistics).
        conditional: add ``cond_encoder`` and ``zero_convs`` (the ``Wan2.1_VAE_cond_v2.pth`` layout).
        norm_in_input_dtype: compute RMS norms in the input dtype like the reference (see module doc).

    Fresh modules are initialised like the reference's: attention output projections' weights and all
    zero convs start at zero (so a fresh conditional decoder equals the plain one).
    """

    @register_to_config
    def __init__(
        self,
        base_dim: int = 96,
        z_dim: int = 16,
        dim_mult: Sequence[int] = (1, 2, 4, 4),
        num_res_blocks: int = 2,
        temperal_downsample: Sequence[bool] = (False, True, True),
        dropout: float = 0.0,
        conditional: bool = False,
        norm_in_input_dtype: bool = True,
    ) -> None:
        super().__init__()
        if z_dim != len(LATENTS_MEAN):
            raise ValueError(f"z_dim must be {len(LATENTS_MEAN)} (the latent statistics' size), got {z_dim}")
        self.autoencoder = AutoencoderKLWan(
            base_dim=base_dim,
            z_dim=z_dim,
            dim_mult=list(dim_mult),
            num_res_blocks=num_res_blocks,
            attn_scales=[],
            temperal_downsample=list(temperal_downsample),
            dropout=dropout,
            latents_mean=list(LATENTS_MEAN),
            latents_std=list(LATENTS_STD),
        )
        self.cond_encoder: ConditionEncoder | None = None
        self.zero_convs: nn.ModuleList | None = None
        if conditional:
            self.cond_encoder = ConditionEncoder(
                4, base_dim, dim_mult, num_res_blocks, temperal_downsample, dropout=dropout
            )
            sources = self.cond_encoder.feature_channels()
            targets = [_out_channels(m) for m in self._injection_points()]
            if len(sources) != len(targets):
                raise ValueError(f"{len(sources)} condition features for {len(targets)} decoder points")
            self.zero_convs = nn.ModuleList(WanCausalConv3d(s, t, 1) for s, t in zip(sources, targets))
            for p in self.zero_convs.parameters():
                nn.init.zeros_(p)
        for m in self.modules():
            if isinstance(m, WanAttentionBlock):
                nn.init.zeros_(m.proj.weight)
            if norm_in_input_dtype and type(m) is WanRMS_norm:
                m.__class__ = _RMSNormInputDtype
        self._enc_convs = sum(isinstance(m, WanCausalConv3d) for m in self.autoencoder.encoder.modules())
        self._dec_convs = sum(isinstance(m, WanCausalConv3d) for m in self.autoencoder.decoder.modules())

    # -- structure ----------------------------------------------------------------------------------------

    @property
    def conditional(self) -> bool:
        return self.cond_encoder is not None

    def _injection_points(self) -> list[nn.Module]:
        """The decoder submodules whose outputs receive condition features, in order (spec 3.2/3.3):
        ``conv_in``, the three middle layers, then every residual block and upsampler of the up stages."""
        dec = self.autoencoder.decoder
        points: list[nn.Module] = [dec.conv_in, dec.mid_block.resnets[0], dec.mid_block.attentions[0]]
        points.append(dec.mid_block.resnets[1])
        for block in dec.up_blocks:
            points += list(block.resnets)
            if block.upsamplers is not None:
                points.append(block.upsamplers[0])
        return points

    def new_cache(self, part: Literal["encoder", "decoder"]) -> CausalCache:
        """An empty feature cache to stream a clip through ``encode``/``decode`` in several calls."""
        n = {"encoder": self._enc_convs, "decoder": self._dec_convs}[part]
        return CausalCache(feats=[None] * n)

    # -- latent normalisation -----------------------------------------------------------------------------

    @staticmethod
    def normalize_latents(z_raw: Tensor) -> Tensor:
        """Raw VAE latent -> the normalised space of the DiT: ``(z - mean) * (1 / std)``."""
        mean, inv_std = latent_stats(z_raw.dtype, z_raw.device)
        return (z_raw - mean) * inv_std

    @staticmethod
    def denormalize_latents(z: Tensor) -> Tensor:
        """Normalised latent -> raw VAE latent: ``z / (1 / std) + mean`` (the reference's reciprocal form)."""
        mean, inv_std = latent_stats(z.dtype, z.device)
        return z / inv_std + mean

    # -- encoding -----------------------------------------------------------------------------------------

    def encode_moments(self, video: Tensor, cache: CausalCache | None = None) -> tuple[Tensor, Tensor]:
        """Raw posterior ``(mu, logvar)``, each ``(B, 16, T', H/8, W/8)``, in the model dtype.

        ``video`` is ``(B, 3, T, H, W)`` in [-1, 1]. The encoder sees frame chunks 1, 4, 4, ... through its
        causal cache. Without ``cache`` the call is a whole clip (``T = 1 + 4k``); with a cache from
        ``new_cache("encoder")`` successive calls continue one clip (first call ``1 + 4k`` frames, later
        calls ``4k``) and concatenating their outputs equals one call on the whole clip.
        """
        if cache is None:
            cache = self.new_cache("encoder")
        x = video.to(self.dtype)
        encoder = self.autoencoder.encoder
        outs = [
            encoder(x[:, :, s:e], feat_cache=cache.feats, feat_idx=[0])
            for s, e in _causal_spans(x.shape[2], cache.frames == 0)
        ]
        cache.frames += x.shape[2]
        mu, logvar = self.autoencoder.quant_conv(torch.cat(outs, 2)).chunk(2, dim=1)
        return mu, logvar

    def encode(
        self,
        video: Tensor,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
        cache: CausalCache | None = None,
    ) -> Tensor:
        """Normalised latent ``(B, 16, T', H/8, W/8)`` of ``video`` (``(B, 3, T, H, W)`` in [-1, 1]).

        ``sample=False``: the posterior mean (how the DiT was trained). ``sample=True``: the reference's
        reparameterisation ``mu + exp(logvar / 2) * eps`` with ``eps`` drawn in the model dtype from
        ``generator`` (``None``: the global RNG, as the reference's ``randn_like``); no logvar clamp. Returned
        in ``video``'s dtype.
        """
        mu, logvar = self.encode_moments(video, cache)
        z = mu
        if sample:
            std = torch.exp(0.5 * logvar)
            eps = torch.randn(std.shape, generator=generator, dtype=std.dtype, device=std.device)
            z = eps * std + mu
        return self.normalize_latents(z).to(video.dtype)

    # -- the condition path -------------------------------------------------------------------------------

    def encode_condition(
        self, condition: Tensor, mask: Tensor, *, at_start: bool = True
    ) -> list[list[Tensor]]:
        """Per latent frame, the zero-conv outputs of the condition encoder (spec 3.3).

        ``condition`` is the nearest-upsampled video ``(B, 3, T, H, W)`` in [-1, 1] and ``mask``
        ``(B, 1, T, H, W)`` (1 where a frame is an input frame) or per frame ``(B, T)``. The frames are cut
        like the encoder's chunks (1, 4, 4, ... at the start of a clip) and every part is encoded on its own:
        part ``i`` conditions latent frame ``i``.
        """
        return [self._condition_part(p, condition, mask) for p in self._condition_parts(condition, at_start)]

    def _condition_parts(self, condition: Tensor, at_start: bool) -> list[tuple[int, int]]:
        if self.cond_encoder is None:
            raise ValueError("this WanVAE has no conditional decoder (built with conditional=False)")
        return _causal_spans(condition.shape[2], at_start)

    def _condition_part(self, span: tuple[int, int], condition: Tensor, mask: Tensor) -> list[Tensor]:
        s, e = span
        if mask.ndim == 2:
            mask = mask[:, None, :, None, None].expand(-1, -1, -1, *condition.shape[-2:])
        x = torch.cat([condition[:, :, s:e], mask[:, :, s:e].to(condition.dtype)], dim=1).to(self.dtype)
        return [conv(f) for conv, f in zip(self.zero_convs, self.cond_encoder(x))]

    @contextlib.contextmanager
    def _injecting(self) -> Iterator[list]:
        """Hooks adding ``slot[0][k]`` to the output of decoder point ``k`` while the context is open."""
        slot: list = [None]

        def make_hook(k: int):
            def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
                if slot[0] is None:
                    return None
                return output + _align_time(slot[0][k], output.shape[2])

            return hook

        handles = [m.register_forward_hook(make_hook(k)) for k, m in enumerate(self._injection_points())]
        try:
            yield slot
        finally:
            for h in handles:
                h.remove()

    # -- decoding -----------------------------------------------------------------------------------------

    def decode_raw(
        self,
        z_raw: Tensor,
        *,
        condition: Tensor | None = None,
        mask: Tensor | None = None,
        cache: CausalCache | None = None,
    ) -> Tensor:
        """Pixels ``(B, 3, T, H, W)``, unclamped, from a raw (un-normalised) latent ``(B, 16, T', h, w)``.

        One latent frame per decoder call through the causal cache (``T = 1 + 4(T' - 1)`` at the start of a
        clip, ``4 T'`` when continuing one with ``cache``). With ``condition``/``mask`` (conditional model
        only) the condition features of latent frame ``i`` are computed just before it is decoded, so only
        one frame's features are alive at a time.
        """
        if cache is None:
            cache = self.new_cache("decoder")
        x = self.autoencoder.post_quant_conv(z_raw.to(self.dtype))
        parts = None
        if condition is not None:
            if mask is None:
                raise ValueError("a condition video needs its mask")
            parts = self._condition_parts(condition, cache.frames == 0)
            if len(parts) != x.shape[2]:
                raise ValueError(f"condition has {condition.shape[2]} frames for {x.shape[2]} latent frames")
        outs = []
        decoder = self.autoencoder.decoder
        with self._injecting() if parts is not None else contextlib.nullcontext([None]) as slot:
            for i in range(x.shape[2]):
                if parts is not None:
                    slot[0] = self._condition_part(parts[i], condition, mask)
                outs.append(
                    decoder(
                        x[:, :, i : i + 1],
                        feat_cache=cache.feats,
                        feat_idx=[0],
                        first_chunk=cache.frames == 0,
                    )
                )
                cache.frames += 1
        return torch.cat(outs, 2)

    def decode(
        self,
        latents: Tensor,
        *,
        condition: Tensor | None = None,
        mask: Tensor | None = None,
        clamp: bool = False,
        cache: CausalCache | None = None,
    ) -> Tensor:
        """Pixels ``(B, 3, T, 8h, 8w)`` from normalised latents ``(B, 16, T', h, w)``, in ``latents``' dtype.

        Unclamped by default, as the reference's model-level decode; the tiled decode clamps (spec 2.4).
        ``condition``/``mask``: see ``encode_condition`` (conditional model; without them the conditional
        model decodes with zero features, i.e. as its plain decoder).
        """
        z_raw = self.denormalize_latents(latents.to(self.dtype))
        out = self.decode_raw(z_raw, condition=condition, mask=mask, cache=cache)
        if clamp:
            out = out.clamp(-1.0, 1.0)
        return out.to(latents.dtype)

    # -- tiling shortcuts (spec 2) ------------------------------------------------------------------------

    def tiled_encode(
        self,
        video: Tensor,
        config: _tiling.TilingConfig | None = None,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
        layout: Literal["chunked", "stitched"] = "chunked",
    ) -> Tensor:
        """Spec 2 encoding of ``(B, 3, F, H, W)``: chunked ``(B, nT, nH, nW, 16, t, h, w)`` or stitched
        ``(B, nT, 16, t, H/8, W/8)`` latents; see ``tiling.tiled_encode``. Noise (``sample=True``) is drawn
        tile by tile (row-major), then per ``vae_batch_size`` batch, as in the reference."""
        config = config or _tiling.TilingConfig()

        def encode_groups(groups: Tensor) -> Tensor:
            return self.encode(groups, sample=sample, generator=generator)

        return _tiling.tiled_encode(
            encode_groups, video, config, out_channels=self.config.z_dim, layout=layout
        )

    def tiled_decode(
        self,
        latents: Tensor,
        config: _tiling.TilingConfig | None = None,
        *,
        condition: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Spec 2.4 decoding of stitched latents ``(B, nT, 16, t, Hl, Wl)`` to clamped pixels
        ``(B, 3, nT * F_t, ~8 Hl, ~8 Wl)``; see ``tiling.tiled_decode``."""
        return _tiling.tiled_decode(
            self._group_decoder(), latents, config or _tiling.TilingConfig(), condition=condition, mask=mask
        )

    def _group_decoder(self) -> _tiling.GroupDecoder:
        def decode_groups(z: Tensor, condition: Tensor | None, mask: Tensor | None) -> Tensor:
            return self.decode(z, condition=condition, mask=mask)

        return decode_groups

    # -- original checkpoint layout -----------------------------------------------------------------------

    def original_state_dict(self) -> dict[str, Tensor]:
        """The state dict under the original checkpoint's key names (``Wan2.1_VAE[_cond_v2].pth``)."""
        names = original_key_map(self)
        return {names[k]: v for k, v in self.state_dict().items()}

    def load_original_state_dict(
        self, state_dict: dict[str, Tensor], *, assign: bool = False, source: str = "state dict"
    ) -> None:
        """Load a state dict in the original key layout, strictly.

        Raises ``CheckpointMismatchError`` naming missing and unexpected keys and shape mismatches, with a
        hint when the file is the other VAE variant (plain vs conditional) or not a VAE at all.
        """
        to_original = original_key_map(self)
        from_original = {v: k for k, v in to_original.items()}
        missing = [v for v in to_original.values() if v not in state_dict]
        unexpected = [k for k in state_dict if k not in from_original]
        own = self.state_dict()
        wrong_shape = [
            f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[from_original[k]].shape)}"
            for k in state_dict
            if k in from_original and state_dict[k].shape != own[from_original[k]].shape
        ]
        if missing or unexpected or wrong_shape:
            vae_like = any(k.startswith(("encoder.", "decoder.")) for k in state_dict)
            raise CheckpointMismatchError(
                self._mismatch_message(source, missing, unexpected, wrong_shape, vae_like)
            )
        converted = {from_original[k]: v for k, v in state_dict.items()}
        self.load_state_dict(converted, strict=True, assign=assign)

    def _mismatch_message(
        self, source: str, missing: list, unexpected: list, wrong_shape: list, vae_like: bool
    ) -> str:
        kind = "conditional (Wan2.1_VAE_cond_v2)" if self.conditional else "plain (Wan2.1_VAE)"
        lines = [f"{source} does not fit this {kind} WanVAE:"]
        if missing:
            lines.append(f"  {len(missing)} missing keys: {_preview(missing)}")
        if unexpected:
            lines.append(f"  {len(unexpected)} unexpected keys: {_preview(unexpected)}")
        if wrong_shape:
            lines.append(f"  {len(wrong_shape)} shape mismatches: {_preview(wrong_shape, 3)}")
            lines.append(
                "  hint: the model config (base_dim, dim_mult, num_res_blocks) differs from the file's"
            )
        cond_missing = [k for k in missing if k.startswith(("cond_encoder.", "zero_convs."))]
        cond_unexpected = [k for k in unexpected if k.startswith(("cond_encoder.", "zero_convs."))]
        if cond_missing and len(cond_missing) == len(missing) and not unexpected:
            lines.append("  hint: this looks like a plain Wan2.1_VAE.pth; load it with conditional=False")
        elif cond_unexpected and len(cond_unexpected) == len(unexpected) and not missing:
            lines.append("  hint: this looks like Wan2.1_VAE_cond_v2.pth; load it with conditional=True")
        elif not vae_like:
            lines.append("  hint: the file has no encoder./decoder. keys: it is not a Wan2.1 VAE checkpoint")
        return "\n".join(lines)

    @classmethod
    def from_original(
        cls,
        path: str | os.PathLike,
        *,
        conditional: bool = False,
        config: dict | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> WanVAE:
        """Load ``Wan2.1_VAE.pth`` (``conditional=False``) or ``Wan2.1_VAE_cond_v2.pth`` (``True``) by path.

        ``.pth`` files are read with ``torch.load(weights_only=True)``; ``.safetensors`` files in the same key
        layout are accepted. Without ``config`` the width, latent channels and residual blocks per stage are
        read off the tensors (:func:`infer_config`), so the released files and small ones of the same layout
        both load; ``config`` overrides that (e.g. ``tiny_config()``). The model is
        built on the meta device and takes the file's tensors, so no time is spent on a random init.
        """
        state_dict = load_state_dict_file(path)
        if config is None:
            config = infer_config(state_dict)
        with torch.device("meta"):
            model = cls(**{**config, "conditional": conditional})
        model.load_original_state_dict(state_dict, assign=True, source=os.fspath(path))
        # nn.Module.to: diffusers 0.42.1's ModelMixin.to warns about fp32 modules on every dtype cast, even
        # when there are none.
        return nn.Module.to(model, device=device, dtype=dtype).eval()
