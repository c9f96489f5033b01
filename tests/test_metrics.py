"""Metrics: closed forms, scikit-image, the reference's dense formulas, and the weight loaders.

Learned metrics run on random weights saved in the official layouts (``ldf_vfi.metrics.testing``): the
tests prove the loaders and the maths, not the published numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import linalg
from skimage.metrics import structural_similarity

from ldf_vfi.errors import InputError
from ldf_vfi.metrics import (
    LPIPS_WEIGHTS,
    FloLPIPSMetric,
    I3DFeatures,
    InceptionI3D,
    LPIPSMetric,
    PWCNet,
    frechet_distance,
    fvd_windows,
    preprocess_frames,
    psnr,
    resolve_weights,
    ssim_gaussian,
    ssim_matlab,
)
from ldf_vfi.metrics.i3d import _same_padding, config_from_state_dict, tiny_config
from ldf_vfi.metrics.image import gaussian_kernel_1d
from ldf_vfi.metrics.perceptual import build_lpips_alex, flow_weighted_average
from ldf_vfi.metrics.pwcnet import backwarp, correlation
from ldf_vfi.metrics.testing import random_alexnet_features, write_random_metric_weights
from ldf_vfi.metrics.weights import load_state_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pair(seed: int = 0, shape=(2, 3, 24, 32), noise: int = 20):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    b = (a.int() + torch.randint(-noise, noise + 1, shape, generator=g)).clamp(0, 255).to(torch.uint8)
    return a, b


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_random_metric_weights(tmp_path_factory.mktemp("weights"))


# -- PSNR / SSIM -------------------------------------------------------------------------------------


def test_psnr_closed_form_and_quantisation():
    a = torch.full((1, 3, 8, 8), 100, dtype=torch.uint8)
    b = torch.full((1, 3, 8, 8), 110, dtype=torch.uint8)
    assert psnr(a, b).item() == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-5)
    # Float inputs are scored on the 8-bit grid: 100.4/255 rounds to 100, so the error is still 10.
    assert psnr(a.float() / 255 + 0.4 / 255, b).item() == pytest.approx(psnr(a, b).item(), abs=1e-5)
    assert math.isinf(psnr(a, a).item())
    c, d = _pair()
    mse = ((c.double() - d.double()) ** 2).flatten(1).mean(1)
    assert torch.allclose(psnr(c, d).double(), 10 * torch.log10(255**2 / mse), atol=1e-4)


def _ssim_matlab_dense(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reference's definition written out: dense 11^3 Gaussian conv3d after replicate padding 5."""
    g = gaussian_kernel_1d(11, 1.5, dtype=torch.float64)
    w = torch.einsum("i,j,k->ijk", g, g, g)[None, None]
    x, y = x.double()[:, None] / 255, y.double()[:, None] / 255

    def filt(t):
        return F.conv3d(F.pad(t, (5,) * 6, mode="replicate"), w)

    mu1, mu2 = filt(x), filt(y)
    s1, s2, s12 = filt(x * x) - mu1**2, filt(y * y) - mu2**2, filt(x * y) - mu1 * mu2
    c1, c2 = 0.01**2, 0.03**2
    return (((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))).mean(
        (1, 2, 3, 4)
    )


def test_ssim_matlab_matches_dense_reference_formula():
    a, b = _pair(1)
    assert torch.allclose(ssim_matlab(a, b).double(), _ssim_matlab_dense(a, b), atol=2e-6)
    assert torch.allclose(ssim_matlab(a, a), torch.ones(2), atol=1e-6)


def test_ssim_gaussian_matches_scikit_image():
    a, b = _pair(2, shape=(2, 3, 40, 48), noise=40)
    ours = ssim_gaussian(a, b)
    for i in range(2):
        expected = structural_similarity(
            a[i].permute(1, 2, 0).numpy(),
            b[i].permute(1, 2, 0).numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1,
        )
        assert ours[i].item() == pytest.approx(expected, abs=1e-6)


def test_ssim_rejects_tiny_frames():
    a = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="at least 11"):
        ssim_matlab(a, a)


# -- weights ---------------------------------------------------------------------------------------


def test_weight_resolution_and_errors(tmp_path, weights):
    with pytest.raises(InputError, match="--lpips_weights: no file at"):
        resolve_weights(LPIPS_WEIGHTS, tmp_path / "missing.pth", None)
    assert resolve_weights(LPIPS_WEIGHTS, None, None) is None
    assert resolve_weights(LPIPS_WEIGHTS, None, tmp_path) is None
    assert resolve_weights(LPIPS_WEIGHTS, None, weights["lpips"].parent) == weights["lpips"]
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="--lpips_weights .* could not be read"):
        load_state_dict(junk, "--lpips_weights")
    torch.save({"something.else": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="is not an AlexNet trunk"):
        LPIPSMetric.from_file(tmp_path / "other.pth")


# -- LPIPS / FloLPIPS ----------------------------------------------------------------------------------


def test_lpips_builds_without_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("LPIPS tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    build_lpips_alex()


def test_lpips_loads_torchvision_layout_and_matches_lpips_package(tmp_path):
    from safetensors.torch import save_file

    trunk = random_alexnet_features(3)
    save_file(trunk, str(tmp_path / "alex.safetensors"))
    metric = LPIPSMetric.from_file(tmp_path / "alex.safetensors")
    reference = build_lpips_alex()
    for index, k in ((0, 1), (3, 2), (6, 3), (8, 4), (10, 5)):
        conv = getattr(getattr(reference.net, f"slice{k}"), str(index))
        conv.weight.data.copy_(trunk[f"features.{index}.weight"])
        conv.bias.data.copy_(trunk[f"features.{index}.bias"])
    a, b = _pair(4, shape=(3, 3, 48, 64), noise=60)
    expected = reference(a.float() / 255, b.float() / 255, normalize=True).flatten()
    assert torch.allclose(metric(a, b), expected, atol=1e-6)
    assert torch.allclose(metric(a, a), torch.zeros(3), atol=1e-7)
    # The per-layer maps are the same maths: their spatial means sum to LPIPS.
    maps = metric.layer_distance_maps(a.float() / 255, b.float() / 255)
    assert torch.allclose(sum(m.mean((1, 2, 3)) for m in maps), expected, atol=1e-6)
    # Heads in the file override the lpips package's bundled ones.
    heads = {
        f"lin{k}.model.1.weight": torch.ones_like(getattr(reference, f"lin{k}").model[1].weight)
        for k in range(5)
    }
    torch.save({**trunk, **heads}, tmp_path / "with_heads.pth")
    assert not torch.allclose(LPIPSMetric.from_file(tmp_path / "with_heads.pth")(a, b), expected)


def test_flow_weighting_reduces_to_mean_for_uniform_flow():
    dist_map = torch.rand(2, 1, 5, 7)
    uniform = torch.ones(2, 2, 20, 28)
    assert torch.allclose(flow_weighted_average(dist_map, uniform), dist_map.mean((1, 2, 3)), atol=1e-6)
    # All weight on one pixel picks that pixel; zero flow (no weight anywhere) falls back to the mean.
    flow = torch.zeros(2, 2, 5, 7)
    flow[:, 0, 2, 3] = 1.0
    assert torch.allclose(flow_weighted_average(dist_map, flow), dist_map[:, 0, 2, 3])
    assert torch.allclose(flow_weighted_average(dist_map, torch.zeros(2, 2, 5, 7)), dist_map.mean((1, 2, 3)))


class _ConstantFlow(torch.nn.Module):
    """A stand-in flow network: motion 1 px to the right for ground-truth frames, 0 for predictions."""

    def forward(self, first, second):
        flow = torch.zeros(first.shape[0], 2, *first.shape[-2:])
        flow[: first.shape[0] // 2, 0] = 1.0
        return flow


def test_flolpips_with_uniform_flow_difference_equals_lpips(weights):
    lp = LPIPSMetric.from_file(weights["lpips"])
    a, b = _pair(5, shape=(2, 3, 32, 32), noise=50)
    keys = torch.zeros_like(a)
    value = FloLPIPSMetric(lp, _ConstantFlow())(b, a, keys, keys)
    assert torch.allclose(value, lp(b, a), atol=1e-6)


def test_flolpips_with_pwcnet_checkpoint_layout(weights):
    flolpips = FloLPIPSMetric(LPIPSMetric.from_file(weights["lpips"]), PWCNet.from_file(weights["pwcnet"]))
    a, b = _pair(6, shape=(2, 3, 40, 56), noise=50)
    k0, k1 = _pair(7, shape=(2, 3, 40, 56))
    value = flolpips(b, a, k0, k1)
    assert value.shape == (2,) and torch.isfinite(value).all() and (value > 0).all()
    assert torch.allclose(flolpips(a, a, k0, k1), torch.zeros(2), atol=1e-7)


# -- PWC-Net -----------------------------------------------------------------------------------------


def test_correlation_matches_definition():
    g = torch.Generator().manual_seed(8)
    f1, f2 = torch.randn(1, 5, 6, 7, generator=g), torch.randn(1, 5, 6, 7, generator=g)
    volume = correlation(f1, f2)
    assert volume.shape == (1, 81, 6, 7)
    for dy, dx, y, x in ((0, 0, 2, 3), (-4, 3, 5, 1), (2, -1, 0, 6), (4, 4, 1, 1)):
        channel = (dy + 4) * 9 + (dx + 4)
        inside = 0 <= y + dy < 6 and 0 <= x + dx < 7
        expected = (f1[0, :, y, x] * f2[0, :, y + dy, x + dx]).mean() if inside else torch.tensor(0.0)
        assert volume[0, channel, y, x].item() == pytest.approx(expected.item(), abs=1e-6)


def test_backwarp_shifts_and_masks():
    image = torch.arange(2 * 5 * 6, dtype=torch.float32).view(1, 2, 5, 6)
    assert torch.allclose(backwarp(image, torch.zeros(1, 2, 5, 6)), image, atol=1e-5)
    flow = torch.zeros(1, 2, 5, 6)
    # The reference normalises flow by (W - 1) / 2 on a pixel-centre grid: (W - 1) / W moves one pixel.
    flow[:, 0] = 5 / 6
    warped = backwarp(image, flow)
    assert torch.allclose(warped[..., :5], image[..., 1:], atol=1e-4)
    assert (warped[..., 5] == 0).all()  # sampled outside: masked


def test_pwcnet_checkpoint_keys_and_shapes(weights):
    state = PWCNet().state_dict()
    assert state["netExtractor.netOne.0.weight"].shape == (16, 3, 3, 3)
    assert state["netSix.netOne.0.weight"].shape == (128, 81, 3, 3)
    assert state["netFiv.netUpfeat.weight"].shape == (81 + 448, 2, 4, 4)
    assert state["netTwo.netOne.0.weight"].shape == (128, 81 + 32 + 4, 3, 3)
    assert state["netRefiner.netMain.0.weight"].shape == (128, 565, 3, 3)
    assert state["netRefiner.netMain.12.weight"].shape == (2, 32, 3, 3)
    raw = torch.load(weights["pwcnet"], weights_only=True)
    assert "moduleExtractor.moduleOne.0.weight" in raw  # the original checkpoint's names load unchanged
    net = PWCNet.from_file(weights["pwcnet"])
    # Same batch and padded size as the FloLPIPS test, so oneDNN's per-shape warm-up is paid once.
    a, b = _pair(9, shape=(4, 3, 40, 56))
    flow = net(a.float() / 255, b.float() / 255)
    assert flow.shape == (4, 2, 40, 56) and torch.isfinite(flow).all()


# -- I3D / FVD ---------------------------------------------------------------------------------------


def test_i3d_same_padding_rule():
    assert _same_padding(224, 7, 2) == (2, 3)
    assert _same_padding(16, 3, 1) == (1, 1)
    assert _same_padding(7, 2, 2) == (0, 1)
    assert _same_padding(8, 1, 1) == (0, 0)


def test_i3d_full_layout_and_tiny_checkpoint(weights):
    with torch.device("meta"):
        full = InceptionI3D().state_dict()
    assert full["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert full["Conv3d_2c_3x3.bn.running_var"].shape == (192,)
    assert full["Mixed_4b.b1b.conv3d.weight"].shape == (208, 96, 3, 3, 3)
    assert full["Mixed_5c.b3b.conv3d.weight"].shape == (128, 832, 1, 1, 1)
    assert full["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert "logits.conv3d.bias" in full and "logits.bn.weight" not in full
    assert config_from_state_dict(full) == InceptionI3D().config
    net = InceptionI3D.from_file(weights["i3d"])
    assert net.config == tiny_config()
    x = torch.rand(2, 3, 16, 224, 224) * 2 - 1
    out = net(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert torch.allclose(net(x[:1]), out[:1], atol=1e-5)  # batch-independent in eval mode


def test_i3d_batchnorm_uses_the_reference_eps(weights):
    """BatchNorm as metrics/fvd/pytorch_i3d.py:81 builds it, eps 1e-5: with small running variances (as in a
    trained network) eps 1e-3 would change the features several-fold."""
    net = InceptionI3D.from_file(weights["i3d"])
    unit = net.Conv3d_1a_7x7
    g = torch.Generator().manual_seed(3)
    unit.bn.running_mean.copy_(torch.randn(unit.bn.num_features, generator=g) * 0.3)
    unit.bn.running_var.copy_(torch.rand(unit.bn.num_features, generator=g) * 1e-3 + 1e-4)
    unit.bn.weight.data.copy_(torch.rand(unit.bn.num_features, generator=g) + 0.5)
    unit.bn.bias.data.copy_(torch.randn(unit.bn.num_features, generator=g) * 0.1)
    x = torch.rand(1, 3, 16, 32, 32, generator=g) * 2 - 1
    conv = F.conv3d(F.pad(x, (2, 3, 2, 3, 2, 3)), unit.conv3d.weight, stride=2)  # SAME: 7 taps, stride 2
    shape = (1, -1, 1, 1, 1)
    bn = unit.bn
    normed = (conv - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + 1e-5)
    expected = torch.relu(normed * bn.weight.view(shape) + bn.bias.view(shape))
    with torch.no_grad():
        assert torch.allclose(unit(x), expected, atol=1e-4, rtol=1e-4)
    assert bn.momentum == 0.001


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 6))
    b = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6)) * 0.5 + 0.3
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b) - 2 * np.trace(linalg.sqrtm(s_a @ s_b).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.5, 0, 0, 3.0])
    assert frechet_distance(a, a + shift) == pytest.approx((shift**2).sum(), rel=1e-8)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], b[:1])


def test_fvd_preprocessing_and_windows(weights):
    frames = torch.full((16, 3, 30, 40), 255, dtype=torch.uint8)
    x = preprocess_frames(frames)
    assert x.shape == (3, 16, 224, 224) and torch.allclose(x, torch.ones_like(x))
    assert preprocess_frames(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)).min() == -1
    assert fvd_windows(33) == [range(0, 16), range(16, 32)]
    assert fvd_windows(15) == []
    net = InceptionI3D.from_file(weights["i3d"])
    g = torch.Generator().manual_seed(10)
    seqs = [
        preprocess_frames(torch.randint(0, 256, (16, 3, 24, 24), generator=g, dtype=torch.uint8))
        for _ in range(3)
    ]
    one, three = I3DFeatures(net, batch_size=1), I3DFeatures(net, batch_size=3)
    for s in seqs:
        one.add(s, s)
        three.add(s, s)
    p1, g1 = one.flush()
    assert p1.shape == (3, 10) and np.allclose(p1, g1)
    p3, _ = three.flush(force=True)
    assert np.allclose(p1, p3, atol=1e-5)


# -- LPIPS weight converter ----------------------------------------------------------------------------


def _load_converter():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "convert_lpips_weights.py"
    spec = importlib.util.spec_from_file_location("convert_lpips_weights", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lpips_converter_flax_layout_to_torchvision(tmp_path):
    import pickle

    converter = _load_converter()
    trunk = random_alexnet_features(11)
    params = {"AlexNet_0": {}}
    for flax_index, tv_index in converter.TRUNK_INDEX.items():
        params["AlexNet_0"][f"Conv_{flax_index}"] = {
            "kernel": trunk[f"features.{tv_index}.weight"].permute(2, 3, 1, 0).numpy(),  # OIHW -> HWIO
            "bias": trunk[f"features.{tv_index}.bias"].numpy(),
        }
    g = torch.Generator().manual_seed(12)
    heads = [torch.rand(1, c, 1, 1, generator=g) for c in converter.HEAD_CHANNELS]
    for k, head in enumerate(heads):
        params[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": head.permute(2, 3, 1, 0).numpy()}}
    (tmp_path / "alexnet.ckpt").write_bytes(pickle.dumps(params))
    out = tmp_path / "lpips_alexnet.safetensors"
    assert converter.main([str(tmp_path / "alexnet.ckpt"), str(out)]) == 0
    converted = load_state_dict(out, "--lpips_weights")
    for key, value in trunk.items():
        assert torch.equal(converted[key], value)
    for k, head in enumerate(heads):
        assert torch.equal(converted[f"lin{k}.model.1.weight"], head)
    metric = LPIPSMetric.from_file(out)
    assert torch.equal(metric.model.lin2.model[1].weight, heads[2])

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"AlexNet_0": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        converter.main([str(tmp_path / "evil.ckpt"), str(tmp_path / "x.safetensors")])


# -- device ------------------------------------------------------------------------------------------


@pytest.mark.cuda
def test_metrics_on_cuda_match_cpu(weights):
    cuda = torch.device("cuda")
    a, b = _pair(13, shape=(3, 3, 64, 96), noise=40)
    k0, k1 = _pair(14, shape=(3, 3, 64, 96))
    for fn in (psnr, ssim_matlab, ssim_gaussian):
        assert torch.allclose(fn(a.to(cuda), b.to(cuda)).cpu(), fn(a, b), atol=1e-4)
    flolpips = FloLPIPSMetric(LPIPSMetric.from_file(weights["lpips"]), PWCNet.from_file(weights["pwcnet"]))
    on_cpu = flolpips(a, b, k0, k1), flolpips.lpips(a, b)
    flolpips = flolpips.to(cuda)
    on_gpu = flolpips(*(t.to(cuda) for t in (a, b, k0, k1))), flolpips.lpips(a.to(cuda), b.to(cuda))
    for x, y in zip(on_cpu, on_gpu):  # cuDNN convolutions default to TF32 (as in the reference's runs)
        assert torch.allclose(x, y.cpu(), rtol=1e-2, atol=1e-4)
    net = InceptionI3D.from_file(weights["i3d"])
    x = torch.rand(2, 3, 16, 224, 224) * 2 - 1
    assert torch.allclose(net(x), net.to(cuda)(x.to(cuda)).cpu(), rtol=1e-2, atol=1e-3)
