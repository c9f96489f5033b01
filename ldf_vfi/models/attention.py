"""Window attention of the LDF DiT: which token sees which (pure functions) and the kernels that apply it.

The DiT denoises a *window* of chunks at once. A chunk is one (temporal chunk x spatial tile) cell of the
chunked latent; after patchify it holds ``t*h*w`` tokens (8*12*12 = 1152 with the released settings). The
window's token sequence is **chunk-major**: chunks in row-major ``(nt, nh, nw)`` order, and inside a chunk
the tokens in row-major ``(t, h, w)`` order. Global token coordinates inside the window are
``(f, r, c) = (nt*t + ti, nh*h + hi, nw*w + wi)``.

Every mask the reference registers is one rule (:class:`WindowMask`): each token gets a 3-vector *label*,
and a query may attend a key iff ``|label_q - label_k| <= window`` on all three axes. Only the label
differs:

* ``"chunk"``         label = the chunk coordinates ``(nt, nh, nw)``: window ``(0, 0, 0)`` is the
  chunk mask (same chunk only), ``(wT, wH, wW)`` the symmetric slide mask (no causality);
* ``"shifted_chunk"`` label = the chunk coordinates of the token's position after a cyclic shift by half
  a chunk, ``((f + t//2) mod F) // t`` etc., window ``(0, 0, 0)``: Swin's shifted windows, wrapping
  around the window's edges exactly as ``torch.roll`` does in the reference;
* ``"token"``         label = the global token coordinates, e.g. window ``(4, 16, 16)``.

``None`` stands for full (unmasked) attention. :func:`block_masks` maps a registered attention type and
the number of blocks to the ``(attn1, attn2)`` mask of every block.

Kernels (one interface, :func:`window_attention`):

* ``"flex"``: FlexAttention with a ``BlockMask`` (compiled with ``dynamic=False`` on CUDA). For chunk
  masks the block structure is built analytically from the chunk adjacency (no ``S x S`` evaluation).
* ``"local_sdpa"``: exact and memory-frugal, for CPU: each query chunk gathers only the keys of the
  chunks it may see and runs SDPA on them, a group of query chunks at a time within a memory budget.
* ``"dense"``: SDPA with an explicit ``(S, S)`` boolean mask; the reference the others are tested
  against. ``"auto"`` picks ``flex`` on CUDA and ``local_sdpa`` elsewhere.

Eager (uncompiled) FlexAttention on CPU ignores the block structure and applies only ``mask_mod``, so the
mask_mod here is always exact at token level; the block structure is an optimisation that CUDA uses.
On CPU (torch 2.14.1) FlexAttention is usable only eagerly: it materialises the full score matrix and has
no backward, and compiling it fails for a mask_mod that reads captured label tensors (an Inductor lowering
error). Hence ``local_sdpa`` on CPU; ``flex`` there serves to check the CUDA mask functions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

__all__ = [
    "ATTENTION_BACKENDS",
    "ATTENTION_TYPES",
    "FLEX_BLOCK_SIZE",
    "FLEX_KERNEL_OPTIONS_24GB",
    "ChunkGrid",
    "HeadParallelHook",
    "LDFAttnProcessor",
    "LocalPlan",
    "PreparedMask",
    "WindowAttentionArgs",
    "WindowMask",
    "apply_rotary",
    "attend",
    "block_masks",
    "check_attention_type",
    "chunk_adjacency",
    "dense_attention_mask",
    "flex_block_mask",
    "flex_mask_mod",
    "local_plan",
    "mask_for_block",
    "prepare_block_masks",
    "prepare_mask",
    "resolve_backend",
    "window_attention",
]

FLEX_BLOCK_SIZE = 128
"""FlexAttention block size; 1152 tokens per released chunk = 9 blocks, so blocks never straddle chunks."""

ATTENTION_BACKENDS = ("auto", "flex", "local_sdpa", "dense")

FLEX_KERNEL_OPTIONS_24GB: dict[str, int] = {
    "BLOCK_M": 64,
    "BLOCK_N": 64,
    "BLOCK_M1": 32,
    "BLOCK_N1": 64,
    "BLOCK_M2": 64,
    "BLOCK_N2": 32,
}
"""Smaller FlexAttention tiles the reference forces on RTX 3090/4090 (its ``GPU_TYPE`` switch; the
default tiles exceed their shared memory, pytorch issue 133254). Use as
``model.flex_kernel_options = FLEX_KERNEL_OPTIONS_24GB``."""

_LOCAL_GATHER_BUDGET = 1 << 25
"""Elements of gathered keys + values that the local backend holds at once (128 MiB in fp32)."""

Label = Literal["chunk", "shifted_chunk", "token"]


# ---------------------------------------------------------------------------------------------------------
# Geometry


@dataclass(frozen=True)
class ChunkGrid:
    """The token geometry of one window.

    Attributes:
        chunks: ``(nT, nH, nW)``, chunks of the window along time, height and width.
        chunk_tokens: ``(t, h, w)``, tokens of one chunk after patchify (latent size / patch size).
    """

    chunks: tuple[int, int, int]
    chunk_tokens: tuple[int, int, int]

    def __post_init__(self) -> None:
        for name in ("chunks", "chunk_tokens"):
            value = tuple(int(v) for v in getattr(self, name))
            if len(value) != 3 or min(value) < 1:
                raise ValueError(f"ChunkGrid.{name} must be three positive ints, got {getattr(self, name)}")
            object.__setattr__(self, name, value)

    @property
    def num_chunks(self) -> int:
        return math.prod(self.chunks)

    @property
    def tokens_per_chunk(self) -> int:
        return math.prod(self.chunk_tokens)

    @property
    def seq_len(self) -> int:
        """Tokens of the whole window, ``S = nT*nH*nW * t*h*w``."""
        return self.num_chunks * self.tokens_per_chunk

    @property
    def token_shape(self) -> tuple[int, int, int]:
        """``(F, R, C)``: extent of the window in tokens along time, height and width."""
        return tuple(n * t for n, t in zip(self.chunks, self.chunk_tokens))  # type: ignore[return-value]

    def token_coords(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Global token coordinates ``(f, r, c)`` in chunk-major order, ``(S, 3)`` int64."""
        (nt, nh, nw), (t, h, w) = self.chunks, self.chunk_tokens
        axes = [torch.arange(n, device=device) for n in (nt, nh, nw, t, h, w)]
        c = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 6)
        return c[:, :3] * torch.tensor([t, h, w], device=device) + c[:, 3:]


# ---------------------------------------------------------------------------------------------------------
# Masks (pure)


@dataclass(frozen=True)
class WindowMask:
    """Query token q may attend key token k iff ``|label(q) - label(k)| <= window`` on every axis.

    Attributes:
        label: what a token's 3-vector label is (see the module docstring).
        window: ``(wT, wH, wW)``, the largest allowed label difference per axis.
    """

    label: Label
    window: tuple[int, int, int]

    @property
    def chunk_aligned(self) -> bool:
        """True when all tokens of a chunk share one label: the mask is constant on chunk pairs."""
        return self.label == "chunk"

    def axis_labels(
        self, grid: ChunkGrid, axis: int, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Labels of the token positions ``0 .. extent-1`` along one axis (0 = t, 1 = h, 2 = w)."""
        size, extent = grid.chunk_tokens[axis], grid.token_shape[axis]
        pos = torch.arange(extent, device=device)
        if self.label == "chunk":
            return pos // size
        if self.label == "shifted_chunk":
            return ((pos + size // 2) % extent) // size
        return pos

    def token_labels(self, grid: ChunkGrid, device: torch.device | str | None = None) -> torch.Tensor:
        """Labels of every token in chunk-major order, ``(S, 3)`` int64."""
        coords = grid.token_coords(device)
        per_axis = [self.axis_labels(grid, a, device)[coords[:, a]] for a in range(3)]
        return torch.stack(per_axis, dim=-1)

    def allows(self, q_labels: torch.Tensor, k_labels: torch.Tensor) -> torch.Tensor:
        """Elementwise rule on broadcastable ``(..., 3)`` label tensors; returns a bool tensor ``(...)``."""
        window = torch.tensor(self.window, device=q_labels.device)
        return ((q_labels - k_labels).abs() <= window).all(dim=-1)


Mask = WindowMask | None
"""A block's attention mask; ``None`` is full attention."""

CHUNK = WindowMask("chunk", (0, 0, 0))
SHIFTED_CHUNK = WindowMask("shifted_chunk", (0, 0, 0))


def _slide(wt: int, wh: int, ww: int) -> WindowMask:
    return WindowMask("chunk", (wt, wh, ww))


def _periodic_slide(num_layers: int, num_slide: int, window: tuple[int, int, int], split: bool):
    """The reference's ``_sliding_chunk_attention_mask`` schedule.

    The first ``L mod k`` blocks get the chunk mask; the remaining ``k * (L // k)`` blocks are walked with
    a 1-based counter and every ``(L // k)``-th of them is a slide block. A slide block uses
    ``[chunk, slide]`` (attn1, attn2) when ``split``, else the slide mask for both. With ``k = 0`` or
    ``k > L`` no block slides (the reference would divide by zero for ``k = 0``).
    """
    slide = _slide(*window)
    masks: list[tuple[Mask, Mask]] = []
    prefix = num_layers % num_slide if 0 < num_slide <= num_layers else num_layers
    stride = num_layers // num_slide if 0 < num_slide <= num_layers else 0
    for i in range(num_layers):
        is_slide = i >= prefix and (i - prefix + 1) % stride == 0
        if not is_slide:
            masks.append((CHUNK, CHUNK))
        else:
            masks.append((CHUNK, slide) if split else (slide, slide))
    return masks


def _bottleneck(num_layers: int):
    """Outer blocks slide 2x8x8, the middle ``int(0.8 L)`` blocks slide 1x1x1 (reference arithmetic)."""
    num_bn = int(num_layers * 0.8)
    num_out = (num_layers - num_bn) // 2
    num_in = num_layers - num_bn - num_out
    outer, inner = _slide(2, 8, 8), _slide(1, 1, 1)
    kinds = [outer] * num_in + [inner] * num_bn + [outer] * num_out
    return [(m, m) for m in kinds]


def _swin(num_layers: int):
    return [(CHUNK, CHUNK) if i % 2 == 0 else (SHIFTED_CHUNK, SHIFTED_CHUNK) for i in range(num_layers)]


def _same(mask: Mask):
    return lambda num_layers: [(mask, mask)] * num_layers


_REGISTRY: dict[str, Callable[[int], list[tuple[Mask, Mask]]]] = {
    "full": _same(None),
    "slide_chunk": lambda n: _periodic_slide(n, 3, (1, 1, 1), split=True),
    "slide_chunk_6": lambda n: _periodic_slide(n, 6, (1, 1, 1), split=True),
    "slide_chunk_all": lambda n: _periodic_slide(n, n, (1, 1, 1), split=True),
    "slide_chunk_half_block": lambda n: _periodic_slide(n, n // 2, (1, 1, 1), split=False),
    "slide_chunk_all_block": lambda n: _periodic_slide(n, n, (1, 1, 1), split=False),
    "slide_chunk_all_block_2x1x1": lambda n: _periodic_slide(n, n, (2, 1, 1), split=False),
    "slide_chunk_all_block_2x0x0": lambda n: _periodic_slide(n, n, (2, 0, 0), split=False),
    "slide_chunk_bottleneck": _bottleneck,
    "swin": _swin,
    "slide_window_4x16x16": _same(WindowMask("token", (4, 16, 16))),
}

ATTENTION_TYPES: tuple[str, ...] = tuple(_REGISTRY)
"""Every ``attention_type`` the reference registers, in the order of its registry."""


def check_attention_type(attention_type: str) -> str:
    """Return ``attention_type`` if registered, else raise a ValueError listing the valid ones."""
    if attention_type not in _REGISTRY:
        raise ValueError(
            f"Unknown attention_type {attention_type!r}; valid types: {', '.join(ATTENTION_TYPES)}"
        )
    return attention_type


@functools.lru_cache(maxsize=64)
def block_masks(attention_type: str, num_layers: int) -> tuple[tuple[Mask, Mask], ...]:
    """The ``(attn1, attn2)`` mask of each of ``num_layers`` blocks for a registered attention type."""
    check_attention_type(attention_type)
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    return tuple(_REGISTRY[attention_type](num_layers))


def mask_for_block(attention_type: str, num_layers: int, block_index: int, attn: Literal[1, 2] = 1) -> Mask:
    """The mask of ``attn1`` (``attn=1``) or ``attn2`` (``attn=2``) of block ``block_index``."""
    if attn not in (1, 2):
        raise ValueError(f"attn must be 1 or 2, got {attn}")
    return block_masks(attention_type, num_layers)[block_index][attn - 1]


def dense_attention_mask(
    mask: Mask, grid: ChunkGrid, device: torch.device | str | None = None
) -> torch.Tensor:
    """``(S, S)`` bool, ``[q, k]`` True iff query token q may attend key token k (chunk-major order).

    Full attention (``mask=None``) gives an all-True matrix. Memory is ``S**2`` bytes: for tests and the
    dense reference backend, not for real window sizes.
    """
    if mask is None:
        return torch.ones(grid.seq_len, grid.seq_len, dtype=torch.bool, device=device)
    labels = mask.token_labels(grid, device)
    return mask.allows(labels[:, None, :], labels[None, :, :])


def _axis_relations(mask: WindowMask, grid: ChunkGrid) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per axis, ``(any, all)`` over chunk pairs: some / every token pair of the two chunks is allowed."""
    out = []
    for axis in range(3):
        lab = mask.axis_labels(grid, axis)
        ok = (lab[:, None] - lab[None, :]).abs() <= mask.window[axis]
        n, size = grid.chunks[axis], grid.chunk_tokens[axis]
        blocks = ok.reshape(n, size, n, size)
        out.append((blocks.any(dim=(1, 3)), blocks.all(dim=(1, 3))))
    return out


def _combine_axes(per_axis: list[torch.Tensor]) -> torch.Tensor:
    """``(n_a, n_a)`` relations of the three axes into the ``(N, N)`` chunk relation (row-major chunks)."""
    t, h, w = per_axis
    rel = t[:, None, None, :, None, None] & h[None, :, None, None, :, None] & w[None, None, :, None, None, :]
    n = t.shape[0] * h.shape[0] * w.shape[0]
    return rel.reshape(n, n)


def chunk_adjacency(mask: Mask, grid: ChunkGrid) -> tuple[torch.Tensor, torch.Tensor]:
    """``(any, all)``, two ``(N, N)`` bool matrices over chunks (row-major ``(nt, nh, nw)``).

    ``any[a, b]``: some token of chunk a may attend some token of chunk b; ``all[a, b]``: every token of a
    may attend every token of b. The rule is a product over axes and a chunk is a box of tokens, so both
    are the per-axis relations combined with AND. Cost is ``O(extent**2)`` per axis plus ``O(N**2)``.
    """
    if mask is None:
        full = torch.ones(grid.num_chunks, grid.num_chunks, dtype=torch.bool)
        return full, full
    rel = _axis_relations(mask, grid)
    return _combine_axes([r[0] for r in rel]), _combine_axes([r[1] for r in rel])


# ---------------------------------------------------------------------------------------------------------
# FlexAttention


def _padded_labels(
    mask: WindowMask, grid: ChunkGrid, device: torch.device | str, block_size: int
) -> torch.Tensor:
    """Token labels padded to whole blocks; padding gets a label no real token is within reach of."""
    labels = mask.token_labels(grid, device)
    pad = -grid.seq_len % block_size
    return F.pad(labels, (0, 0, 0, pad), value=1 << 40)


def flex_mask_mod(
    mask: WindowMask, grid: ChunkGrid, device: torch.device | str, block_size: int = FLEX_BLOCK_SIZE
):
    """The FlexAttention ``mask_mod(b, h, q_idx, kv_idx)`` of a mask (exact at token level)."""
    labels = _padded_labels(mask, grid, device, block_size)
    lt, lh, lw = labels.unbind(-1)
    wt, wh, ww = mask.window

    def mask_mod(b, h, q_idx, kv_idx):
        return (
            ((lt[q_idx] - lt[kv_idx]).abs() <= wt)
            & ((lh[q_idx] - lh[kv_idx]).abs() <= wh)
            & ((lw[q_idx] - lw[kv_idx]).abs() <= ww)
        )

    return mask_mod


def _chunk_blocks(adj_any: torch.Tensor, adj_all: torch.Tensor, grid: ChunkGrid, block_size: int, device):
    """Block-level ``(partial, full)`` ``(nb, nb)`` bool matrices of a chunk-aligned mask.

    Token block i covers a contiguous run of chunks; it may attend block j if any (chunk of i, chunk of j)
    pair is adjacent, and needs no token mask if every pair is fully allowed and neither block runs past the
    end of the sequence.
    """
    s, d = grid.seq_len, grid.tokens_per_chunk
    nb = -(-s // block_size)
    start = torch.arange(nb, device=device) * block_size
    first, last = start // d, (torch.clamp(start + block_size, max=s) - 1) // d
    chunk = torch.arange(grid.num_chunks, device=device)
    inc = ((chunk >= first[:, None]) & (chunk <= last[:, None])).double()
    any_ = (inc @ adj_any.to(device).double() @ inc.T) > 0
    not_all = (inc @ (~adj_all).to(device).double() @ inc.T) > 0
    full = any_ & ~not_all
    ragged = start + block_size > s
    full &= ~ragged[:, None] & ~ragged[None, :]
    return any_ & ~full, full


def _to_kv_blocks(blocks: torch.Tensor, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    counts = blocks.sum(dim=-1).to(torch.int32)
    order = torch.argsort((~blocks).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    return counts[None, None].to(device), order[None, None].to(device)


@functools.lru_cache(maxsize=8)  # a 4K window's BlockMask is a few hundred MB on the GPU
def flex_block_mask(
    mask: Mask, grid: ChunkGrid, device: torch.device | str, block_size: int = FLEX_BLOCK_SIZE
) -> BlockMask | None:
    """The FlexAttention ``BlockMask`` of a mask on a grid (``None`` for full attention); cached per grid.

    Chunk masks get their block structure from the chunk adjacency (cheap at any size); the other masks
    go through ``create_block_mask`` (compiled on CUDA, as the reference). The exact token-level
    ``mask_mod`` is attached either way.
    """
    if mask is None:
        return None
    device = str(torch.device(device))
    mask_mod = flex_mask_mod(mask, grid, device, block_size)
    s = grid.seq_len
    if mask.chunk_aligned:
        partial, full = _chunk_blocks(*chunk_adjacency(mask, grid), grid, block_size, device)
        kv_num, kv_idx = _to_kv_blocks(partial, device)
        full_num, full_idx = _to_kv_blocks(full, device)
        return BlockMask.from_kv_blocks(
            kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block_size, mask_mod=mask_mod, seq_lengths=(s, s)
        )
    compile_mask = torch.device(device).type == "cuda"
    return create_block_mask(
        mask_mod, None, None, s, s, device=device, BLOCK_SIZE=block_size, _compile=compile_mask
    )


@functools.cache
def _compiled_flex_attention():
    # Every new window size is a new static shape (dynamic=False, as the reference): allow many.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 1000)
    return torch.compile(flex_attention, dynamic=False)


def _flex(q, k, v, block_mask: BlockMask | None, kernel_options: dict | None):
    fn = _compiled_flex_attention() if q.is_cuda else flex_attention
    return fn(q, k, v, block_mask=block_mask, kernel_options=kernel_options)


# ---------------------------------------------------------------------------------------------------------
# Local SDPA (CPU)


@dataclass(frozen=True)
class LocalPlan:
    """Neighbour lists of a mask for the local backend.

    Query chunk n attends the key chunks ``neighbours[n, j]`` for the j where ``valid[n, j]``; rows are
    padded to the largest neighbourhood M. ``labels`` (token labels, ``(S, 3)``) is set when some chunk
    pair is only partly allowed, so a token-level mask is needed on top; ``masked`` says whether any mask
    is needed at all.
    """

    neighbours: torch.Tensor  # (N, M) int64, padding points at chunk 0
    valid: torch.Tensor  # (N, M) bool
    labels: torch.Tensor | None
    masked: bool


@functools.lru_cache(maxsize=16)
def local_plan(mask: Mask, grid: ChunkGrid, device: torch.device | str) -> LocalPlan | None:
    """The neighbour lists of a mask on a grid; ``None`` when every token sees every token. Cached."""
    if mask is None:
        return None
    adj_any, adj_all = chunk_adjacency(mask, grid)
    if bool(adj_all.all()):
        return None
    counts = adj_any.sum(dim=1)
    width = int(counts.max())
    order = torch.argsort((~adj_any).to(torch.int8), dim=1, stable=True)[:, :width]
    valid = torch.arange(width)[None, :] < counts[:, None]
    partly = not bool((adj_any == adj_all).all())
    labels = mask.token_labels(grid, device) if partly else None
    masked = partly or not bool(valid.all())
    return LocalPlan(torch.where(valid, order, 0).to(device), valid.to(device), labels, masked)


def _local_attention(
    q, k, v, mask: Mask, plan: LocalPlan | None, grid: ChunkGrid, budget: int = _LOCAL_GATHER_BUDGET
):
    """Exact masked attention that only touches the keys of neighbouring chunks.

    A group of query chunks at a time (its gathered keys and values stay within ``budget`` elements),
    each query chunk gathers the M chunks it may see and SDPA runs on them, with a key-padding mask for
    chunks with fewer than M neighbours and a token mask for partly allowed chunk pairs.
    """
    if plan is None:
        return F.scaled_dot_product_attention(q, k, v)
    b, heads, _, hd = q.shape
    n, d = grid.num_chunks, grid.tokens_per_chunk
    width = plan.neighbours.shape[1]
    # (B, H, S, hd) -> (B, N, D, H, hd). In the model the tensors already lie in this order (the processor
    # passes transposed views), so these are views; gathers then copy whole chunks and SDPA reads strided.
    qc, kc, vc = (x.transpose(1, 2).reshape(b, n, d, heads, x.shape[-1]) for x in (q, k, v))
    group = max(1, budget // max(1, 2 * b * heads * width * d * hd))
    outs = []
    for start in range(0, n, group):
        stop = min(n, start + group)
        g = stop - start
        idx = plan.neighbours[start:stop]  # (G, M)
        kg = kc[:, idx].reshape(b * g, width * d, heads, hd).transpose(1, 2)
        vg = vc[:, idx].reshape(b * g, width * d, heads, vc.shape[-1]).transpose(1, 2)
        qg = qc[:, start:stop].reshape(b * g, d, heads, hd).transpose(1, 2)
        attn_mask = None
        if plan.masked:
            keep = plan.valid[start:stop].repeat_interleave(d, dim=1)[:, None, :]  # (G, 1, M*D)
            if plan.labels is not None:
                q_lab = plan.labels.view(n, d, 3)[start:stop]
                k_lab = plan.labels.view(n, d, 3)[idx].reshape(g, width * d, 3)
                keep = keep & mask.allows(q_lab[:, :, None, :], k_lab[:, None, :, :])  # (G, D, M*D)
            attn_mask = (
                keep[None, :, None].expand(b, g, 1, *keep.shape[1:]).reshape(b * g, 1, *keep.shape[1:])
            )
        og = F.scaled_dot_product_attention(qg, kg, vg, attn_mask=attn_mask)  # (B*G, H, D, hd)
        outs.append(og.transpose(1, 2).reshape(b, g, d, heads, og.shape[-1]))
    out = torch.cat(outs, dim=1)  # (B, N, D, H, hd)
    return out.reshape(b, n * d, heads, out.shape[-1]).transpose(1, 2)


# ---------------------------------------------------------------------------------------------------------
# One interface


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"auto"`` -> ``"flex"`` on CUDA, ``"local_sdpa"`` elsewhere; other names are validated and kept."""
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"Unknown attention backend {backend!r}; valid: {', '.join(ATTENTION_BACKENDS)}")
    if backend == "auto":
        return "flex" if torch.device(device).type == "cuda" else "local_sdpa"
    return backend


@dataclass(frozen=True)
class PreparedMask:
    """A mask made ready for one backend on one grid and device.

    ``payload`` is the backend's form of the mask: a ``BlockMask`` (flex), a :class:`LocalPlan`
    (local_sdpa), a ``(1, 1, S, S)`` bool tensor (dense), or None when no masking is needed.
    """

    mask: Mask
    grid: ChunkGrid
    backend: str
    payload: Any


@functools.lru_cache(maxsize=8)  # holds the payloads alive: a few grids x a few masks
def _prepare(mask: Mask, grid: ChunkGrid, backend: str, device: str) -> PreparedMask:
    name = resolve_backend(backend, torch.device(device))
    if name == "flex":
        payload = flex_block_mask(mask, grid, device)
    elif name == "local_sdpa":
        payload = local_plan(mask, grid, device)
    else:
        payload = None if mask is None else dense_attention_mask(mask, grid, device)[None, None]
    return PreparedMask(mask, grid, name, payload)


@torch.compiler.disable
def prepare_mask(mask: Mask, grid: ChunkGrid, backend: str, device: torch.device | str) -> PreparedMask:
    """Resolve ``backend`` for ``device`` and build (or fetch from the per-grid cache) the mask's payload."""
    return _prepare(mask, grid, backend, str(torch.device(device)))


@torch.compiler.disable
def prepare_block_masks(
    attention_type: str, num_layers: int, grid: ChunkGrid, backend: str, device: torch.device | str
) -> tuple[tuple[PreparedMask, PreparedMask], ...]:
    """:func:`block_masks` made ready for a backend: the ``(attn1, attn2)`` prepared mask of every block.

    Runs outside ``torch.compile`` graphs (one graph break per forward); payloads are cached per grid.
    """
    device = str(torch.device(device))
    return tuple(
        (_prepare(m1, grid, backend, device), _prepare(m2, grid, backend, device))
        for m1, m2 in block_masks(attention_type, num_layers)
    )


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    prepared: PreparedMask,
    kernel_options: dict | None = None,
) -> torch.Tensor:
    """:func:`window_attention` with a mask prepared beforehand (what the processor calls)."""
    if query.shape[-2] != prepared.grid.seq_len:
        raise ValueError(
            f"sequence of {query.shape[-2]} tokens does not match the grid's {prepared.grid.seq_len}"
        )
    if prepared.backend == "flex":
        return _flex(query, key, value, prepared.payload, kernel_options)
    if prepared.backend == "local_sdpa":
        return _local_attention(query, key, value, prepared.mask, prepared.payload, prepared.grid)
    # A 4-D mask: a 2-D one whose first size equals the batch would be read as key padding.
    return F.scaled_dot_product_attention(query, key, value, attn_mask=prepared.payload)


def window_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: Mask,
    grid: ChunkGrid,
    backend: str = "auto",
    kernel_options: dict | None = None,
) -> torch.Tensor:
    """Masked softmax attention over one window, ``softmax(q k^T / sqrt(hd) + mask) v``.

    Args:
        query, key, value: ``(B, H, S, hd)``, tokens in chunk-major order, ``S == grid.seq_len``.
        mask: the block's mask (``None`` = full attention).
        grid: the window geometry the tokens follow.
        backend: ``"auto"`` | ``"flex"`` | ``"local_sdpa"`` | ``"dense"``; all compute the same function.
        kernel_options: passed to FlexAttention (e.g. smaller tiles on 24 GB cards); flex backend only.

    Returns:
        ``(B, H, S, hd)`` in the dtype of ``query``.
    """
    return attend(query, key, value, prepare_mask(mask, grid, backend, query.device), kernel_options)


# ---------------------------------------------------------------------------------------------------------
# The diffusers attention processor


class HeadParallelHook(Protocol):
    """Where sequence parallelism plugs in (Ulysses, REFERENCE_SPEC 6); not implemented here.

    The processor calls ``scatter_heads`` after projection, qk-norm and RoPE on the rank's local tokens,
    and ``gather_heads`` right after the kernel. Both work in the chunk-batch layout
    ``(B*N, tokens, heads, hd)``: ``scatter_heads`` turns ``(B*N, D/sp, H, hd)`` into ``(B*N, D, H/sp, hd)``
    with the tokens of each chunk in their sp=1 order (so the sp=1 mask serves unchanged), ``gather_heads``
    does the inverse. Every rank must issue the same collectives in the same order.
    """

    def scatter_heads(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

    def gather_heads(self, hidden_states: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class WindowAttentionArgs:
    """Everything one attention call needs beyond its input tokens.

    The diffusers ``WanTransformerBlock`` gives its attentions no channel but their positional arguments, so
    the model passes this object in the ``rotary_emb`` slot of ``attn1`` and the ``encoder_hidden_states``
    slot of ``attn2``. Passing it as an argument rather than storing it on the processor keeps gradient
    checkpointing (which re-runs the block later) and ``torch.compile`` correct.

    Attributes:
        batch_size: B; the hidden states arrive as ``(B*N, D, C)``, one chunk per batch item.
        mask: this attention's mask on the window grid, prepared for a backend (:func:`prepare_mask`).
        rotary: ``(cos, sin)``, each ``(N, D, hd/2)`` float64, or None for no RoPE (``attn2``).
        kernel_options: FlexAttention kernel options or None.
    """

    batch_size: int
    mask: PreparedMask
    rotary: tuple[torch.Tensor, torch.Tensor] | None = None
    kernel_options: dict | None = None


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs ``(2j, 2j+1)`` of every head by the token's angles, in float64.

    Args:
        x: ``(B*N, D, H, hd)`` in the chunk-batch layout.
        cos, sin: ``(N, D, hd/2)`` float64 tables of the window (see ``transformer.window_rope``).

    Returns:
        ``x`` rotated, cast back to its dtype (the reference multiplies complex128 numbers).
    """
    bn, d, heads, hd = x.shape
    n = cos.shape[0]
    pairs = x.to(torch.float64).reshape(bn // n, n, d, heads, hd // 2, 2)
    x1, x2 = pairs.unbind(-1)
    c, s = cos[None, :, :, None, :], sin[None, :, :, None, :]
    out = torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1)
    return out.reshape(bn, d, heads, hd).to(x.dtype)


def _qkv(attn, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q, K, V projections of a ``WanAttention`` used as self-attention (fused or not)."""
    if getattr(attn, "fused_projections", False) and hasattr(attn, "to_qkv"):
        return attn.to_qkv(hidden_states).chunk(3, dim=-1)
    if getattr(attn, "fused_projections", False) and hasattr(attn, "to_kv"):
        return (attn.to_q(hidden_states), *attn.to_kv(hidden_states).chunk(2, dim=-1))
    return attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)


class LDFAttnProcessor:
    """Window self-attention for both attentions of a diffusers ``WanTransformerBlock``.

    ``attn1`` gets RoPE, ``attn2`` (Wan's text cross-attention, recycled) does not; both attend over the
    whole window with their block's mask. Steps: project q/k/v on the chunk-batch tokens ``(B*N, D, C)``,
    RMS-normalise q and k across heads, apply RoPE (float64), [SP hook: scatter heads], regroup the chunks
    of each window into one sequence ``(B, H, N*D, hd)``, attend, regroup back, [SP hook: gather], output
    projection.

    Attributes:
        head_parallel: an optional :class:`HeadParallelHook` (sequence parallelism); None on one device.
    """

    def __init__(self, head_parallel: HeadParallelHook | None = None) -> None:
        self.head_parallel = head_parallel

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: WindowAttentionArgs | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: WindowAttentionArgs | None = None,
    ) -> torch.Tensor:
        args = rotary_emb if isinstance(rotary_emb, WindowAttentionArgs) else encoder_hidden_states
        if not isinstance(args, WindowAttentionArgs):
            raise TypeError(
                "LDFAttnProcessor needs WindowAttentionArgs (passed by LDFTransformer3DModel.forward); "
                "text or image conditioning is not supported by LDF-VFI"
            )
        if attention_mask is not None:
            raise ValueError("LDFAttnProcessor builds its own mask from WindowAttentionArgs")
        if getattr(attn, "add_k_proj", None) is not None:
            raise ValueError("image-conditioned (I2V) attention is not part of LDF-VFI")

        dtype = hidden_states.dtype
        query, key, value = _qkv(attn, hidden_states)
        query = attn.norm_q(query).to(dtype).unflatten(2, (attn.heads, -1))
        key = attn.norm_k(key).to(dtype).unflatten(2, (attn.heads, -1))
        value = value.to(dtype).unflatten(2, (attn.heads, -1))
        if args.rotary is not None:
            query = apply_rotary(query, *args.rotary)
            key = apply_rotary(key, *args.rotary)
        if self.head_parallel is not None:
            query, key, value = self.head_parallel.scatter_heads(query, key, value)

        bn, d, heads, _ = query.shape
        b = args.batch_size

        def to_window(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(b, (bn // b) * d, heads, x.shape[-1]).transpose(1, 2)

        out = attend(to_window(query), to_window(key), to_window(value), args.mask, args.kernel_options)
        out = out.transpose(1, 2).reshape(bn, d, heads, out.shape[-1])
        if self.head_parallel is not None:
            out = self.head_parallel.gather_heads(out)
        out = out.flatten(2, 3).type_as(query)
        out = attn.to_out[0](out)
        return attn.to_out[1](out)
