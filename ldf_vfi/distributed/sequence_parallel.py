"""Ulysses sequence parallelism for the LDF DiT (REFERENCE_SPEC 6).

``sp`` consecutive ranks form a group that shares one window. Each rank keeps the slice
``[r * D / sp, (r + 1) * D / sp)`` of the tokens of **every** chunk (the reference's split), so patch embedding,
per-chunk modulation and the output head stay local. Inside each attention an all-to-all trades the token
split for a head split: every rank then holds all tokens of ``H / sp`` heads, in exactly the sp=1 order, so
the sp=1 mask and kernels serve unchanged; a second all-to-all trades back. The output tokens are
all-gathered before unpatchifying, so every rank ends with the whole prediction.

All collectives are autograd-aware (``torch.distributed._functional_collectives``), so training works; the
gather's backward sums the gradient slices of the group's ranks (each rank then holds the full gradient of
its parameters, like the reference's ``all_gather``), which is why SP ranks must not average twice.
Every rank of a group must run the same forward (same windows, same noise): collectives are issued in the
same order on all of them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol

from ..errors import InputError
from .sharding import process_info


@dataclass
class SequenceParallelGroup:
    """This rank's place in its sequence-parallel group."""

    group: dist.ProcessGroup | None
    size: int
    rank: int  # rank inside the group
    source_rank: int  # global rank of the group's first member (broadcast source for noise)

    @property
    def enabled(self) -> bool:
        return self.size > 1


def init_sequence_parallel(
    sp_size: int, backend: str | None = None, timeout_s: int = 1800
) -> SequenceParallelGroup:
    """Initialise ``torch.distributed`` from the launcher's environment and cut consecutive ranks into groups
    of ``sp_size``. ``sp_size = 1`` needs no process group and returns a disabled group."""
    if sp_size < 1:
        raise InputError(f"--sp_size must be positive, got {sp_size}")
    info = process_info()
    if sp_size == 1:
        return SequenceParallelGroup(None, 1, 0, info.rank)
    if info.world_size % sp_size:
        raise InputError(f"--sp_size {sp_size} must divide the number of processes ({info.world_size})")
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    mine = None
    for first in range(0, info.world_size, sp_size):  # every rank creates every group, in the same order
        ranks = list(range(first, first + sp_size))
        group = dist.new_group(ranks)
        if info.rank in ranks:
            mine = group
    return SequenceParallelGroup(mine, sp_size, info.rank % sp_size, info.rank - info.rank % sp_size)


class UlyssesAttention:
    """The head-parallel hook of :class:`~ldf_vfi.models.attention.LDFAttnProcessor` (Ulysses all-to-all).

    Tensors are in the chunk-batch layout ``(B*N, tokens, heads, head_dim)``.
    """

    def __init__(self, sp: SequenceParallelGroup) -> None:
        self.sp = sp

    def _all_to_all(self, x: torch.Tensor) -> torch.Tensor:
        return funcol.all_to_all_single_autograd(x.contiguous(), None, None, self.sp.group)

    def scatter_heads(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor):
        """``(B*N, D/sp, H, hd)`` local tokens, all heads -> ``(B*N, D, H/sp, hd)`` all tokens, local heads."""
        return tuple(self._tokens_for_heads(x) for x in (query, key, value))

    def _tokens_for_heads(self, x: torch.Tensor) -> torch.Tensor:
        sp = self.sp.size
        bn, d_local, heads, hd = x.shape
        if heads % sp:
            raise ValueError(f"{heads} heads cannot be split over sp={sp} ranks")
        send = x.reshape(bn, d_local, sp, heads // sp, hd).permute(2, 0, 1, 3, 4)  # head group j -> rank j
        received = self._all_to_all(send)  # (source rank = token slice i, bn, d_local, h/sp, hd)
        return received.permute(1, 0, 2, 3, 4).reshape(bn, sp * d_local, heads // sp, hd)

    def gather_heads(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(B*N, D, H/sp, hd)`` -> ``(B*N, D/sp, H, hd)``: the inverse of :meth:`scatter_heads`."""
        sp = self.sp.size
        bn, d, heads_local, hd = hidden_states.shape
        send = hidden_states.reshape(bn, sp, d // sp, heads_local, hd).permute(
            1, 0, 2, 3, 4
        )  # tokens i -> rank i
        received = self._all_to_all(send)  # (source rank = head group j, bn, d/sp, h/sp, hd)
        return received.permute(1, 2, 0, 3, 4).reshape(bn, d // sp, sp * heads_local, hd)


def split_tokens(x: torch.Tensor, sp: SequenceParallelGroup, dim: int = 1) -> torch.Tensor:
    """This rank's contiguous slice of ``dim`` (the tokens of each chunk)."""
    if not sp.enabled:
        return x
    size = x.shape[dim]
    if size % sp.size:
        raise ValueError(f"{size} tokens per chunk cannot be split over sp={sp.size} ranks")
    step = size // sp.size
    return x.narrow(dim, sp.rank * step, step)


def gather_tokens(x: torch.Tensor, sp: SequenceParallelGroup, dim: int = 1) -> torch.Tensor:
    """All ranks' slices of ``dim`` concatenated in rank order (autograd-aware)."""
    if not sp.enabled:
        return x
    return funcol.all_gather_single_autograd(x.contiguous(), gather_dim=dim, group=sp.group)


class UlyssesTokens:
    """The token-parallel hook of :class:`~ldf_vfi.models.transformer.LDFTransformer3DModel`: keep this rank's
    slice of every chunk's tokens (and of the RoPE tables) after the patch embedding; gather all slices after
    the output projection."""

    def __init__(self, sp: SequenceParallelGroup) -> None:
        self.sp = sp

    def split_tokens(self, hidden_states: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]):
        cos, sin = rotary
        return split_tokens(hidden_states, self.sp), (split_tokens(cos, self.sp), split_tokens(sin, self.sp))

    def gather_tokens(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return gather_tokens(hidden_states, self.sp)


def enable_sequence_parallel(transformer: torch.nn.Module, sp: SequenceParallelGroup) -> torch.nn.Module:
    """Make ``transformer`` (an ``LDFTransformer3DModel``) split each window over the ranks of ``sp``.

    A disabled group (sp = 1) removes the hooks. Heads and tokens per chunk must be divisible by ``sp.size``.
    """
    heads = transformer.config.num_attention_heads
    if sp.enabled and heads % sp.size:
        raise InputError(f"--sp_size {sp.size} must divide the model's {heads} attention heads")
    transformer.token_parallel = UlyssesTokens(sp) if sp.enabled else None
    head_parallel = UlyssesAttention(sp) if sp.enabled else None
    for block in transformer.blocks:
        for attn in (block.attn1, block.attn2):
            attn.processor.head_parallel = head_parallel
    return transformer


def broadcast_from_group_source(tensor: torch.Tensor, sp: SequenceParallelGroup) -> torch.Tensor:
    """Give every rank of the group the first rank's ``tensor`` (noise, noise levels), in place."""
    if sp.enabled:
        dist.broadcast(tensor, src=sp.source_rank, group=sp.group)
    return tensor
