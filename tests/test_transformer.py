"""The LDF transformer: shapes, backends, checkpoints (official and Wan2.1 formats), numerics."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import threading
import warnings

import pytest
import torch
from diffusers import WanTransformer3DModel
from diffusers.models.transformers.transformer_wan import WanAttnProcessor
from safetensors.torch import save_file

from ldf_vfi.models._condition import concat_condition
from ldf_vfi.models.attention import ATTENTION_TYPES, FLEX_KERNEL_OPTIONS_24GB, LDFAttnProcessor
from ldf_vfi.models.transformer import (
    CONFIG_DEFAULT_ATTENTION_TYPE,
    LDF_IN_CHANNELS,
    RELEASE_ATTENTION_TYPE,
    LDFTransformer3DModel,
    official_key_report,
    read_safetensors_folder,
    tiny_config,
    wan_t2v_to_ldf_state_dict,
    window_rope,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*flex_attention called without torch.compile.*"),
    pytest.mark.usefixtures("one_torch_thread"),
]


CHUNK = (2, 4, 4)  # latent (t, h, w) of one tiny chunk: 2x2x2 = 8 tokens


def tiny_model(**overrides) -> LDFTransformer3DModel:
    torch.manual_seed(0)
    return LDFTransformer3DModel(**tiny_config(**overrides)).eval()


def tiny_inputs(grid=(2, 2, 3), batch=1, chunk=CHUNK, seed=1):
    """Random chunked latent and integer timesteps, all chunks at different noise levels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *grid, LDF_IN_CHANNELS, *chunk, generator=g)
    t = torch.randint(0, 1001, (batch, *grid), generator=g)
    return x, t


def run(model, x, t, backend="local_sdpa"):
    model.set_attention_backend(backend)
    with torch.no_grad():
        return model(x, t).sample


@contextlib.contextmanager
def no_warnings_logged():
    """Fail on any warning, from Python's warnings or from diffusers' (non-propagating) logger."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("diffusers")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield
    finally:
        logger.removeHandler(handler)
    assert not records, [r.getMessage() for r in records]


# ---------------------------------------------------------------------------------------------------------
# Forward


def test_forward_shape_dtype_and_tuple_return():
    model = tiny_model()
    x, t = tiny_inputs(grid=(2, 1, 3), batch=2)
    out = run(model, x, t)
    assert out.shape == (2, 2, 1, 3, 16, *CHUNK) and out.dtype == torch.float32
    with torch.no_grad():
        (tup,) = model(x, t, return_dict=False)
    assert torch.equal(tup, out)
    assert torch.isfinite(out).all()


def test_odd_chunk_sizes_and_grids():
    model = tiny_model()
    x, t = tiny_inputs(grid=(3, 2, 1), chunk=(3, 2, 6))  # 3x1x3 tokens per chunk
    out = {b: run(model, x, t, b) for b in ("dense", "local_sdpa", "flex")}
    assert out["dense"].shape == (1, 3, 2, 1, 16, 3, 2, 6)
    torch.testing.assert_close(out["local_sdpa"], out["dense"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["flex"], out["dense"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_every_attention_type_runs_and_backends_agree(attention_type):
    model = tiny_model(attention_type=attention_type)
    x, t = tiny_inputs(grid=(3, 2, 3))
    dense = run(model, x, t, "dense")
    for backend in ("local_sdpa", "flex"):
        torch.testing.assert_close(run(model, x, t, backend), dense, atol=1e-5, rtol=1e-5)


def test_attention_type_changes_the_output_only_where_masks_differ():
    x, t = tiny_inputs(grid=(3, 2, 3))
    local = run(tiny_model(attention_type="slide_chunk_all_block"), x, t)
    released = run(tiny_model(attention_type=RELEASE_ATTENTION_TYPE), x, t)
    full = run(tiny_model(attention_type="full"), x, t)
    assert not torch.allclose(local, released) and not torch.allclose(released, full)
    # One chunk: every mask is full attention.
    x1, t1 = tiny_inputs(grid=(1, 1, 1))
    torch.testing.assert_close(run(tiny_model(attention_type="full"), x1, t1), run(tiny_model(), x1, t1))


def test_per_chunk_timesteps_are_diffusion_forcing():
    # Changing one chunk's timestep changes that chunk's output most, and (through attention) others too;
    # a (B,) timestep equals the same value broadcast to every chunk.
    model = tiny_model()
    x, t = tiny_inputs(grid=(2, 1, 2))
    base = run(model, x, t)
    t2 = t.clone()
    t2[0, 1, 0, 1] = (t2[0, 1, 0, 1] + 500) % 1000
    changed = (run(model, x, t2) - base).abs().flatten(4).amax(-1)
    assert changed[0, 1, 0, 1] == changed.max() and changed.min() > 0
    same = torch.full((1, 2, 1, 2), 321)
    torch.testing.assert_close(run(model, x, torch.tensor([321])), run(model, x, same))


def test_input_errors():
    model = tiny_model()
    x, t = tiny_inputs()
    with pytest.raises(ValueError, match="nT, nH, nW"):
        model(x, t[:, :1])
    with pytest.raises(ValueError, match="no text"):
        model(x, t, encoder_hidden_states=torch.zeros(1, 4, 16))
    with pytest.raises(ValueError, match="expected"):
        model(x[0], t)
    with pytest.raises(ValueError, match="multiple of the patch"):
        model(x[..., :3], t)
    with pytest.raises(ValueError, match="rope_max_seq_len"):
        model(torch.zeros(1, 33, 1, 1, 36, 2, 2, 2), torch.zeros(1, 33, 1, 1))
    with pytest.raises(ValueError, match="valid types"):
        LDFTransformer3DModel(**tiny_config(attention_type="slide"))
    with pytest.raises(ValueError, match="local_sdpa"):
        model.set_attention_backend("flash")
    model.set_attention_backend("dense")
    model.reset_attention_backend()
    assert model.attention_backend == "auto"


def test_rope_tables_use_window_coordinates_in_float64():
    # Chunk (nt=1, nh=0, nw=1) of a 2x1x2 grid of 2x2x2-token chunks: its first token sits at global
    # (f, r, c) = (2, 0, 2), so its first temporal pair turns by angle 2 and its first width pair by 2.
    from ldf_vfi.models.attention import ChunkGrid

    cos, sin = window_rope(ChunkGrid((2, 1, 2), (2, 2, 2)), head_dim=16)
    assert cos.dtype == torch.float64 and cos.shape == (4, 8, 8)
    angle = torch.atan2(sin, cos)
    # head_dim 16: pairs 0-3 time (d_t = 8), 4-5 height, 6-7 width (d_h = d_w = 4).
    assert angle[3, 0, 0].item() == pytest.approx(2.0) and angle[3, 0, 6].item() == pytest.approx(2.0)
    assert angle[3, 0, 4].item() == 0.0
    assert angle[0, 0].abs().max().item() == 0.0  # the window's first token


# ---------------------------------------------------------------------------------------------------------
# Checkpoints


def test_save_load_round_trip(tmp_path):
    model = tiny_model(attention_type="slide_chunk_all_block")
    model.set_attention_type(RELEASE_ATTENTION_TYPE)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["attention_type"] == RELEASE_ATTENTION_TYPE
    with no_warnings_logged():
        loaded = LDFTransformer3DModel.from_pretrained(tmp_path, attention_backend="dense")
    assert loaded.attention_type == RELEASE_ATTENTION_TYPE and loaded.attention_backend == "dense"
    x, t = tiny_inputs()
    assert torch.equal(run(loaded, x, t), run(model, x, t))


def official_folder(root, model: LDFTransformer3DModel, shards: int = 1):
    """Write ``model`` as the released ``<root>/transformer`` folder: the reference's class name and config
    fields (its constructor default attention type), the official key names, safetensors."""
    folder = root / "transformer"
    folder.mkdir(parents=True)
    config = {k: v for k, v in model.config.items() if not k.startswith("_")}
    config.update(
        _class_name="WanTransformer3DModel",
        _diffusers_version="0.33.0.dev0",
        attention_type=CONFIG_DEFAULT_ATTENTION_TYPE,
        patch_size=list(config["patch_size"]),
    )
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if shards == 1:
        save_file(state, folder / "diffusion_pytorch_model.safetensors")
        return folder
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = keys[i::shards]
        save_file({k: state[k] for k in part}, folder / name)
        weight_map.update(dict.fromkeys(part, name))
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize("shards", [1, 3])
def test_official_format_loads_with_the_release_preset(tmp_path, shards):
    source = tiny_model(attention_type=RELEASE_ATTENTION_TYPE)
    official_folder(tmp_path, source, shards)
    with no_warnings_logged():
        loaded = LDFTransformer3DModel.from_release(tmp_path)
    assert loaded.attention_type == RELEASE_ATTENTION_TYPE  # the config says slide_chunk_all_block
    assert set(loaded.state_dict()) == set(source.state_dict())
    x, t = tiny_inputs(grid=(3, 2, 3))
    assert torch.equal(run(loaded, x, t), run(source, x, t))
    # Without the preset, the config's (wrong for these weights) default is used, as in the reference.
    with no_warnings_logged():
        plain = LDFTransformer3DModel.from_pretrained(tmp_path, subfolder="transformer")
    assert plain.attention_type == CONFIG_DEFAULT_ATTENTION_TYPE
    assert not torch.allclose(run(plain, x, t), run(source, x, t))
    with no_warnings_logged():
        chosen = LDFTransformer3DModel.from_pretrained(
            tmp_path, subfolder="transformer", attention_type="full"
        )
    assert chosen.attention_type == "full"


def test_bf16_load_keeps_nothing_in_fp32(tmp_path):
    official_folder(tmp_path, tiny_model())
    model = LDFTransformer3DModel.from_release(tmp_path, torch_dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def tiny_wan(seed: int = 2) -> WanTransformer3DModel:
    """A random Wan2.1-T2V-style diffusers transformer (16 inputs, text projector) of the tiny size."""
    config = tiny_config(in_channels=16)
    config.pop("attention_type")
    torch.manual_seed(seed)
    return WanTransformer3DModel(**config).eval()


def as_self_attention(wan: WanTransformer3DModel) -> WanTransformer3DModel:
    """Make the stock model's attn2 attend to its own hidden states with the stock processor: what LDF does
    with the recycled cross-attention weights (the text states then go unused)."""
    stock = WanAttnProcessor()

    def self_attention(attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        return stock(attn, hidden_states, None, attention_mask, rotary_emb)

    for block in wan.blocks:
        block.attn2.set_processor(self_attention)
    return wan


def test_wan_init_widens_the_patch_embedding_with_zeros(tmp_path):
    wan = tiny_wan()
    wan.save_pretrained(tmp_path / "transformer")  # as in Wan2.1-T2V-1.3B-Diffusers/transformer
    ldf = LDFTransformer3DModel.from_wan_t2v(tmp_path, subfolder="transformer")
    assert ldf.attention_type == CONFIG_DEFAULT_ATTENTION_TYPE and not ldf.training
    w = ldf.patch_embedding.weight
    assert w.shape[1] == 36 and torch.equal(w[:, :16], wan.patch_embedding.weight) and not w[:, 16:].any()
    assert torch.equal(ldf.patch_embedding.bias, wan.patch_embedding.bias)
    wan_state = wan.state_dict()
    for key, value in ldf.state_dict().items():
        if key != "patch_embedding.weight":
            assert torch.equal(value, wan_state[key]), key
    dropped = set(wan_state) - set(ldf.state_dict())
    assert dropped == {
        f"condition_embedder.text_embedder.linear_{i}.{p}" for i in (1, 2) for p in ("weight", "bias")
    }


def test_wan_init_reproduces_the_base_model_on_one_chunk(tmp_path):
    # One chunk: the window is the chunk, so full/chunk-local attention and positions agree with Wan's own
    # forward on the 16 noisy channels; the 20 condition channels (random here) have zero weights.
    wan = as_self_attention(tiny_wan())
    wan.save_pretrained(tmp_path)
    ldf = LDFTransformer3DModel.from_wan_t2v(tmp_path, attention_type=RELEASE_ATTENTION_TYPE)
    x, t = tiny_inputs(grid=(1, 1, 1), batch=2, chunk=(3, 4, 6))
    ours = run(ldf, x, t)
    with torch.no_grad():
        theirs = wan(x[:, 0, 0, 0, :16], t.flatten(), torch.zeros(2, 1, 16)).sample
    torch.testing.assert_close(ours[:, 0, 0, 0], theirs, atol=1e-5, rtol=1e-5)


def test_wan_init_reproduces_the_base_model_on_a_window_with_per_chunk_timesteps(tmp_path):
    # Several chunks with full attention and a different timestep per chunk equal Wan's forward on the
    # assembled window with per-token timesteps: window-global RoPE, chunk batching and per-chunk modulation.
    wan = as_self_attention(tiny_wan())
    wan.save_pretrained(tmp_path)
    ldf = LDFTransformer3DModel.from_wan_t2v(tmp_path, attention_type="full")
    grid, batch = (2, 2, 3), 2
    x, t = tiny_inputs(grid=grid, batch=batch)
    ours = run(ldf, x, t)

    def assemble(v):  # (B, nT, nH, nW, C, t, h, w) -> (B, C, nT*t, nH*h, nW*w)
        return v.permute(0, 4, 1, 5, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(2, 3)

    tokens = t[:, :, None, :, None, :, None].expand(batch, 2, 2, 2, 2, 3, 2)  # (B, nT, t, nH, h, nW, w)
    with torch.no_grad():
        theirs = wan(
            assemble(x[:, :, :, :, :16]), tokens.reshape(batch, -1), torch.zeros(batch, 1, 16)
        ).sample
    torch.testing.assert_close(assemble(ours), theirs, atol=1e-5, rtol=1e-5)


def test_state_dict_conversion_and_reading(tmp_path):
    wan = tiny_wan()
    converted = wan_t2v_to_ldf_state_dict(wan.state_dict())
    assert converted["patch_embedding.weight"].shape[1] == 36
    with pytest.raises(ValueError, match="more than"):
        wan_t2v_to_ldf_state_dict(converted, in_channels=16)
    save_file({k: v.contiguous() for k, v in converted.items()}, tmp_path / "weights.safetensors")
    assert read_safetensors_folder(tmp_path).keys() == converted.keys()
    with pytest.raises(FileNotFoundError):
        read_safetensors_folder(tmp_path / "missing")


def test_key_report_on_meta():
    report = official_key_report()
    assert report.ok, str(report)
    assert len(report.expected) == len(report.model) == len(report.from_wan) == 821
    assert report.model["patch_embedding.weight"] == (1536, 36, 1, 2, 2)
    assert report.num_parameters == 1_410_465_856
    assert report.wan_num_parameters == 1_418_996_800
    assert "none missing" in str(report)


# ---------------------------------------------------------------------------------------------------------
# Training and numerics


def test_gradient_checkpointing_gives_the_same_gradients():
    x, t = tiny_inputs(grid=(2, 2, 2))
    grads = []
    for checkpointing in (False, True):
        model = tiny_model()
        model.set_attention_backend("local_sdpa")
        model.train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(x, t).sample.square().mean().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5, msg=name)
    assert grads[0]["patch_embedding.weight"][:, 16:].abs().sum() > 0  # the condition channels learn


def test_bf16_forward_is_close_to_fp32():
    model = tiny_model()
    x, t = tiny_inputs(grid=(2, 2, 3))
    ref = run(model, x, t)
    model.to(torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    out = run(model, x.bfloat16(), t)
    assert out.dtype == torch.bfloat16
    err = (out.float() - ref).abs().max() / ref.abs().max()
    assert err < 0.05, err


def test_cpu_forward_is_deterministic():
    model = tiny_model()
    x, t = tiny_inputs(grid=(2, 2, 3))
    assert torch.equal(run(model, x, t), run(model, x, t))


def test_torch_compile_gives_the_same_output():
    model = tiny_model()
    model.set_attention_backend("local_sdpa")
    x, t = tiny_inputs(grid=(2, 1, 2))
    expected = run(model, x, t)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, t).sample, expected, atol=0, rtol=0)
    torch._dynamo.reset()


def test_flex_kernel_options_pass_through():
    model = tiny_model()
    x, t = tiny_inputs(grid=(2, 1, 2))
    expected = run(model, x, t, "dense")
    model.flex_kernel_options = FLEX_KERNEL_OPTIONS_24GB
    torch.testing.assert_close(run(model, x, t, "flex"), expected, atol=1e-5, rtol=1e-5)


def test_processors_are_ldf_processors():
    model = tiny_model()
    assert all(isinstance(b.attn1.processor, LDFAttnProcessor) for b in model.blocks)
    assert all(isinstance(b.attn2.processor, LDFAttnProcessor) for b in model.blocks)
    assert not any("text_embedder" in k for k in model.state_dict())


class ThreadUlysses:
    """Ulysses sequence parallelism between threads of one process, through the model's two hook points.

    Rank r keeps token slice r of every chunk; attention exchanges heads for tokens (all-to-all) and back;
    the output tokens are gathered. Exchanges go through a shared table and a barrier.
    """

    def __init__(self, world: int) -> None:
        self.world, self.barrier, self.table = world, threading.Barrier(world), {}

    def rank(self, rank: int):
        comm = self

        class Rank:
            calls = 0

            def all_gather(self, value):
                self.calls += 1
                comm.table[self.calls, rank] = value
                comm.barrier.wait()
                values = [comm.table[self.calls, r] for r in range(comm.world)]
                comm.barrier.wait()
                return values

            def mine(self, size):
                return slice(rank * size, (rank + 1) * size)

            def split_tokens(self, x, rotary):
                keep = self.mine(x.shape[1] // comm.world)
                return x[:, keep], (rotary[0][:, keep], rotary[1][:, keep])

            def gather_tokens(self, x):
                return torch.cat(self.all_gather(x), dim=1)

            def scatter_heads(self, *qkv):
                heads = self.mine(qkv[0].shape[2] // comm.world)
                return tuple(torch.cat([p[:, :, heads] for p in self.all_gather(t)], dim=1) for t in qkv)

            def gather_heads(self, out):
                tokens = self.mine(out.shape[1] // comm.world)
                return torch.cat([p[:, tokens] for p in self.all_gather(out)], dim=2)

        return Rank()


@pytest.mark.parametrize("backend", ["local_sdpa", "dense"])
def test_sequence_parallel_hooks_reproduce_one_device(backend):
    # Not SP itself: proof that Ulysses fits the hook points unchanged (sp=2 equals sp=1).
    model = tiny_model()
    x, t = tiny_inputs(grid=(2, 2, 2))
    expected = run(model, x, t, backend)
    comm, outputs = ThreadUlysses(2), {}

    def rank_main(rank):
        replica, hook = copy.deepcopy(model), comm.rank(rank)
        replica.token_parallel = hook
        for block in replica.blocks:
            block.attn1.processor.head_parallel = hook
            block.attn2.processor.head_parallel = hook
        outputs[rank] = run(replica, x, t, backend)

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert set(outputs) == {0, 1}
    for rank in (0, 1):
        torch.testing.assert_close(outputs[rank], expected, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# Condition path


def test_concat_condition_orders_noisy_lq_mask():
    shape = (1, 2, 1, 1, 16, 2, 4, 4)
    noisy, lq, mask = torch.zeros(shape), torch.ones(shape), torch.full((1, 2, 1, 1, 4, 2, 4, 4), 2.0)
    x = concat_condition(noisy, lq, mask)
    assert x.shape == (1, 2, 1, 1, 36, 2, 4, 4)
    assert (
        x[:, :, :, :, :16].eq(0).all() and x[:, :, :, :, 16:32].eq(1).all() and x[:, :, :, :, 32:].eq(2).all()
    )
    with pytest.raises(ValueError):
        concat_condition(noisy, lq[..., :2], mask)
