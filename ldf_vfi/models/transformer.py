"""The LDF-VFI denoiser: Wan2.1-T2V-1.3B turned into a chunked, locally attending video DiT.

:class:`LDFTransformer3DModel` subclasses diffusers' ``WanTransformer3DModel`` and keeps its modules and
state-dict keys; it changes what the reference changes (REFERENCE_SPEC 1):

* input: the 8-D chunked latent ``(B, nT, nH, nW, 36, t, h, w)``, channels ``[x_t | y | m]`` = noisy latent,
  LQ latent of the nearest-upsampled low-frame-rate video, 4-channel mask code (see ``_condition``);
* one timestep per chunk ``(B, nT, nH, nW)`` (diffusion forcing): every chunk is fed as its own batch item
  ``(B*N, C, t, h, w)``, so diffusers' per-item patch embedding, time embedding, modulation and output head
  are exactly the reference's per-chunk ones;
* attention spans the whole window: :class:`~ldf_vfi.models.attention.LDFAttnProcessor` regroups the
  chunks of a window into one sequence and applies the block's chunk mask (``attention_type``);
* ``attn2`` (Wan's text cross-attention) is a second self-attention without RoPE; there is no text
  projector (its 4 keys are absent from the checkpoint);
* RoPE uses window-global token positions, chunk-major, with float64 tables;
* q/k RMSNorm is diffusers' ``RMSNorm`` (the reference's module; ``torch.nn.RMSNorm`` rounds differently
  in bf16).

Dtype policy (faithful to the reference's inference): all parameters share one dtype, set with
``.to(dtype)`` or ``from_pretrained(torch_dtype=...)``; nothing is kept in fp32
(``_keep_in_fp32_modules = None``). Whatever that dtype, the three LayerNorms and the block modulation
run in fp32 and RoPE in float64, then cast back; activations between blocks use the parameter dtype.

Released settings: the released ``config.json`` holds ``attention_type = "slide_chunk_all_block"`` (the
reference never writes the type it runs with) but the released weights must be run with
:data:`RELEASE_ATTENTION_TYPE`, as the reference's launch scripts do. Load them with
:meth:`LDFTransformer3DModel.from_release` (or ``from_pretrained(..., attention_type=RELEASE_ATTENTION_TYPE)``).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from diffusers import WanTransformer3DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.normalization import RMSNorm
from diffusers.utils import apply_lora_scale
from safetensors.torch import load_file
from torch import nn

from .attention import (
    ATTENTION_BACKENDS,
    ChunkGrid,
    LDFAttnProcessor,
    WindowAttentionArgs,
    check_attention_type,
    prepare_block_masks,
)

__all__ = [
    "CONFIG_DEFAULT_ATTENTION_TYPE",
    "LATENT_CHANNELS",
    "LDF_IN_CHANNELS",
    "LDFTransformer3DModel",
    "RELEASE_ATTENTION_TYPE",
    "WAN_T2V_1_3B_CONFIG",
    "KeyReport",
    "TokenParallelHook",
    "official_key_report",
    "official_state_dict_shapes",
    "read_safetensors_folder",
    "tiny_config",
    "wan_t2v_to_ldf_state_dict",
    "window_rope",
]

LATENT_CHANNELS = 16
"""Channels of the Wan2.1 VAE latent (noisy input, LQ condition and the DiT output)."""

MASK_CHANNELS = 4
"""Channels of the encoded frame mask (spec 2.3)."""

LDF_IN_CHANNELS = 2 * LATENT_CHANNELS + MASK_CHANNELS
"""36: ``[x_t | y | m]``."""

RELEASE_ATTENTION_TYPE = "slide_chunk_all_block_2x1x1"
"""The attention type the released weights need (every block, both attentions: |dnt|<=2, |dnh|,|dnw|<=1)."""

CONFIG_DEFAULT_ATTENTION_TYPE = "slide_chunk_all_block"
"""The reference constructor's default, which is what the released config.json holds (1x1x1 windows)."""

WAN_T2V_1_3B_CONFIG: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "image_dim": None,
    "added_kv_proj_dim": None,
    "rope_max_seq_len": 1024,
}
"""diffusers config of Wan2.1-T2V-1.3B, the base model (the reference's ``configs/wan1_3B.json``)."""

_TEXT_PROJECTOR = "condition_embedder.text_embedder."


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """A tiny LDF config for tests (2 blocks, 2 heads x 16, 41,312 parameters).

    Use latent chunks of ``(t, h, w) = (2, 4, 4)``: with patch ``(1, 2, 2)`` a chunk is ``2*2*2 = 8`` tokens.
    Build with ``torch.manual_seed(0); LDFTransformer3DModel(**tiny_config())``.
    """
    config: dict[str, Any] = {
        "patch_size": (1, 2, 2),
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "in_channels": LDF_IN_CHANNELS,
        "out_channels": LATENT_CHANNELS,
        "text_dim": 16,
        "freq_dim": 32,
        "ffn_dim": 64,
        "num_layers": 2,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        "rope_max_seq_len": 64,
        "attention_type": RELEASE_ATTENTION_TYPE,
    }
    config.update(overrides)
    return config


# ---------------------------------------------------------------------------------------------------------
# RoPE in window coordinates


@torch.compiler.disable
@functools.lru_cache(maxsize=2)  # a 4K window's tables are ~0.8 GB
def window_rope(
    grid: ChunkGrid,
    head_dim: int,
    theta: float = 10000.0,
    max_seq_len: int = 1024,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE ``(cos, sin)`` tables of a window, each ``(N, D, head_dim/2)`` float64, chunk-major.

    A token at global window coordinates ``(f, r, c)`` rotates pair j of the first ``d_t/2`` pairs by
    ``f * theta**(-2j/d_t)``, of the next ``d_h/2`` pairs by ``r * theta**(-2j/d_h)`` and of the last
    ``d_w/2`` by ``c * theta**(-2j/d_w)``, with ``d_h = d_w = 2*(head_dim//6)``, ``d_t`` the rest (44, 42,
    42 for 128). Positions restart at 0 in every window. The tables stay float64 (the reference keeps
    complex128) and are not module buffers, so ``model.to(bfloat16)`` cannot round them.
    """
    if head_dim % 2:
        raise ValueError(f"head_dim must be even, got {head_dim}")
    if max(grid.token_shape) > max_seq_len:
        raise ValueError(f"window of {grid.token_shape} tokens exceeds rope_max_seq_len={max_seq_len}")
    hw_dim = 2 * (head_dim // 6)
    coords = grid.token_coords(device).to(torch.float64)
    angles = []
    for axis, dim in enumerate((head_dim - 2 * hw_dim, hw_dim, hw_dim)):
        inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim))
        angles.append(coords[:, axis, None] * inv_freq[None, :])
    angle = torch.cat(angles, dim=1).reshape(grid.num_chunks, grid.tokens_per_chunk, head_dim // 2)
    return angle.cos(), angle.sin()


class WindowRotaryEmbedding(nn.Module):
    """Replaces diffusers' per-video ``WanRotaryPosEmbed``: tables for the current window grid (no buffers)."""

    def __init__(self, attention_head_dim: int, max_seq_len: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.attention_head_dim = attention_head_dim
        self.max_seq_len = max_seq_len
        self.theta = theta

    def forward(self, grid: ChunkGrid, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return window_rope(grid, self.attention_head_dim, self.theta, self.max_seq_len, device)


class TokenParallelHook(Protocol):
    """Where sequence parallelism splits and gathers tokens (spec 6); not implemented here.

    ``split_tokens`` runs after the patch embedding on the chunk-batch tokens ``(B*N, D, C)`` and the RoPE tables
    ``(N, D, hd/2)``: each rank keeps the same contiguous slice of every chunk's D tokens (and of the tables).
    ``gather_tokens`` runs after ``proj_out`` and rebuilds all D tokens of every chunk on every rank (with an
    autograd-aware collective). The attentions exchange heads through
    :class:`~ldf_vfi.models.attention.HeadParallelHook` on their processors.
    """

    def split_tokens(
        self, hidden_states: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]: ...

    def gather_tokens(self, hidden_states: torch.Tensor) -> torch.Tensor: ...


class _NoTextProjection(nn.Module):
    """Stands in for the text projector that LDF-VFI never builds: no parameters, no text states."""

    def forward(self, encoder_hidden_states: torch.Tensor | None) -> None:
        return None


# ---------------------------------------------------------------------------------------------------------
# The model


class LDFTransformer3DModel(WanTransformer3DModel):
    """Wan2.1 DiT with 36 input channels, per-chunk timesteps and window attention over chunks.

    Defaults are the released LDF-VFI architecture (Wan2.1-T2V-1.3B with ``in_channels=36``). All arguments
    but ``attention_type`` are diffusers' ``WanTransformer3DModel`` ones; image/I2V options must stay None.

    Args:
        attention_type: one of :data:`~ldf_vfi.models.attention.ATTENTION_TYPES`; see
            :data:`RELEASE_ATTENTION_TYPE` for the released weights.
    """

    _keep_in_fp32_modules = None
    _cp_plan = (
        None  # diffusers' plan would split inside chunks; SP plugs into TokenParallelHook/HeadParallelHook.
    )

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 12,
        attention_head_dim: int = 128,
        in_channels: int = LDF_IN_CHANNELS,
        out_channels: int = LATENT_CHANNELS,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 8960,
        num_layers: int = 30,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = None,
        added_kv_proj_dim: int | None = None,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
        attention_type: str = CONFIG_DEFAULT_ATTENTION_TYPE,
    ) -> None:
        check_attention_type(attention_type)
        if image_dim is not None or added_kv_proj_dim is not None or pos_embed_seq_len is not None:
            raise ValueError(
                "LDF-VFI has no image conditioning: image_dim, added_kv_proj_dim and "
                "pos_embed_seq_len must be None"
            )
        if qk_norm != "rms_norm_across_heads":
            raise ValueError(f"LDF-VFI uses qk_norm='rms_norm_across_heads', got {qk_norm!r}")
        # Keywords, not positions: the parent's @register_to_config records positional args as defaults.
        super().__init__(
            patch_size=patch_size,
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            in_channels=in_channels,
            out_channels=out_channels,
            text_dim=text_dim,
            freq_dim=freq_dim,
            ffn_dim=ffn_dim,
            num_layers=num_layers,
            cross_attn_norm=cross_attn_norm,
            qk_norm=qk_norm,
            eps=eps,
            image_dim=image_dim,
            added_kv_proj_dim=added_kv_proj_dim,
            rope_max_seq_len=rope_max_seq_len,
            pos_embed_seq_len=pos_embed_seq_len,
        )
        inner_dim = num_attention_heads * attention_head_dim
        self.rope = WindowRotaryEmbedding(attention_head_dim, rope_max_seq_len)
        self.condition_embedder.text_embedder = _NoTextProjection()
        for block in self.blocks:
            for attn in (block.attn1, block.attn2):
                attn.norm_q = RMSNorm(inner_dim, eps=eps, elementwise_affine=True)
                attn.norm_k = RMSNorm(inner_dim, eps=eps, elementwise_affine=True)
                attn.set_processor(LDFAttnProcessor())
        self._window_backend = "auto"
        self.flex_kernel_options: dict | None = None
        self.token_parallel: TokenParallelHook | None = None

    # -----------------------------------------------------------------------------------------------------
    # Settings

    @property
    def attention_type(self) -> str:
        return self.config.attention_type

    def set_attention_type(self, attention_type: str) -> None:
        """Switch the mask schedule; recorded in the config, so ``save_pretrained`` keeps it."""
        self.register_to_config(attention_type=check_attention_type(attention_type))

    @property
    def attention_backend(self) -> str:
        return self._window_backend

    def set_attention_backend(self, backend: str) -> None:
        """Pick the attention kernel: ``"auto"`` (flex on CUDA, local_sdpa otherwise), ``"flex"``,
        ``"local_sdpa"`` or ``"dense"``. All compute the same function; this is not a config value.

        Overrides diffusers' method of the same name: diffusers' dispatch backends do not apply to the LDF
        window attention.
        """
        if backend not in ATTENTION_BACKENDS:
            raise ValueError(f"Unknown attention backend {backend!r}; valid: {', '.join(ATTENTION_BACKENDS)}")
        self._window_backend = backend

    def reset_attention_backend(self) -> None:
        """Back to ``"auto"``."""
        self._window_backend = "auto"

    # -----------------------------------------------------------------------------------------------------
    # Loading

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | Path, *, attention_backend: str = "auto", **kwargs: Any
    ) -> LDFTransformer3DModel:
        """diffusers' ``from_pretrained`` plus ``attention_backend``.

        Config values can be overridden as keywords, e.g. ``attention_type=RELEASE_ATTENTION_TYPE``; the
        official folder (``_class_name`` ``WanTransformer3DModel``, 36 inputs, no text projector) loads as is.
        """
        model = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        model.set_attention_backend(attention_backend)
        return model

    @classmethod
    def from_release(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        subfolder: str | None = "transformer",
        **kwargs: Any,
    ) -> LDFTransformer3DModel:
        """Load the released LDF-VFI transformer with the released settings (:data:`RELEASE_ATTENTION_TYPE`).

        ``pretrained_model_name_or_path`` is the model folder holding ``transformer/`` (as the reference
        expects); pass ``subfolder=None`` for the transformer folder itself. Keywords override the preset.
        """
        kwargs.setdefault("attention_type", RELEASE_ATTENTION_TYPE)
        return cls.from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)

    @classmethod
    def from_wan_t2v(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        subfolder: str | None = None,
        attention_type: str = CONFIG_DEFAULT_ATTENTION_TYPE,
        torch_dtype: torch.dtype | None = None,
        attention_backend: str = "auto",
    ) -> LDFTransformer3DModel:
        """The start of training: Wan2.1-T2V's diffusers transformer folder, widened to 36 inputs.

        As the reference's train_dit.py: every pretrained tensor is kept; the patch embedding gets the
        pretrained kernel in input channels 0-15 and zeros in 16-35 (bias unchanged), so the LQ latent and
        the mask code start with no effect; the 4 text-projector tensors are dropped. Loading is strict about
        everything else. The model is built on the meta device and takes the loaded tensors (no random init).
        """
        folder = Path(pretrained_model_name_or_path) / (subfolder or "")
        config = {k: v for k, v in WanTransformer3DModel.load_config(folder).items() if not k.startswith("_")}
        if config.get("in_channels", LATENT_CHANNELS) != LATENT_CHANNELS:
            raise ValueError(
                f"{folder} is not a Wan2.1 T2V transformer (in_channels={config['in_channels']})"
            )
        config.update(in_channels=LDF_IN_CHANNELS, attention_type=attention_type)
        with torch.device("meta"):
            model = cls.from_config(config)
        state_dict = wan_t2v_to_ldf_state_dict(read_safetensors_folder(folder), LDF_IN_CHANNELS)
        model.load_state_dict(state_dict, strict=True, assign=True)
        if torch_dtype is not None:
            model.to(torch_dtype)
        model.set_attention_backend(attention_backend)
        return model.eval()

    # -----------------------------------------------------------------------------------------------------
    # Forward

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_hidden_states_image: torch.Tensor | None = None,
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        """Predict the velocity of every chunk of a batch of windows.

        Args:
            hidden_states: ``(B, nT, nH, nW, in_channels, t, h, w)``, the chunked latent (axes: batch, chunk
                grid, channels ``[x_t | y | m]``, latent frames/rows/columns of one chunk); t, h, w must be
                multiples of the patch size.
            timestep: ``(B, nT, nH, nW)`` integer (or float) timesteps in [0, 1000], one per chunk; ``(B,)``
                gives all chunks of an item the same timestep.
            encoder_hidden_states, encoder_hidden_states_image: must be None (no text/image conditioning).
            return_dict: return a ``Transformer2DModelOutput`` rather than a 1-tuple.
            attention_kwargs: only ``{"scale": lora_scale}`` is used (PEFT LoRA).

        Returns:
            ``(B, nT, nH, nW, out_channels, t, h, w)`` in the parameter dtype.
        """
        if encoder_hidden_states is not None or encoder_hidden_states_image is not None:
            raise ValueError(
                "LDF-VFI has no text or image conditioning; pass only hidden_states and timestep"
            )
        if hidden_states.ndim != 8:
            raise ValueError(f"expected (B, nT, nH, nW, C, t, h, w), got shape {tuple(hidden_states.shape)}")
        b, nt, nh, nw, _, t, h, w = hidden_states.shape
        pt, ph, pw = self.config.patch_size
        if t % pt or h % ph or w % pw:
            raise ValueError(f"chunk size {(t, h, w)} is not a multiple of the patch size {(pt, ph, pw)}")
        gt, gh, gw = t // pt, h // ph, w // pw
        grid = ChunkGrid((nt, nh, nw), (gt, gh, gw))
        timestep = self._chunk_timesteps(timestep, (b, nt, nh, nw))

        # One chunk per batch item: diffusers' embedding, modulation and head then act per chunk.
        x = self.patch_embedding(hidden_states.flatten(0, 3))
        x = x.flatten(2).transpose(1, 2).contiguous()  # (B*N, D, C), tokens (t, h, w) row-major
        time_dtype = next(self.condition_embedder.time_embedder.parameters()).dtype
        no_text = x.new_empty(0, dtype=time_dtype)  # the embedder casts temb with .type_as(text states)
        temb, timestep_proj, _, _ = self.condition_embedder(timestep, no_text)
        timestep_proj = timestep_proj.unflatten(1, (6, -1))  # (B*N, 6, C)

        rotary = self.rope(grid, x.device)
        if self.token_parallel is not None:
            x, rotary = self.token_parallel.split_tokens(x, rotary)
        masks = prepare_block_masks(
            self.config.attention_type, len(self.blocks), grid, self._window_backend, x.device
        )
        for block, (mask1, mask2) in zip(self.blocks, masks):
            args1 = WindowAttentionArgs(b, mask1, rotary, self.flex_kernel_options)
            args2 = WindowAttentionArgs(b, mask2, None, self.flex_kernel_options)
            # WanTransformerBlock(hidden, encoder_hidden_states -> attn2, temb, rotary_emb -> attn1)
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(block, x, args2, timestep_proj, args1)
            else:
                x = block(x, args2, timestep_proj, args1)

        shift, scale = (self.scale_shift_table + temb.unsqueeze(1)).chunk(2, dim=1)
        x = (self.norm_out(x.float()) * (1 + scale) + shift).type_as(x)
        x = self.proj_out(x)  # (B*N, D, pt*ph*pw*c), c fastest
        if self.token_parallel is not None:
            x = self.token_parallel.gather_tokens(x)
        x = x.reshape(b, nt, nh, nw, gt, gh, gw, pt, ph, pw, -1)
        out = x.permute(0, 1, 2, 3, 10, 4, 7, 5, 8, 6, 9).reshape(b, nt, nh, nw, -1, t, h, w)
        if not return_dict:
            return (out,)
        return Transformer2DModelOutput(sample=out)

    @staticmethod
    def _chunk_timesteps(timestep: torch.Tensor, chunk_shape: tuple[int, int, int, int]) -> torch.Tensor:
        """``(B, nT, nH, nW)`` or ``(B,)`` timesteps -> ``(B*N,)``, one per chunk in chunk-batch order."""
        timestep = torch.as_tensor(timestep)
        if timestep.ndim == 1 and timestep.shape[0] == chunk_shape[0]:
            timestep = timestep[:, None, None, None].expand(chunk_shape)
        if tuple(timestep.shape) != chunk_shape:
            raise ValueError(
                f"timestep must be (B, nT, nH, nW) = {chunk_shape} or (B,), got {tuple(timestep.shape)}"
            )
        return timestep.reshape(-1)


# ---------------------------------------------------------------------------------------------------------
# Checkpoints


def read_safetensors_folder(folder: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a diffusers model folder: ``diffusion_pytorch_model.safetensors``, its sharded
    ``.index.json`` form, or else every ``*.safetensors`` file in name order (the reference's rule)."""
    folder = Path(folder)
    single = folder / "diffusion_pytorch_model.safetensors"
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        files = sorted({folder / name for name in json.loads(index.read_text())["weight_map"].values()})
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no safetensors weights in {folder}")
    state_dict: dict[str, torch.Tensor] = {}
    for file in files:
        for key, value in load_file(file).items():
            state_dict.setdefault(key, value)
    return state_dict


def wan_t2v_to_ldf_state_dict(
    state_dict: Mapping[str, torch.Tensor], in_channels: int = LDF_IN_CHANNELS
) -> dict[str, torch.Tensor]:
    """Wan2.1-T2V diffusers tensors -> LDF tensors: drop the text projector, zero-widen the patch embedding."""
    out = {k: v for k, v in state_dict.items() if not k.startswith(_TEXT_PROJECTOR)}
    kernel = out["patch_embedding.weight"]
    if kernel.shape[1] > in_channels:
        raise ValueError(f"patch embedding has {kernel.shape[1]} inputs, more than {in_channels}")
    wide = kernel.new_zeros(kernel.shape[0], in_channels, *kernel.shape[2:])
    wide[:, : kernel.shape[1]] = kernel
    out["patch_embedding.weight"] = wide
    return out


def official_state_dict_shapes(
    num_layers: int = 30,
    dim: int = 1536,
    ffn_dim: int = 8960,
    in_channels: int = LDF_IN_CHANNELS,
    out_channels: int = LATENT_CHANNELS,
    patch_size: tuple[int, int, int] = (1, 2, 2),
    freq_dim: int = 256,
) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the released checkpoint, enumerated from REFERENCE_SPEC 1.8 (not from a model)."""
    shapes: dict[str, tuple[int, ...]] = {
        "patch_embedding.weight": (dim, in_channels, *patch_size),
        "patch_embedding.bias": (dim,),
        "condition_embedder.time_embedder.linear_1.weight": (dim, freq_dim),
        "condition_embedder.time_embedder.linear_1.bias": (dim,),
        "condition_embedder.time_embedder.linear_2.weight": (dim, dim),
        "condition_embedder.time_embedder.linear_2.bias": (dim,),
        "condition_embedder.time_proj.weight": (6 * dim, dim),
        "condition_embedder.time_proj.bias": (6 * dim,),
        "scale_shift_table": (1, 2, dim),
        "proj_out.weight": (out_channels * math.prod(patch_size), dim),
        "proj_out.bias": (out_channels * math.prod(patch_size),),
    }
    for i in range(num_layers):
        p = f"blocks.{i}."
        shapes[p + "scale_shift_table"] = (1, 6, dim)
        for attn in ("attn1", "attn2"):
            for proj in ("to_q", "to_k", "to_v", "to_out.0"):
                shapes[f"{p}{attn}.{proj}.weight"] = (dim, dim)
                shapes[f"{p}{attn}.{proj}.bias"] = (dim,)
            shapes[f"{p}{attn}.norm_q.weight"] = (dim,)
            shapes[f"{p}{attn}.norm_k.weight"] = (dim,)
        shapes[p + "norm2.weight"] = (dim,)
        shapes[p + "norm2.bias"] = (dim,)
        shapes[p + "ffn.net.0.proj.weight"] = (ffn_dim, dim)
        shapes[p + "ffn.net.0.proj.bias"] = (ffn_dim,)
        shapes[p + "ffn.net.2.weight"] = (dim, ffn_dim)
        shapes[p + "ffn.net.2.bias"] = (dim,)
    return shapes


@dataclass
class KeyReport:
    """Key-by-key comparison of the LDF model's state dict with the official checkpoint layout."""

    expected: dict[str, tuple[int, ...]]
    model: dict[str, tuple[int, ...]]
    from_wan: dict[str, tuple[int, ...]]
    num_parameters: int
    wan_num_parameters: int
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def __str__(self) -> str:
        lines = [
            f"official keys (spec 1.8):            {len(self.expected)}",
            f"LDFTransformer3DModel keys:          {len(self.model)}",
            f"Wan2.1-T2V-1.3B keys, converted:     {len(self.from_wan)}",
            f"LDF parameters:                      {self.num_parameters:,}",
            f"Wan2.1-T2V-1.3B (diffusers) params:  {self.wan_num_parameters:,}",
        ]
        lines += [f"MISMATCH {m}" for m in self.mismatches] or [
            "every official key consumed, none missing, shapes equal"
        ]
        return "\n".join(lines)


def _compare(name: str, want: Mapping[str, tuple[int, ...]], got: Mapping[str, tuple[int, ...]]) -> list[str]:
    out = [f"{name}: missing {k} {want[k]}" for k in sorted(want.keys() - got.keys())]
    out += [f"{name}: unexpected {k} {got[k]}" for k in sorted(got.keys() - want.keys())]
    out += [
        f"{name}: {k} shape {got[k]} != {want[k]}"
        for k in sorted(want.keys() & got.keys())
        if got[k] != want[k]
    ]
    return out


def official_key_report() -> KeyReport:
    """Build the full 1.3B LDF and Wan2.1-T2V models on the meta device and compare their keys and shapes
    with the official checkpoint layout (spec 1.8). Takes about a second; allocates no weights."""
    with torch.device("meta"):
        ldf = LDFTransformer3DModel()
        wan = WanTransformer3DModel(**WAN_T2V_1_3B_CONFIG)
    model = {k: tuple(v.shape) for k, v in ldf.state_dict().items()}
    converted = wan_t2v_to_ldf_state_dict(wan.state_dict())
    from_wan = {k: tuple(v.shape) for k, v in converted.items()}
    expected = official_state_dict_shapes()
    report = KeyReport(
        expected=expected,
        model=model,
        from_wan=from_wan,
        num_parameters=sum(p.numel() for p in ldf.parameters()),
        wan_num_parameters=sum(p.numel() for p in wan.parameters()),
    )
    report.mismatches = _compare("model", expected, model) + _compare("converted Wan", expected, from_wan)
    return report
