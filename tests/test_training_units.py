"""Pieces of the trainers: noise-level statistics, the lr schedule, EMA, checkpoints, losses, discriminator,
optimizer hyper-parameters, flag validation."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from ldf_vfi.errors import InputError
from ldf_vfi.training.args import build_parser, ema_decays, gradient_accumulation_steps
from ldf_vfi.training.checkpoint import (
    RunState,
    checkpoint_path,
    list_checkpoints,
    prune_checkpoints,
    resolve_resume,
)
from ldf_vfi.training.discriminator import ActNorm, PatchDiscriminator
from ldf_vfi.training.dit import draw_noise
from ldf_vfi.training.ema import EMA
from ldf_vfi.training.loop import gather_lq, keyed_generator, to_unit
from ldf_vfi.training.losses import (
    VAELoss,
    adaptive_gan_weight,
    hinge_d_loss,
    kl_divergence,
)
from ldf_vfi.training.schedule import learning_rate


def _unshift(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Inverse of ``s t / (1 + (s - 1) t)``."""
    return t / (shift - (shift - 1) * t)


def _draws(dtype: torch.dtype, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    x0 = torch.zeros(1, 3, 2, 2, 4, 2, 2, 2, dtype=dtype)
    pairs = [draw_noise(x0, [keyed_generator(7, position, 0)], "temporal", 5.0) for position in range(count)]
    return torch.cat([n for n, _ in pairs]), torch.cat([t for _, t in pairs])


def test_training_noise_levels_follow_the_shifted_logit_normal():
    """The trainer's draws (one keyed generator per sample position): per temporal chunk, shared by its tiles,
    logit(unshift(t)) ~ N(0, 1), independent across chunks and samples; the noise is N(0, 1)."""
    noise, t = _draws(torch.float32, 2500)
    assert t.shape == (2500, 3, 2, 2)
    assert torch.equal(t, t[:, :, :1, :1].expand_as(t))  # every tile of a temporal chunk shares t
    u = torch.logit(_unshift(t[:, :, 0, 0].double(), 5.0)).numpy()
    assert stats.kstest(u.flatten(), "norm").pvalue > 1e-3  # 7500 draws
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.06  # chunks of one sample
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.06  # consecutive samples
    assert float(t.median()) == pytest.approx(5 / 6, abs=0.01)  # the spec's median 0.833
    assert float((t < 0.5).double().mean()) == pytest.approx(0.054, abs=0.01)  # and P(t < 0.5)
    assert noise.mean().abs() < 0.02 and (noise.std() - 1).abs() < 0.02
    # Under bf16 the same keys give the same levels rounded to bf16 (t is cast before the shift, as the
    # reference's bf16 training did), so the distribution is this one up to bf16 resolution.
    _, t_bf16 = _draws(torch.bfloat16, 200)
    assert t_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(t_bf16.float(), t[:200], atol=8e-3, rtol=0)


def test_noise_levels_all_mode_and_key_reproducibility():
    x0 = torch.zeros(2, 2, 2, 2, 4, 2, 2, 2)
    generators = [keyed_generator(1, p, 0) for p in (10, 11)]
    noise, t = draw_noise(x0, generators, "all", 1.0)
    assert not torch.equal(t[:, :, 0, 0], t[:, :, 1, 1])  # independent per chunk
    again, t_again = draw_noise(x0, [keyed_generator(1, p, 0) for p in (10, 11)], "all", 1.0)
    assert torch.equal(noise, again) and torch.equal(t, t_again)
    single, t_single = draw_noise(x0[:1], [keyed_generator(1, 11, 0)], "all", 1.0)
    assert torch.equal(single[0], noise[1]) and torch.equal(t_single[0], t[1])  # a sample's draw is its own
    other, _ = draw_noise(x0[:1], [keyed_generator(1, 11, 1)], "all", 1.0)
    assert not torch.equal(other[0], noise[1])  # another purpose, another stream


def test_pixel_mapping_and_lq_gather():
    frames = torch.tensor([0, 127, 128, 133, 255], dtype=torch.uint8)
    assert to_unit(frames, torch.float32).tolist() == pytest.approx(
        [-1.0, -0.00392, 0.00392, 0.04314, 1.0], abs=1e-4
    )
    assert (
        to_unit(frames, torch.bfloat16)[3].item() == 0.046875
    )  # bf16 arithmetic, as the reference (spec 5.4)
    gt = torch.arange(2 * 1 * 4).reshape(2, 1, 4, 1, 1).expand(2, 1, 4, 2, 3)
    lq = gather_lq(gt, torch.tensor([[0, 0, 2, 2], [1, 1, 1, 3]]))
    assert lq[0, 0, :, 0, 0].tolist() == [0, 0, 2, 2] and lq[1, 0, :, 1, 2].tolist() == [5, 5, 5, 7]


@pytest.mark.parametrize(
    "samples, ref_batches, rampup, expected",
    [
        (0, 0, 0.5, 0.0),  # the first step of a ramped run has lr 0
        (250_000, 0, 0.5, 2.5e-5),
        (500_000, 0, 0.5, 5e-5),
        (2_000_000, 0, 0.5, 5e-5),  # constant after the ramp (released recipe)
        (123, 0, 0, 5e-5),  # no ramp
        (256 * 1000, 1000, 0, 5e-5),  # decay starts after ref_batches steps
        (256 * 4000, 1000, 0, 2.5e-5),
    ],
)
def test_learning_rate_schedule(samples, ref_batches, rampup, expected):
    assert learning_rate(samples, 256, 5e-5, ref_batches, rampup) == pytest.approx(
        expected, rel=1e-12, abs=1e-20
    )


def test_ema_updates_several_decays_in_fp32():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = EMA(model, [0.5, 0.9])
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    for decay, average in ema:
        assert average.weight.dtype == torch.float32 and not average.weight.requires_grad
        torch.testing.assert_close(average.weight, start + (1 - decay))
    half = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}  # e.g. DeepSpeed bf16 weights
    ema.update(half)
    assert ema.models[0.5].weight.dtype == torch.float32
    assert not EMA(model, []) and ema


def test_ema_save_and_load_round_trip(tmp_path):
    model = nn.Linear(2, 2)
    ema = EMA(model, [0.99])
    ema.save(tmp_path, lambda m, folder: (folder.mkdir(), torch.save(m.state_dict(), folder / "w.pt")))
    other = EMA(nn.Linear(2, 2), [0.99, 0.5])

    def read(m, folder):
        if not folder.is_dir():
            return False
        m.load_state_dict(torch.load(folder / "w.pt", weights_only=True))
        return True

    assert other.load(tmp_path, read) == [0.5]  # not in the checkpoint: reported, kept
    assert torch.equal(other.models[0.99].weight, ema.models[0.99].weight)


def test_checkpoints_latest_skips_partial_and_prunes(tmp_path):
    for step in (100, 20, 300):
        folder = checkpoint_path(tmp_path, step)
        folder.mkdir()
        (folder / "state.json").write_text(RunState(step, step * 2, step * 4).to_json())
    (tmp_path / "checkpoint-400.partial").mkdir()
    (tmp_path / "checkpoint-500").mkdir()  # no state.json: incomplete
    assert [s for s, _ in list_checkpoints(tmp_path)] == [20, 100, 300]
    assert resolve_resume("latest", tmp_path).name == "checkpoint-300"
    assert resolve_resume("checkpoint-100", tmp_path).name == "checkpoint-100"
    assert resolve_resume(None, tmp_path) is None and resolve_resume("latest", tmp_path / "none") is None
    with pytest.raises(InputError, match="not a complete checkpoint"):
        resolve_resume("checkpoint-500", tmp_path)
    state = RunState.load(tmp_path / "checkpoint-300")
    assert (state.global_step, state.cur_nsample, state.data_position) == (300, 600, 1200)
    assert [p.name for p in prune_checkpoints(tmp_path, 2)] == ["checkpoint-20"]
    assert prune_checkpoints(tmp_path, None) == []


def test_gradient_accumulation_fills_the_global_batch():
    assert gradient_accumulation_steps(256, 8, 32) == 1 and gradient_accumulation_steps(256, 2, 4) == 32
    with pytest.raises(InputError, match="not a multiple"):
        gradient_accumulation_steps(256, 3, 4)


def test_adam_hyper_parameters_come_from_the_flags(tmp_path, monkeypatch):
    """Bug 21: the reference's DeepSpeed setup ignored --adam_beta1/--adam_weight_decay/--adam_epsilon."""
    from accelerate.state import AcceleratorState, GradientState

    from ldf_vfi.training.loop import TrainingRun

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    (tmp_path / "data").mkdir()
    args = build_parser("dit").parse_args(
        ["--data", str(tmp_path / "data"), "--vae_path", str(tmp_path), "--output_dir", str(tmp_path / "out"),
         "--adam_beta1", "0.8", "--adam_beta2", "0.95", "--adam_epsilon", "1e-6", "--batch_size", "8",
         "--batch_gpu", "2", "--logger", "none"]
    )  # fmt: skip
    run = TrainingRun(args, name="test")
    assert run.gas == 4
    model = nn.Linear(2, 2)
    optimizer = run.adam(model.parameters(), weight_decay=0.125)
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert group["betas"] == (0.8, 0.95) and group["eps"] == 1e-6 and group["weight_decay"] == 0.125
    assert isinstance(run.adam(model.parameters(), 0.0, decoupled=False), torch.optim.Adam)
    assert run.state.global_step == 0 and run.lr(5e-5) == 0.0  # first step of the 0.5M-sample ramp
    assert json.loads((tmp_path / "out" / "args.json").read_text())["adam_beta1"] == 0.8


# What the released DiT was trained with (REFERENCE_SPEC 14): the reference's DummyOptim path
# (train_dit.py:383-396) under its configs/zero_stage1_config.json, run with accelerate 1.15.0 and DeepSpeed 0.19.8,
# builds FusedAdam(adam_w_mode=1) with these values; its --adam_beta1 0.95 / --adam_weight_decay 1e-6 never arrive.
RELEASED_DIT_ADAM = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
# train_vae.py:298-310, torch.optim.Adam with its argparse defaults (train_vae.py:99-102).
REFERENCE_VAE_ADAM = {"betas": (0.95, 0.999), "eps": 1e-8, "weight_decay": 0.0}


def test_released_recipe_is_the_default(tmp_path):
    d = v = str(tmp_path)
    dit = build_parser("dit").parse_args(["--data", d, "--vae_path", v])
    assert (dit.num_frames, dit.pn, dit.temporal_sf, dit.t_shift, dit.diffusion_forcing) == (
        60,
        "0.25M",
        "2-16",
        5.0,
        "temporal",
    )
    assert (dit.tile_min_h, dit.tile_stride_h, dit.tile_min_t, dit.vae_batch_size) == (256, 192, 20, 16)
    assert (dit.batch_size, dit.batch_gpu, dit.ref_lr, dit.rampup_Msample) == (256, 8, 5e-5, 0.5)
    assert dit.no_bicubic and dit.grad_checkpoint and ema_decays(dit.ema_decay) == [0.995, 0.999]
    assert (dit.num_epochs, dit.checkpointing_steps, dit.seed, dit.dataloader_num_workers) == (20, 100, 42, 2)
    assert ((dit.adam_beta1, dit.adam_beta2), dit.adam_epsilon, dit.adam_weight_decay) == tuple(
        RELEASED_DIT_ADAM.values()
    )
    assert dit.max_grad_norm == 1.0  # the ZeRO config's gradient_clipping
    # The VAE decoder: the reference's train_vae.py argparse defaults (it has no launch script).
    vae = build_parser("vae").parse_args(["--data", d])
    assert (vae.pn, vae.temporal_sf, vae.no_bicubic, vae.batch_size, vae.batch_gpu) == (
        "0.25M",
        "4",
        False,
        2048,
        16,
    )
    assert (vae.ref_lr, vae.rampup_Msample, vae.disc_lr, vae.disc_start) == (1e-4, 0.0, 1e-4, 50001)
    assert (vae.perceptual_weight, vae.kl_weight, vae.disc_weight) == (1.0, 1e-6, 0.5)
    assert ((vae.adam_beta1, vae.adam_beta2), vae.adam_epsilon, vae.adam_weight_decay) == tuple(
        REFERENCE_VAE_ADAM.values()
    )
    assert (vae.num_epochs, vae.checkpointing_steps, vae.ema_decay) == (100, 500, "")
    assert not vae.freeze_encoder and not vae.freeze_decoder and vae.max_grad_norm == 0.0
    assert vae.num_frames == 5  # the reference's 60 cannot run (57 frames come back); 5 = one decoded group
    assert not build_parser("dit").parse_args(["--data", d, "--vae_path", v, "--bicubic"]).no_bicubic
    # The reference launcher's lines parse unchanged.
    (tmp_path / "wan1_3B.json").write_text("{}")
    reference_line = (f"--model_config={tmp_path / 'wan1_3B.json'} --vae_channels=16 --lq_proj_hidden_dim=16 "
                      "--attention_type=slide_chunk_all_block_2x1x1 --temporal_upsample=nearest "
                      "--diffusion_forcing=temporal --vae_type=wan2_1 --spatial_compression_ratio=8 "
                      "--temporal_compression_ratio=4 --avg_frames=0,0 --batch_vae=32 --start_step=0 --reset_lr "
                      "--grad_checkpoint --resume_from_checkpoint=latest").split() + [f"--data={d}", f"--vae_path={v}"]  # fmt: skip
    assert build_parser("dit").parse_args(reference_line).batch_vae == 32


def test_discriminator_shapes_and_actnorm_init():
    torch.manual_seed(0)
    disc = PatchDiscriminator(3, ndf=8, n_layers=3)
    x = torch.randn(4, 3, 64, 64) * 3 + 1
    assert disc.eval()(x).shape == (4, 1, 6, 6)  # 64 -> 32 -> 16 -> 8 -> 7 -> 6
    norms = [m for m in disc.modules() if isinstance(m, ActNorm)]
    assert len(norms) == 3 and not any(bool(n.initialized) for n in norms)  # eval mode does not initialise
    norm = ActNorm(5).train()
    y = norm(torch.randn(8, 5, 4, 4) * 4 + 2)
    assert bool(norm.initialized)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=(0, 2, 3)), torch.ones(5), atol=1e-4, rtol=0)
    before = norm.scale.clone()
    norm(torch.randn(2, 5, 4, 4))
    assert torch.equal(norm.scale, before)  # initialised once


def test_vae_loss_terms():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    x_hat = (x + 0.1 * torch.randn_like(x)).requires_grad_()
    mu, logvar = torch.randn(1, 16, 2, 2, 2), torch.randn(1, 16, 2, 2, 2)
    criterion = VAELoss(None, perceptual_weight=1.0, kl_weight=1e-2, disc_weight=0.5, disc_start=10)
    loss, logs = criterion.generator(x, x_hat, mu, logvar, step=0)
    ratio = 65536 / 256
    l1 = (x - x_hat).abs().sum() / 4 * ratio
    kl = kl_divergence(mu, logvar).mean() * ratio
    torch.testing.assert_close(loss, l1 + 1e-2 * kl)
    assert "g_loss" not in logs and not criterion.adversarial(9) and criterion.adversarial(10)
    assert kl_divergence(torch.zeros(3), torch.zeros(3)).abs().max() == 0
    assert hinge_d_loss(torch.tensor([2.0]), torch.tensor([-2.0])).item() == 0.0
    assert hinge_d_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == 1.0


def test_adaptive_weight_and_generator_gan_term():
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 3, 1)
    x = torch.rand(2, 3, 8, 8)
    out = layer(x)
    nll, g = (out - x).abs().sum(), -out.mean()
    weight = adaptive_gan_weight(nll, g, layer.weight, scale=0.5)
    grad_nll = torch.autograd.grad(nll, layer.weight, retain_graph=True)[0].norm()
    grad_g = torch.autograd.grad(g, layer.weight, retain_graph=True)[0].norm()
    assert weight.item() == pytest.approx(0.5 * (grad_nll / (grad_g + 1e-4)).item(), rel=1e-6)
    assert not weight.requires_grad
    criterion = VAELoss(None, disc_weight=0.5, disc_start=0)
    loss, logs = criterion.generator(
        x, out, torch.zeros(1), torch.zeros(1), 0, lambda img: img.mean(1, keepdim=True), layer.weight
    )
    assert {"g_loss", "d_weight"} <= logs.keys() and math.isfinite(loss.item())


def test_validation_messages(tmp_path):
    from ldf_vfi.training.args import validate_args

    (tmp_path / "idx").mkdir()
    base = [
        "--data",
        str(tmp_path / "idx"),
        "--vae_path",
        str(tmp_path),
        "--model_config",
        str(tmp_path / "bad.json"),
    ]
    (tmp_path / "bad.json").write_text("{not json")
    args = build_parser("dit").parse_args(base)
    with pytest.raises(InputError, match="is not a JSON file"):
        validate_args(args, "dit", world_size=1)
    args = build_parser("dit").parse_args([*base[:4], "--model_path", str(tmp_path), "--sp_size", "3"])
    with pytest.raises(InputError, match="--sp_size 3 must divide"):
        validate_args(args, "dit", world_size=4)
    args = build_parser("dit").parse_args([*base[:4], "--model_path", str(tmp_path), "--batch_size", "256"])
    with pytest.raises(InputError, match="--batch_size 256 is not a multiple"):
        validate_args(args, "dit", world_size=3)
    assert isinstance(args, argparse.Namespace)


def test_launch_configs():
    """DDP and ZeRO-1/2/3 configs: loadable by accelerate, pointing at the DeepSpeed JSONs, which carry no
    optimizer block (so the Adam flags are the ones used) and, for ZeRO-3, the CPU-offload settings."""
    from accelerate.commands.config.config_args import load_config_from_file

    from conftest import REPO_ROOT

    ddp = load_config_from_file(str(REPO_ROOT / "configs/accelerate/ddp.yaml"))
    assert ddp.distributed_type == "MULTI_GPU" and ddp.mixed_precision == "bf16"
    for stage in (1, 2, 3):
        config = load_config_from_file(str(REPO_ROOT / f"configs/accelerate/zero{stage}.yaml"))
        assert config.distributed_type == "DEEPSPEED"
        path = REPO_ROOT / config.deepspeed_config["deepspeed_config_file"]
        ds = json.loads(path.read_text())
        assert ds["zero_optimization"]["stage"] == stage and "optimizer" not in ds and "scheduler" not in ds
        assert ds["bf16"]["enabled"] and ds["gradient_clipping"] == 1.0
        assert ds["train_micro_batch_size_per_gpu"] == "auto"  # filled from --batch_gpu by the trainer
        offload = ds["zero_optimization"].get("offload_optimizer", {}).get("device")
        assert (offload == "cpu") == (stage == 3)
        assert ds.get("zero_force_ds_cpu_optimizer", True) is (stage != 3)


@pytest.mark.parametrize("launch", ["ddp", "zero1", "zero2", "zero3"])
def test_effective_optimizer_under_each_launch_config(tmp_path, monkeypatch, launch):
    """The optimizer that steps under each shipped launch config, with the default flags, has the released
    model's hyper-parameters (DiT) and the reference's (VAE decoder).

    DDP: the trainer's own optimizer is what runs. ZeRO: without DeepSpeed installed here, the resolved DeepSpeed
    config decides it: with no "optimizer" block, accelerate 1.15.0 passes the trainer's optimizer to
    ``deepspeed.initialize`` as the client optimizer (accelerator.py:2250-2262, 2364-2378), which DeepSpeed
    0.19.8 wraps as is; with CPU offload (ZeRO-3), ``zero_force_ds_cpu_optimizer: false`` keeps accelerate from
    swapping it for a DeepSpeedCPUAdam built from lr and weight decay alone, so the trainer builds that class
    itself (faked here) with the same values."""
    import sys
    import types

    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.state import AcceleratorState, GradientState

    from ldf_vfi.training.loop import TrainingRun

    from conftest import REPO_ROOT

    config = load_config_from_file(str(REPO_ROOT / f"configs/accelerate/{launch}.yaml"))
    resolved = None
    if launch != "ddp":
        resolved = json.loads((REPO_ROOT / config.deepspeed_config["deepspeed_config_file"]).read_text())
        assert "optimizer" not in resolved
        offload = resolved["zero_optimization"].get("offload_optimizer", {}).get("device", "none")
        assert offload == "none" or resolved["zero_force_ds_cpu_optimizer"] is False
        monkeypatch.setattr(TrainingRun, "deepspeed_config", property(lambda self: resolved))

        class FakeCPUAdam(torch.optim.Adam):  # deepspeed.ops.adam.DeepSpeedCPUAdam's signature
            def __init__(self, params, adamw_mode=True, **hyper):
                super().__init__(params, **hyper)
                self.adamw_mode = adamw_mode

        fake = types.ModuleType("deepspeed.ops.adam")
        fake.DeepSpeedCPUAdam = FakeCPUAdam
        monkeypatch.setitem(sys.modules, "deepspeed.ops.adam", fake)
    (tmp_path / "data").mkdir()
    for stage, decoupled, expected in (("dit", True, RELEASED_DIT_ADAM), ("vae", False, REFERENCE_VAE_ADAM)):
        if stage == "vae" and launch != "ddp":
            continue  # the VAE decoder trains with DDP only (two models, two optimizers)
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        flags = ["--data", str(tmp_path / "data"), "--vae_path", str(tmp_path), "--output_dir", str(tmp_path / stage),
                 "--logger", "none"]  # fmt: skip
        args = build_parser(stage).parse_args(flags)
        run = TrainingRun(args, name="test")
        optimizer = run.adam(
            nn.Linear(2, 2).parameters(), weight_decay=args.adam_weight_decay, decoupled=decoupled
        )
        group = optimizer.param_groups[0]
        assert {key: group[key] for key in expected} == expected
        if launch == "zero3":
            assert (
                isinstance(optimizer, FakeCPUAdam) and optimizer.adamw_mode
            )  # AdamW, as DeepSpeed's "AdamW"
        else:
            assert type(optimizer) is (torch.optim.AdamW if decoupled else torch.optim.Adam)


def test_thread_budget_leaves_cores_to_the_data_workers(monkeypatch):
    """One intra-op thread per core of this process's share, less one per DataLoader worker and one for the
    rest; never more than the launcher or the user set."""
    from ldf_vfi.training.loop import limit_threads, training_threads

    assert training_threads(local_processes=1, data_workers=2, cores=2) == 1  # measured: 25x faster than 2
    assert training_threads(local_processes=1, data_workers=0, cores=2) == 1  # measured: 16x faster than 2
    assert training_threads(local_processes=2, data_workers=0, cores=2) == 1
    assert training_threads(local_processes=1, data_workers=2, cores=16) == 13
    assert training_threads(local_processes=8, data_workers=2, cores=64) == 5
    assert training_threads(local_processes=4, data_workers=2, cores=4) == 1
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
        assert limit_threads(data_workers=0) == 1 and torch.get_num_threads() == 1  # a smaller setting stands
    finally:
        torch.set_num_threads(threads)


def test_start_step_and_reset_lr(tmp_path):
    """--start_step begins a fresh run as if at that step; --reset_lr restarts the lr ramp there."""
    from accelerate.state import AcceleratorState, GradientState

    from ldf_vfi.training.loop import TrainingRun

    for reset, expected_lr in ((False, 5e-5 * 100 * 8 / 5e5), (True, 0.0)):
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        flags = ["--data", str(tmp_path), "--vae_path", str(tmp_path), "--output_dir", str(tmp_path / "out"),
                 "--batch_size", "8", "--batch_gpu", "8", "--start_step", "100", "--logger", "none"]  # fmt: skip
        run = TrainingRun(build_parser("dit").parse_args(flags + (["--reset_lr"] if reset else [])), name="t")
        assert (run.state.global_step, run.state.cur_nsample, run.state.data_position) == (100, 800, 800)
        assert run.lr(5e-5) == pytest.approx(expected_lr, abs=1e-20)
