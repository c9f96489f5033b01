"""WanVAE: checkpoint layout, causal cache, sampling, the conditional decoder (REFERENCE_SPEC.md 3)."""

import copy

import pytest
import torch
import torch.nn.functional as F

from ldf_vfi.models.tiling import TilingConfig
from ldf_vfi.models.vae import (
    LATENTS_MEAN,
    LATENTS_STD,
    CheckpointMismatchError,
    WanVAE,
    latent_stats,
    load_state_dict_file,
    original_key_map,
    save_original_state_dict,
    tiny_config,
    tiny_vae,
)

pytestmark = pytest.mark.usefixtures("tiny_cpu")


def _video(frames=5, size=32, seed=1, batch=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, size, size, generator=g) * 2 - 1


def _randomise_zero_convs(vae, seed=3):
    g = torch.Generator().manual_seed(seed)
    for p in vae.zero_convs.parameters():
        p.copy_(torch.randn(p.shape, generator=g) * 0.2)


# ---------------------------------------------------------------------------------------------------------
# The original checkpoint layout, written from the spec's tables (3.1 and 3.3), independently of vae.py.


def _spec_layout(conditional: bool) -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {}

    def conv3d(name, cin, cout, k):
        keys[f"{name}.weight"], keys[f"{name}.bias"] = (cout, cin, *k), (cout,)

    def conv2d(name, cin, cout, k):
        keys[f"{name}.weight"], keys[f"{name}.bias"] = (cout, cin, k, k), (cout,)

    def rb(name, cin, cout):
        keys[f"{name}.residual.0.gamma"] = (cin, 1, 1, 1)
        conv3d(f"{name}.residual.2", cin, cout, (3, 3, 3))
        keys[f"{name}.residual.3.gamma"] = (cout, 1, 1, 1)
        conv3d(f"{name}.residual.6", cout, cout, (3, 3, 3))
        if cin != cout:
            conv3d(f"{name}.shortcut", cin, cout, (1, 1, 1))

    def middle(name, c):
        rb(f"{name}.0", c, c)
        keys[f"{name}.1.norm.gamma"] = (c, 1, 1)
        conv2d(f"{name}.1.to_qkv", c, 3 * c, 1)
        conv2d(f"{name}.1.proj", c, c, 1)
        rb(f"{name}.2", c, c)

    def down(name, c, three_d):
        conv2d(f"{name}.resample.1", c, c, 3)
        if three_d:
            conv3d(f"{name}.time_conv", c, c, (3, 1, 1))

    def up(name, c, three_d):
        conv2d(f"{name}.resample.1", c, c // 2, 3)
        if three_d:
            conv3d(f"{name}.time_conv", c, 2 * c, (3, 1, 1))

    # encoder (table of 3.1)
    conv3d("encoder.conv1", 3, 96, (3, 3, 3))
    rb("encoder.downsamples.0", 96, 96)
    rb("encoder.downsamples.1", 96, 96)
    down("encoder.downsamples.2", 96, False)
    rb("encoder.downsamples.3", 96, 192)
    rb("encoder.downsamples.4", 192, 192)
    down("encoder.downsamples.5", 192, True)
    rb("encoder.downsamples.6", 192, 384)
    rb("encoder.downsamples.7", 384, 384)
    down("encoder.downsamples.8", 384, True)
    rb("encoder.downsamples.9", 384, 384)
    rb("encoder.downsamples.10", 384, 384)
    middle("encoder.middle", 384)
    keys["encoder.head.0.gamma"] = (384, 1, 1, 1)
    conv3d("encoder.head.2", 384, 32, (3, 3, 3))
    conv3d("conv1", 32, 32, (1, 1, 1))
    conv3d("conv2", 16, 16, (1, 1, 1))
    # decoder
    conv3d("decoder.conv1", 16, 384, (3, 3, 3))
    middle("decoder.middle", 384)
    for n in range(3):
        rb(f"decoder.upsamples.{n}", 384, 384)
    up("decoder.upsamples.3", 384, True)
    rb("decoder.upsamples.4", 192, 384)
    rb("decoder.upsamples.5", 384, 384)
    rb("decoder.upsamples.6", 384, 384)
    up("decoder.upsamples.7", 384, True)
    for n in (8, 9, 10):
        rb(f"decoder.upsamples.{n}", 192, 192)
    up("decoder.upsamples.11", 192, False)
    for n in (12, 13, 14):
        rb(f"decoder.upsamples.{n}", 96, 96)
    keys["decoder.head.0.gamma"] = (96, 1, 1, 1)
    conv3d("decoder.head.2", 96, 3, (3, 3, 3))
    if not conditional:
        return keys
    # condition encoder (3.3)
    conv3d("cond_encoder.conv1", 4, 96, (3, 3, 3))
    for n in range(3):
        rb(f"cond_encoder.downsamples.{n}", 96, 96)
    down("cond_encoder.downsamples.3", 96, False)
    rb("cond_encoder.downsamples.4", 96, 192)
    rb("cond_encoder.downsamples.5", 192, 192)
    rb("cond_encoder.downsamples.6", 192, 192)
    down("cond_encoder.downsamples.7", 192, True)
    rb("cond_encoder.downsamples.8", 192, 384)
    for n in range(9, 11):
        rb(f"cond_encoder.downsamples.{n}", 384, 384)
    down("cond_encoder.downsamples.11", 384, True)
    for n in range(12, 15):
        rb(f"cond_encoder.downsamples.{n}", 384, 384)
    middle("cond_encoder.middle", 384)
    zero = [(384, 384)] * 7 + [(384, 192), (384, 384), (384, 384), (192, 384), (192, 192), (192, 192)]
    zero += [(192, 192), (96, 192), (96, 96), (96, 96), (96, 96), (96, 96)]
    for k, (cin, cout) in enumerate(zero):
        conv3d(f"zero_convs.{k}.0", cin, cout, (1, 1, 1))
    return keys


def _numel(layout, prefix=""):
    total = 0
    for k, shape in layout.items():
        if k.startswith(prefix):
            n = 1
            for s in shape:
                n *= s
            total += n
    return total


def test_spec_layout_matches_the_spec_parameter_counts():
    cond = _spec_layout(conditional=True)
    assert len(_spec_layout(conditional=False)) == 194 and len(cond) == 337
    assert _numel(cond, "encoder.") == 53_595_872
    assert _numel(cond, "decoder.") == 73_295_331
    assert _numel(cond, "cond_encoder.") == 71_684_064
    assert _numel(cond, "zero_convs.") == 1_645_632
    assert _numel(cond) == 200_222_227


@pytest.mark.parametrize("conditional", [False, True])
def test_full_size_model_consumes_every_key_of_the_original_layout(conditional):
    layout = _spec_layout(conditional)
    with torch.device("meta"):
        vae = WanVAE(conditional=conditional)
    assert {k: tuple(v.shape) for k, v in vae.original_state_dict().items()} == layout
    vae.load_original_state_dict({k: torch.empty(s, device="meta") for k, s in layout.items()}, assign=True)


def test_plain_key_mapping_agrees_with_diffusers_converter():
    single_file = pytest.importorskip("diffusers.loaders.single_file_utils")
    layout = _spec_layout(conditional=False)
    converted = single_file.convert_wan_vae_to_diffusers({k: torch.empty(0) for k in layout})
    with torch.device("meta"):
        vae = WanVAE()
    ours = {orig: key for key, orig in original_key_map(vae).items()}
    assert {ours[k] for k in layout} == {"autoencoder." + k for k in converted}


@pytest.mark.parametrize(
    ("config", "ours", "original"),
    [
        (
            {},
            "autoencoder.decoder.up_blocks.0.upsamplers.0.time_conv.weight",
            "decoder.upsamples.3.time_conv.weight",
        ),
        ({}, "autoencoder.decoder.up_blocks.3.resnets.2.conv2.bias", "decoder.upsamples.14.residual.6.bias"),
        ({}, "autoencoder.encoder.mid_block.attentions.0.to_qkv.weight", "encoder.middle.1.to_qkv.weight"),
        ({}, "autoencoder.encoder.norm_out.gamma", "encoder.head.0.gamma"),
        ({}, "autoencoder.quant_conv.weight", "conv1.weight"),
        ({}, "autoencoder.post_quant_conv.bias", "conv2.bias"),
        (
            {"conditional": True},
            "cond_encoder.down_blocks.14.norm1.gamma",
            "cond_encoder.downsamples.14.residual.0.gamma",
        ),
        ({"conditional": True}, "zero_convs.18.weight", "zero_convs.18.0.weight"),
        # num_res_blocks=1: decoder stages are 2 blocks + upsampler
        (
            tiny_config(),
            "autoencoder.decoder.up_blocks.1.upsamplers.0.resample.1.weight",
            "decoder.upsamples.5.resample.1.weight",
        ),
        (tiny_config(), "autoencoder.decoder.up_blocks.3.resnets.1.conv_shortcut.weight", None),
        (
            tiny_config(),
            "autoencoder.decoder.up_blocks.3.resnets.0.norm1.gamma",
            "decoder.upsamples.9.residual.0.gamma",
        ),
    ],
)
def test_key_mapping_examples(config, ours, original):
    with torch.device("meta"):
        vae = WanVAE(**config)
    mapping = original_key_map(vae)
    if original is None:
        assert ours not in mapping
    else:
        assert mapping[ours] == original


# ---------------------------------------------------------------------------------------------------------
# Tiny official-format checkpoints


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_tiny_checkpoint_round_trip(tmp_path, conditional, suffix):
    vae = tiny_vae(conditional=conditional)
    if conditional:
        _randomise_zero_convs(vae)
    path = tmp_path / f"vae{suffix}"
    save_original_state_dict(vae, path)
    on_disk = load_state_dict_file(path)
    if suffix == ".pth":
        assert on_disk.keys() == torch.load(path, weights_only=True).keys()
    assert on_disk.keys() == set(original_key_map(vae).values())
    assert any(k.startswith("decoder.upsamples.") for k in on_disk) and "conv1.weight" in on_disk

    loaded = WanVAE.from_original(path, conditional=conditional, config=tiny_config())
    own, back = vae.state_dict(), loaded.state_dict()
    assert own.keys() == back.keys() and all(torch.equal(own[k], back[k]) for k in own)
    re_saved = loaded.original_state_dict()
    assert all(torch.equal(re_saved[k], on_disk[k]) for k in on_disk)

    x = _video()
    kwargs = dict(condition=_video(seed=2), mask=torch.tensor([[1.0, 0, 0, 0, 1]])) if conditional else {}
    assert torch.equal(loaded.decode(loaded.encode(x), **kwargs), vae.decode(vae.encode(x), **kwargs))


def test_diffusers_format_round_trip(tmp_path):
    vae = tiny_vae(conditional=True)
    _randomise_zero_convs(vae)
    vae.save_pretrained(tmp_path)
    back = WanVAE.from_pretrained(tmp_path)
    assert back.conditional and back.config.num_res_blocks == 1
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), back.state_dict().values()))


def test_wrong_checkpoints_are_rejected_with_named_keys(tmp_path):
    plain, cond = tmp_path / "plain.pth", tmp_path / "cond.pth"
    save_original_state_dict(tiny_vae(), plain)
    save_original_state_dict(tiny_vae(conditional=True), cond)

    with pytest.raises(
        CheckpointMismatchError, match=r"missing keys: cond_encoder\.(?s:.*)conditional=False"
    ):
        WanVAE.from_original(plain, conditional=True, config=tiny_config())
    with pytest.raises(
        CheckpointMismatchError, match=r"unexpected keys: cond_encoder\.(?s:.*)conditional=True"
    ):
        WanVAE.from_original(cond, conditional=False, config=tiny_config())

    transformer = tmp_path / "transformer.pth"
    torch.save(
        {"blocks.0.attn1.to_q.weight": torch.zeros(2, 2), "patch_embedding.weight": torch.zeros(1)},
        transformer,
    )
    with pytest.raises(CheckpointMismatchError, match=r"(?s)patch_embedding.*not a Wan2.1 VAE"):
        WanVAE.from_original(transformer, config=tiny_config())

    with pytest.raises(
        CheckpointMismatchError, match=r"(?s)shape mismatches: .*file \(16,\) vs model \(384,\).*model config"
    ):
        WanVAE.from_original(plain, config={})  # a tiny file forced into the released config

    inferred = WanVAE.from_original(plain)  # without a config the sizes are read off the file
    assert (inferred.config.base_dim, inferred.config.num_res_blocks) == (tiny_config()["base_dim"], 1)


# ---------------------------------------------------------------------------------------------------------
# Numerics


def test_plain_path_equals_diffusers_autoencoder():
    vae = tiny_vae()
    x = _video(frames=9)
    z = vae.encode(x)
    mean = vae.autoencoder.encode(x).latent_dist.mean
    assert torch.equal(z, vae.normalize_latents(mean))
    decoded = vae.decode(z)
    assert torch.equal(decoded.clamp(-1, 1), vae.autoencoder.decode(vae.denormalize_latents(z)).sample)
    assert decoded.shape == (1, 3, 9, 32, 32)


def test_latent_normalisation_is_the_reciprocal_form_in_the_compute_dtype():
    z = torch.randn(2, 16, 3, 4, 4).to(torch.bfloat16)
    mean = torch.tensor(list(LATENTS_MEAN), dtype=torch.bfloat16).view(1, -1, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(list(LATENTS_STD), dtype=torch.bfloat16).view(1, -1, 1, 1, 1)
    assert torch.equal(WanVAE.normalize_latents(z), (z - mean) * inv_std)
    assert torch.equal(WanVAE.denormalize_latents(z), z / inv_std + mean)
    m32, s32 = latent_stats(torch.float32)
    assert m32.flatten().tolist() == pytest.approx(LATENTS_MEAN) and (
        1 / s32
    ).flatten().tolist() == pytest.approx(LATENTS_STD)
    z32 = torch.randn(1, 16, 2, 3, 3)
    torch.testing.assert_close(WanVAE.denormalize_latents(WanVAE.normalize_latents(z32)), z32)


def test_sampling_is_the_reference_reparameterisation_with_the_callers_generator():
    vae = tiny_vae()
    x = _video()
    mu, logvar = vae.encode_moments(x)
    a = vae.encode(x, sample=True, generator=torch.Generator().manual_seed(7))
    b = vae.encode(x, sample=True, generator=torch.Generator().manual_seed(7))
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert torch.equal(a, vae.normalize_latents(eps * torch.exp(0.5 * logvar) + mu))
    assert not torch.equal(a, vae.encode(x))
    torch.manual_seed(11)
    c = vae.encode(x, sample=True)
    torch.manual_seed(11)
    assert torch.equal(c, vae.normalize_latents(torch.randn_like(mu) * torch.exp(0.5 * logvar) + mu))


def test_streamed_encode_and_decode_equal_the_whole_clip():
    vae = tiny_vae()
    x = _video(frames=13)
    whole = vae.encode(x)
    for cuts in ([5], [1, 5], [1, 9]):
        cache, parts, start = vae.new_cache("encoder"), [], 0
        for stop in [*cuts, 13]:
            parts.append(vae.encode(x[:, :, start:stop], cache=cache))
            start = stop
        assert torch.equal(torch.cat(parts, 2), whole)
    decoded = vae.decode(whole)
    for cuts in ([1], [2], [1, 3]):
        cache, parts, start = vae.new_cache("decoder"), [], 0
        for stop in [*cuts, 4]:
            parts.append(vae.decode(whole[:, :, start:stop], cache=cache))
            start = stop
        assert torch.equal(torch.cat(parts, 2), decoded)


def test_the_vae_is_causal_in_time():
    vae = tiny_vae()
    x = _video(frames=9)
    z = vae.encode(x)
    assert torch.equal(vae.encode(x[:, :, :5]), z[:, :, :2])
    assert torch.equal(vae.encode(x[:, :, :1]), z[:, :, :1])
    assert torch.equal(vae.decode(z[:, :, :2]), vae.decode(z)[:, :, :5])


def test_clip_lengths_are_checked():
    vae = tiny_vae()
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        vae.encode(_video(frames=6))
    with pytest.raises(ValueError, match="multiple of 4"):
        cache = vae.new_cache("encoder")
        vae.encode(_video(frames=5), cache=cache)
        vae.encode(_video(frames=3), cache=cache)


def test_bf16_model_runs_tiled_and_tracks_fp32(tmp_path):
    vae = tiny_vae(conditional=True)
    _randomise_zero_convs(vae)
    save_original_state_dict(vae, tmp_path / "cond.pth")
    half = WanVAE.from_original(
        tmp_path / "cond.pth", conditional=True, config=tiny_config(), dtype=torch.bfloat16
    )
    cfg = TilingConfig(tile_min_h=32, tile_min_w=32, tile_stride_h=24, tile_stride_w=24, tile_min_t=10)
    x = _video(frames=10, size=48)
    mask = torch.zeros(1, 10)
    mask[:, ::8] = 1
    z32, z16 = (
        vae.tiled_encode(x, cfg, layout="stitched"),
        half.tiled_encode(x.bfloat16(), cfg, layout="stitched"),
    )
    p32 = vae.tiled_decode(z32, cfg, condition=x, mask=mask)
    p16 = half.tiled_decode(z16, cfg, condition=x.bfloat16(), mask=mask.bfloat16())
    assert z16.dtype == p16.dtype == torch.bfloat16 and p16.shape == p32.shape == (1, 3, 10, 48, 48)
    assert (z16.float() - z32).abs().max() < 0.03 and (
        p16.float() - p32
    ).abs().max() < 0.06  # measured 0.009, 0.022


def test_rms_norm_runs_in_the_input_dtype_like_the_reference():
    faithful, upcast = tiny_vae(), tiny_vae(norm_in_input_dtype=False)
    norm, diffusers_norm = faithful.autoencoder.decoder.norm_out, upcast.autoencoder.decoder.norm_out
    x = torch.randn(1, norm.gamma.shape[0], 1, 4, 4).to(torch.bfloat16)
    norm.to(torch.bfloat16)
    assert torch.equal(norm(x), F.normalize(x, dim=1) * norm.scale * norm.gamma)
    diffusers_norm.to(torch.bfloat16)
    assert torch.equal(diffusers_norm(x), F.normalize(x.float(), dim=1).to(x.dtype) * norm.scale * norm.gamma)
    x32 = x.float()
    assert torch.equal(norm.float()(x32), diffusers_norm.float()(x32))


# ---------------------------------------------------------------------------------------------------------
# The conditional decoder


def _condition(frames=5, seed=2):
    mask = torch.zeros(1, frames)
    mask[:, ::4] = 1
    return _video(frames=frames, seed=seed), mask


def test_fresh_conditional_decoder_equals_the_plain_decoder():
    plain, cond = tiny_vae(), tiny_vae(conditional=True)
    assert all(not p.any() for p in cond.zero_convs.parameters())  # zero-initialised, as the reference
    z = plain.encode(_video(frames=9))
    video, mask = _condition(frames=9)
    assert torch.equal(cond.decode(z, condition=video, mask=mask), plain.decode(z))


def test_conditional_decoder_follows_its_condition_frame_by_frame():
    vae = tiny_vae(conditional=True)
    _randomise_zero_convs(vae)
    z = vae.encode(_video())
    video, mask = _condition()
    base = vae.decode(z, condition=video, mask=mask)
    assert not torch.equal(base, vae.decode(z))

    later = video.clone()
    later[:, :, 1:] = _video(seed=9)[:, :, 1:]  # only the part of latent frame 1 changes
    out = vae.decode(z, condition=later, mask=mask)
    assert torch.equal(out[:, :, :1], base[:, :, :1]) and not torch.equal(out[:, :, 1:], base[:, :, 1:])

    full_mask = mask[:, None, :, None, None].expand(-1, 1, -1, 32, 32)
    assert torch.equal(vae.decode(z, condition=video, mask=full_mask), base)
    assert not torch.equal(vae.decode(z, condition=video, mask=torch.ones_like(mask)), base)


def test_condition_features_have_the_decoder_shapes_and_hooks_do_not_leak():
    vae = tiny_vae(conditional=True)
    _randomise_zero_convs(vae)
    video, mask = _condition()
    feats = vae.encode_condition(video, mask)
    assert len(feats) == 2 and len(feats[0]) == len(vae.zero_convs)
    assert [f.shape[2] for f in feats[0]] == [1] * len(vae.zero_convs)
    assert [f.shape[2] for f in feats[1]] == [4] * len(vae.zero_convs)
    # tiny config (2 blocks per stage): conv_in, middle x3, stage 0 at 1/8; each upsampler doubles the scale
    assert [f.shape[-1] for f in feats[1]] == [4] * 6 + [8] * 3 + [16] * 3 + [32] * 3
    z = vae.encode(_video())
    vae.decode(z, condition=video, mask=mask)
    assert all(not m._forward_hooks for m in vae.modules())
    twin = copy.deepcopy(vae)
    assert torch.equal(twin.decode(z, condition=video, mask=mask), vae.decode(z, condition=video, mask=mask))


def test_streamed_conditional_decode_equals_the_whole_clip():
    vae = tiny_vae(conditional=True)
    _randomise_zero_convs(vae)
    z = vae.encode(_video(frames=9))
    video, mask = _condition(frames=9)
    whole = vae.decode(z, condition=video, mask=mask)
    cache = vae.new_cache("decoder")
    first = vae.decode(z[:, :, :1], condition=video[:, :, :1], mask=mask[:, :1], cache=cache)
    rest = vae.decode(z[:, :, 1:], condition=video[:, :, 1:], mask=mask[:, 1:], cache=cache)
    assert torch.equal(torch.cat([first, rest], 2), whole)


def test_condition_needs_a_conditional_model_and_a_mask():
    plain, cond = tiny_vae(), tiny_vae(conditional=True)
    z = plain.encode(_video())
    video, mask = _condition()
    with pytest.raises(ValueError, match="conditional=False"):
        plain.decode(z, condition=video, mask=mask)
    with pytest.raises(ValueError, match="mask"):
        cond.decode(z, condition=video)
    with pytest.raises(ValueError, match="frames"):
        cond.decode(z, condition=video[:, :, :1], mask=mask[:, :1])
