"""Masks (which token sees which, by hand on small grids) and the attention backends (all equal the dense
masked reference)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.nn.attention.flex_attention import create_block_mask

from ldf_vfi.models import attention as A
from ldf_vfi.models.attention import (
    ATTENTION_TYPES,
    CHUNK,
    SHIFTED_CHUNK,
    ChunkGrid,
    WindowMask,
    apply_rotary,
    block_masks,
    chunk_adjacency,
    dense_attention_mask,
    flex_block_mask,
    mask_for_block,
    resolve_backend,
    window_attention,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*flex_attention called without torch.compile.*"),
    pytest.mark.usefixtures("one_torch_thread"),
]


SLIDE_1 = WindowMask("chunk", (1, 1, 1))
SLIDE_2x1x1 = WindowMask("chunk", (2, 1, 1))
SLIDE_2x0x0 = WindowMask("chunk", (2, 0, 0))
SLIDE_2x8x8 = WindowMask("chunk", (2, 8, 8))
TOKEN_4x16x16 = WindowMask("token", (4, 16, 16))
ALL_MASKS = [None, CHUNK, SLIDE_1, SLIDE_2x1x1, SLIDE_2x0x0, SLIDE_2x8x8, SHIFTED_CHUNK, TOKEN_4x16x16]

# (chunks, tokens per chunk): odd sizes, one chunk, single-token axes, a grid where the token window bites.
GRIDS = [
    ChunkGrid((1, 1, 1), (2, 2, 2)),
    ChunkGrid((3, 2, 3), (1, 2, 2)),
    ChunkGrid((2, 3, 1), (3, 1, 3)),
    ChunkGrid((4, 1, 2), (1, 3, 1)),
    ChunkGrid((3, 1, 5), (2, 1, 4)),
]


def chunk_of(grid: ChunkGrid, token: int) -> tuple[int, int, int]:
    """Chunk coordinates of a chunk-major token index, by plain arithmetic."""
    n = token // grid.tokens_per_chunk
    nt, rest = divmod(n, grid.chunks[1] * grid.chunks[2])
    return nt, *divmod(rest, grid.chunks[2])


# ---------------------------------------------------------------------------------------------------------
# Geometry and hand-checked masks


def test_token_coords_are_chunk_major():
    # Two temporal chunks x two column chunks, each 1x1x2 tokens: chunk (0,0,0) holds columns 0-1,
    # chunk (0,0,1) columns 2-3, then the second temporal chunk repeats that at frame 1.
    grid = ChunkGrid((2, 1, 2), (1, 1, 2))
    expected = [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3], [1, 0, 0], [1, 0, 1], [1, 0, 2], [1, 0, 3]]
    assert grid.token_coords().tolist() == expected
    assert (grid.seq_len, grid.num_chunks, grid.tokens_per_chunk, grid.token_shape) == (8, 4, 2, (2, 1, 4))


def test_chunk_mask_sees_only_its_own_chunk():
    # Three chunks of two tokens in a row: block diagonal.
    grid = ChunkGrid((1, 1, 3), (1, 1, 2))
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(dense_attention_mask(CHUNK, grid), expected)


def test_slide_1x1x1_sees_the_neighbouring_chunks_both_ways():
    # Four one-token chunks along time: each sees itself and the chunk before and after (no causality).
    grid = ChunkGrid((4, 1, 1), (1, 1, 1))
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(dense_attention_mask(SLIDE_1, grid), expected)


def test_released_2x1x1_corner_chunk_of_a_3x2x3_grid():
    # Spec 1.6: the corner chunk (0,0,0) attends exactly the 12 chunks with nh, nw in {0, 1}, every nt.
    grid = ChunkGrid((3, 2, 3), (1, 1, 1))
    mask = dense_attention_mask(SLIDE_2x1x1, grid)
    seen = {chunk_of(grid, k) for k in torch.nonzero(mask[0]).flatten().tolist()}
    assert seen == {(nt, nh, nw) for nt in range(3) for nh in range(2) for nw in range(2)}
    # With nT = 3 the temporal window 2 makes attention temporally global: the middle column (nw = 1)
    # sees all 18 chunks.
    middle = 1  # chunk (0, 0, 1)
    assert int(mask[middle].sum()) == 18
    # Spatially limited: chunk (0,0,0) never sees column 2.
    assert not mask[0, [k for k in range(18) if chunk_of(grid, k)[2] == 2]].any()


def test_2x0x0_stays_in_its_spatial_tile():
    grid = ChunkGrid((3, 2, 2), (1, 1, 1))
    mask = dense_attention_mask(SLIDE_2x0x0, grid)
    for q in range(grid.seq_len):
        for k in range(grid.seq_len):
            assert bool(mask[q, k]) == (chunk_of(grid, q)[1:] == chunk_of(grid, k)[1:])


def test_swin_shifted_windows_wrap_around():
    # Two chunks of 4 columns (8 columns); shift by half a chunk (2): columns {6, 7, 0, 1} form one window
    # (wrapping around the edge as torch.roll does), columns {2, 3, 4, 5} the other.
    grid = ChunkGrid((1, 1, 2), (1, 1, 4))
    mask = dense_attention_mask(SHIFTED_CHUNK, grid)
    first, second = {0, 1, 6, 7}, {2, 3, 4, 5}
    for q in range(8):
        group = first if q in first else second
        assert {k for k in range(8) if mask[q, k]} == group


def test_token_window_counts_global_token_distance():
    # Along time, 2 chunks of 4 frames: |df| <= 4, so frame 0 sees frames 0..4 and not 5..7.
    grid = ChunkGrid((2, 1, 1), (4, 1, 1))
    mask = dense_attention_mask(TOKEN_4x16x16, grid)
    assert mask[0].tolist() == [True] * 5 + [False] * 3
    assert mask[7].tolist() == [False] * 3 + [True] * 5


@pytest.mark.parametrize("mask", ALL_MASKS)
def test_masks_are_symmetric_and_see_themselves(mask):
    grid = GRIDS[-1]
    dense = dense_attention_mask(mask, grid)
    assert torch.equal(dense, dense.T)
    assert bool(dense.diagonal().all())


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("mask", ALL_MASKS)
def test_chunk_adjacency_matches_the_token_mask(mask, grid):
    dense = dense_attention_mask(mask, grid)
    n, d = grid.num_chunks, grid.tokens_per_chunk
    pairs = dense.reshape(n, d, n, d)
    any_, all_ = chunk_adjacency(mask, grid)
    assert torch.equal(any_, pairs.any(dim=(1, 3)))
    assert torch.equal(all_, pairs.all(dim=(1, 3)))


# ---------------------------------------------------------------------------------------------------------
# Per-block schedules


def test_schedules_of_the_registered_types_for_30_blocks():
    L = 30
    slide_blocks = {
        "slide_chunk": {9, 19, 29},
        "slide_chunk_6": {4, 9, 14, 19, 24, 29},
        "slide_chunk_all": set(range(30)),
    }
    for name, blocks in slide_blocks.items():
        for i, pair in enumerate(block_masks(name, L)):
            assert pair == ((CHUNK, SLIDE_1) if i in blocks else (CHUNK, CHUNK)), (name, i)
    half = block_masks("slide_chunk_half_block", L)
    assert all(pair == ((SLIDE_1, SLIDE_1) if i % 2 else (CHUNK, CHUNK)) for i, pair in enumerate(half))
    assert block_masks("slide_chunk_all_block", L) == ((SLIDE_1, SLIDE_1),) * L
    assert block_masks("slide_chunk_all_block_2x1x1", L) == ((SLIDE_2x1x1, SLIDE_2x1x1),) * L
    assert block_masks("slide_chunk_all_block_2x0x0", L) == ((SLIDE_2x0x0, SLIDE_2x0x0),) * L
    bottleneck = [pair[0] for pair in block_masks("slide_chunk_bottleneck", L)]
    assert bottleneck == [SLIDE_2x8x8] * 3 + [SLIDE_1] * 24 + [SLIDE_2x8x8] * 3
    swin = block_masks("swin", L)
    assert all(pair == ((SHIFTED_CHUNK,) * 2 if i % 2 else (CHUNK, CHUNK)) for i, pair in enumerate(swin))
    assert block_masks("full", L) == ((None, None),) * L
    assert block_masks("slide_window_4x16x16", L) == ((TOKEN_4x16x16, TOKEN_4x16x16),) * L
    assert set(ATTENTION_TYPES) == {
        "full", "slide_chunk", "slide_chunk_6", "slide_chunk_all", "slide_chunk_half_block",
        "slide_chunk_all_block", "slide_chunk_all_block_2x1x1", "slide_chunk_all_block_2x0x0",
        "slide_chunk_bottleneck", "swin", "slide_window_4x16x16",
    }  # fmt: skip


def test_schedules_for_few_blocks_follow_the_reference_arithmetic():
    # L mod k leading chunk blocks, then every (L // k)-th block slides; k > L: nothing slides.
    assert block_masks("slide_chunk", 2) == ((CHUNK, CHUNK),) * 2
    assert [p[1] for p in block_masks("slide_chunk", 4)] == [CHUNK, SLIDE_1, SLIDE_1, SLIDE_1]
    assert [p[1] for p in block_masks("slide_chunk_6", 8)] == [CHUNK, CHUNK] + [SLIDE_1] * 6
    assert [p[0] for p in block_masks("slide_chunk_half_block", 2)] == [CHUNK, SLIDE_1]
    assert [p[0] for p in block_masks("slide_chunk_bottleneck", 2)] == [SLIDE_2x8x8, SLIDE_1]
    assert mask_for_block("slide_chunk_all", 2, 1, attn=1) == CHUNK
    assert mask_for_block("slide_chunk_all", 2, 1, attn=2) == SLIDE_1


def test_unknown_attention_type_lists_the_valid_ones():
    with pytest.raises(ValueError, match="slide_chunk_all_block_2x1x1"):
        block_masks("slide_chunk_all_block_3x1x1", 30)
    with pytest.raises(ValueError, match="attn must be 1 or 2"):
        mask_for_block("full", 2, 0, attn=3)


# ---------------------------------------------------------------------------------------------------------
# Backends


def reference_attention(q, k, v, mask):
    """softmax(q k^T / sqrt(hd), masked) v in float64, written out."""
    scores = (q.double() @ k.double().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask, float("-inf"))
    return (scores.softmax(dim=-1) @ v.double()).to(q.dtype)


def qkv(grid: ChunkGrid, batch: int = 2, heads: int = 2, hd: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, grid.seq_len, hd, generator=g) for _ in range(3)]


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("mask", ALL_MASKS)
def test_every_backend_equals_the_explicit_masked_softmax(mask, grid):
    q, k, v = qkv(grid)
    expected = reference_attention(q, k, v, dense_attention_mask(mask, grid))
    for backend in ("dense", "local_sdpa", "flex"):
        out = window_attention(q, k, v, mask, grid, backend)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5, msg=f"{backend}")


@pytest.mark.parametrize("group", [1, 4])
@pytest.mark.parametrize("mask", [SLIDE_1, SHIFTED_CHUNK, TOKEN_4x16x16])
def test_local_backend_in_small_memory_groups_is_exact(mask, group):
    # A gather budget of `group` query chunks: groups of 1 chunk, or of 4 (the last one ragged).
    grid = GRIDS[-1]
    q, k, v = qkv(grid)
    expected = reference_attention(q, k, v, dense_attention_mask(mask, grid))
    plan = A.local_plan(mask, grid, "cpu")
    budget = (
        group * 2 * q.shape[0] * q.shape[1] * plan.neighbours.shape[1] * grid.tokens_per_chunk * q.shape[-1]
    )
    out = A._local_attention(q, k, v, mask, plan, grid, budget=budget)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_local_backend_gradients_equal_the_dense_ones():
    grid = ChunkGrid((3, 2, 3), (1, 2, 2))
    grads = {}
    for backend in ("dense", "local_sdpa"):
        q, k, v = (x.requires_grad_() for x in qkv(grid))
        window_attention(q, k, v, SLIDE_2x1x1, grid, backend).square().sum().backward()
        grads[backend] = [x.grad for x in (q, k, v)]
    for a, b in zip(grads["dense"], grads["local_sdpa"]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_backend_resolution():
    assert resolve_backend("auto", torch.device("cpu")) == "local_sdpa"
    assert resolve_backend("auto", torch.device("cuda")) == "flex"
    assert resolve_backend("dense", torch.device("cuda")) == "dense"
    with pytest.raises(ValueError, match="local_sdpa"):
        resolve_backend("flash", torch.device("cpu"))


def test_sequence_length_must_match_the_grid():
    grid = GRIDS[1]
    q, k, v = qkv(ChunkGrid((1, 1, 1), (1, 1, 3)))
    with pytest.raises(ValueError, match="does not match"):
        window_attention(q, k, v, CHUNK, grid)


# ---------------------------------------------------------------------------------------------------------
# FlexAttention block structure (what CUDA relies on; eager CPU flex ignores it)


def block_sets(block_mask):
    def rows(num, idx):
        return [set(idx[0, 0, i, : num[0, 0, i]].tolist()) for i in range(num.shape[-1])]

    full = rows(block_mask.full_kv_num_blocks, block_mask.full_kv_indices)
    return rows(block_mask.kv_num_blocks, block_mask.kv_indices), full


@pytest.mark.parametrize("block_size", [4, 8, 16])
@pytest.mark.parametrize("mask", [CHUNK, SLIDE_1, SLIDE_2x1x1, SLIDE_2x0x0])
def test_analytic_chunk_block_mask_equals_torch_create_block_mask(mask, block_size):
    grid = ChunkGrid((3, 2, 3), (1, 2, 3))  # 6 tokens per chunk: blocks straddle chunks, last block ragged
    ours = flex_block_mask(mask, grid, "cpu", block_size)
    mod = A.flex_mask_mod(mask, grid, "cpu", block_size)
    theirs = create_block_mask(
        mod, None, None, grid.seq_len, grid.seq_len, device="cpu", BLOCK_SIZE=block_size
    )
    assert block_sets(ours) == block_sets(theirs)
    # And in words: every allowed token pair lies in a listed block; a full block holds only allowed pairs.
    dense = dense_attention_mask(mask, grid)
    partial, full = block_sets(ours)
    for qb in range(len(partial)):
        rows = slice(qb * block_size, (qb + 1) * block_size)
        for kb in range(len(partial)):
            tile = dense[rows, kb * block_size : (kb + 1) * block_size]
            if kb in full[qb]:
                assert bool(tile.all())
            elif kb not in partial[qb]:
                assert not bool(tile.any())


def test_block_masks_are_cached_per_grid():
    grid = GRIDS[1]
    assert flex_block_mask(SLIDE_1, grid, "cpu") is flex_block_mask(SLIDE_1, grid, "cpu")
    assert flex_block_mask(None, grid, "cpu") is None
    dense = A.prepare_mask(SLIDE_1, grid, "dense", torch.device("cpu"))
    assert dense is A.prepare_mask(SLIDE_1, grid, "dense", "cpu")
    assert dense.payload.shape == (1, 1, grid.seq_len, grid.seq_len)
    assert A.local_plan(SLIDE_1, grid, "cpu") is A.local_plan(SLIDE_1, grid, "cpu")


def test_released_grid_blocks_align_with_chunks():
    # 8x12x12 = 1152 tokens per chunk = 9 blocks of 128: every block is full or empty, none partial.
    grid = ChunkGrid((3, 2, 3), (8, 12, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm = flex_block_mask(SLIDE_2x1x1, grid, "cpu")
    partial, full = block_sets(bm)
    assert all(not p for p in partial)
    # Block 0 (chunk (0,0,0)) sees the 12 chunks with nh, nw in {0,1}: 12 * 9 blocks.
    assert len(full[0]) == 12 * 9


# ---------------------------------------------------------------------------------------------------------
# RoPE application


def test_apply_rotary_is_a_complex_rotation_of_adjacent_pairs():
    g = torch.Generator().manual_seed(1)
    n, d, heads, hd, batch = 3, 4, 2, 8, 2
    x = torch.randn(batch * n, d, heads, hd, generator=g)
    angle = torch.rand(n, d, hd // 2, generator=g, dtype=torch.float64) * 6
    out = apply_rotary(x, angle.cos(), angle.sin())
    z = torch.view_as_complex(x.double().reshape(batch, n, d, heads, hd // 2, 2))
    rotated = z * torch.polar(torch.ones_like(angle), angle)[None, :, :, None, :]
    expected = torch.view_as_real(rotated).reshape(x.shape).float()
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
