"""On a CUDA device: compiled FlexAttention, the DiT and the sampler agree with their CPU counterparts.

Marked ``cuda`` (skipped where no CUDA device is; ``pytest -m cuda`` selects them, and
``benchmarks/gpu_check.py`` runs them first). Tiny shapes: the real-size checks are the benchmark's.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from ldf_vfi.models.attention import SHIFTED_CHUNK, ChunkGrid, WindowMask, window_attention
from ldf_vfi.models.transformer import LDF_IN_CHANNELS, LDFTransformer3DModel, tiny_config
from ldf_vfi.pipelines.ldf import LDFVFIPipeline

pytestmark = pytest.mark.cuda

RELEASE_MASK = WindowMask("chunk", (2, 1, 1))


@pytest.mark.parametrize(
    "mask, grid, dtype, atol",
    [
        (RELEASE_MASK, ChunkGrid((4, 2, 3), (2, 4, 4)), torch.float32, 1e-5),  # blocks straddle chunks
        (RELEASE_MASK, ChunkGrid((3, 1, 2), (2, 4, 4)), torch.bfloat16, 2e-2),  # 192 tokens: a ragged block
        (SHIFTED_CHUNK, ChunkGrid((4, 2, 2), (2, 4, 4)), torch.float32, 1e-5),  # compiled create_block_mask
    ],
)
def test_compiled_flex_attention_equals_the_dense_reference(mask, grid, dtype, atol):
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(1, 2, grid.seq_len, 64, generator=g, device="cuda", dtype=dtype) for _ in range(3))
    with torch.no_grad():
        flex = window_attention(q, k, v, mask, grid, "flex")  # torch.compile'd on CUDA
        dense = window_attention(q.float(), k.float(), v.float(), mask, grid, "dense")
    assert flex.dtype == dtype
    assert (flex.float() - dense).abs().max() <= atol


def _tiny_inputs(device: str):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 2, 2, LDF_IN_CHANNELS, 2, 4, 4, generator=g)
    t = torch.randint(0, 1001, (1, 3, 2, 2), generator=g)
    return x.to(device), t.to(device)


def test_tiny_dit_on_cuda_matches_the_cpu():
    torch.manual_seed(0)
    model = LDFTransformer3DModel(**tiny_config()).eval()
    x, t = _tiny_inputs("cpu")
    with torch.no_grad():
        expected = model(x, t).sample  # local_sdpa on the CPU
        on_gpu = copy.deepcopy(model).to("cuda")  # auto: FlexAttention, compiled
        out = on_gpu(*_tiny_inputs("cuda")).sample
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), expected, atol=1e-4, rtol=1e-4)


def test_tiny_sampler_runs_on_cuda_in_bf16_and_repeats_itself():
    from test_ldf_pipeline import frames, tiny_pipeline

    cpu = tiny_pipeline()
    pipe = LDFVFIPipeline(
        cpu.transformer, cpu.vae, cpu.settings, device="cuda", dtype=torch.bfloat16, progress=False
    )
    first, again = pipe(frames(5), 4), pipe(frames(5), 4)
    assert len(first) == 17 and all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert pipe.transformer.attention_backend == "auto" and next(pipe.transformer.parameters()).is_cuda
