"""End-to-end training on a synthetic LAVIB-shaped folder with tiny models (CPU): the DiT and the VAE decoder
learn, a killed-and-resumed run equals a straight one, bad flags fail early, two processes train together."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ldf_vfi.data.lavib import build_parser as index_parser
from ldf_vfi.data.lavib import run as build_index
from ldf_vfi.data.lavib import write_synthetic_lavib
from ldf_vfi.errors import InputError
from ldf_vfi.models.transformer import LDFTransformer3DModel, tiny_config
from ldf_vfi.models.vae import WanVAE, save_original_state_dict, tiny_vae
from ldf_vfi.models.vae import tiny_config as vae_tiny_config
from ldf_vfi.training.cli import main_dit, main_vae
from ldf_vfi.training.losses import PerceptualLoss

from conftest import REPO_ROOT

MAIN = {"dit": main_dit, "vae": main_vae}

TINY_TILING = ["--tile_min_h", "48", "--tile_min_w", "48", "--tile_stride_h", "32", "--tile_stride_w", "32",
               "--tile_min_t", "5", "--vae_batch_size", "8"]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models on shared cores: one thread is fastest


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    """An indexed synthetic LAVIB folder, a tiny Wan VAE checkpoint, a tiny DiT config, random AlexNet weights."""
    root = tmp_path_factory.mktemp("training")
    write_synthetic_lavib(root / "LAVIB", num_clips=4, num_frames=24, height=64, width=80, fps=60)
    build_index(
        index_parser().parse_args(
            ["--src", str(root / "LAVIB"), "--dst", str(root / "lavib-index"), "--num_workers", "1"]
        )
    )
    save_original_state_dict(tiny_vae(), root / "Wan2.1_VAE.pth")
    (root / "vae.json").write_text(json.dumps(vae_tiny_config()))
    # A little wider than tiny_config()'s 2 x 16 heads: it learns measurably within a few dozen steps.
    (root / "dit.json").write_text(json.dumps(tiny_config(attention_head_dim=32, ffn_dim=128)))
    torch.manual_seed(0)
    import torchvision

    trunk = {
        k: v
        for k, v in torchvision.models.alexnet(weights=None).state_dict().items()
        if k.startswith("features.")
    }
    save_file(trunk, root / "alexnet.safetensors")
    return {
        "data": root / "lavib-index",
        "vae": root / "Wan2.1_VAE.pth",
        "vae_config": root / "vae.json",
        "dit_config": root / "dit.json",
        "alexnet": root / "alexnet.safetensors",
    }


def _train(stage: str, argv: list[str]) -> None:
    """Run a trainer in this process, with fresh accelerate singletons (as a new process would have)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    assert MAIN[stage]([str(a) for a in argv]) == 0


def _dit_args(assets, out: Path, *extra) -> list:
    return [
        "--data", assets["data"], "--model_config", assets["dit_config"], "--vae_path", assets["vae"],
        "--output_dir", out, "--num_frames", 15, "--pn", "64x64",
        "--temporal_sf", "2-4", *TINY_TILING, "--no_grad_checkpoint", "--dataloader_num_workers", 0,
        "--rampup_Msample", 0, "--logger", "none", *extra,
    ]  # fmt: skip


def _vae_args(assets, out: Path, *extra) -> list:
    return [
        "--data", assets["data"], "--vae_path", assets["vae"],  # sizes read off the tiny file
        "--lpips_weights", assets["alexnet"], "--output_dir", out, "--num_frames", 5, "--pn", "48x48",
        "--temporal_sf", "2-4", "--disc_ndf", 8, "--dataloader_num_workers", 0, "--rampup_Msample", 0,
        "--logger", "none", *extra,
    ]  # fmt: skip


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


@pytest.mark.slow
def test_dit_loss_falls(assets, tmp_path):
    out = tmp_path / "dit"
    _train("dit", _dit_args(assets, out, "--batch_size", 2, "--batch_gpu", 2, "--max_train_steps", 36,
                            "--ref_lr", 3e-3, "--checkpointing_steps", 100, "--ema_decay", "0.9",
                            "--logger", "tensorboard", "--checkpoints_total_limit", 1))  # fmt: skip
    records = _log(out)
    losses = [record["loss"] for record in records]
    assert len(losses) == 36 and all(r["grad_norm"] > 0 for r in records)
    assert list((out / "logs" / "train_dit").glob("events.out.tfevents.*"))  # tensorboard scalars
    first, last = _mean(losses[:6]), _mean(losses[-6:])
    assert last < 0.6 * first, f"loss {first:.3f} -> {last:.3f}"  # measured: 0.46
    # The final checkpoint's EMA is a diffusers folder the model class loads.
    ema = LDFTransformer3DModel.from_pretrained(out / "checkpoint-36" / "ema-0.9" / "transformer")
    assert ema.config.in_channels == 36 and ema.config.attention_type == "slide_chunk_all_block_2x1x1"


def _dit_snapshot(checkpoint: Path) -> dict[str, torch.Tensor]:
    tensors = {f"model/{k}": v for k, v in load_file(checkpoint / "model.safetensors").items()}
    for decay in (p.name[4:] for p in checkpoint.glob("ema-*")):
        ema = load_file(checkpoint / f"ema-{decay}" / "transformer" / "diffusion_pytorch_model.safetensors")
        tensors.update({f"ema-{decay}/{k}": v for k, v in ema.items()})
    optimizer = torch.load(checkpoint / "optimizer.bin", weights_only=True)
    for index, state in optimizer["state"].items():
        tensors.update({f"adam/{index}/{k}": v for k, v in state.items() if torch.is_tensor(v)})
    return tensors


def _assert_same_run(a: Path, b: Path, snapshot, steps: int, resumed_from: int) -> None:
    ca, cb = a / f"checkpoint-{steps}", b / f"checkpoint-{steps}"
    sa, sb = snapshot(ca), snapshot(cb)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key  # bit for bit
    state_a, state_b = (json.loads((c / "state.json").read_text()) for c in (ca, cb))
    for field in ("global_step", "cur_nsample", "data_position"):
        assert state_a[field] == state_b[field]
    # Same data order and noise after the resume: the logged losses of the second half agree (a step the killed
    # run had already logged is logged again by the resumed run; the later line counts).
    tail_a = {r["step"]: r["loss"] for r in _log(a) if r["step"] > resumed_from}
    tail_b = {r["step"]: r["loss"] for r in _log(b) if r["step"] > resumed_from}
    assert tail_a == tail_b and len(tail_a) == steps - resumed_from


@pytest.mark.slow
def test_dit_kill_and_resume_equals_straight_run(assets, tmp_path):
    common = ["--batch_size", 2, "--batch_gpu", 1, "--ref_lr", 1e-3, "--ema_decay", "0.9,0.99",
              "--checkpointing_steps", 2]  # fmt: skip
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    _train("dit", _dit_args(assets, straight, *common, "--max_train_steps", 4))
    # The run that gets killed: it trained step 3 but died while saving checkpoint-4, leaving a partial folder.
    _train("dit", _dit_args(assets, halves, *common, "--max_train_steps", 3))
    shutil.rmtree(halves / "checkpoint-3")
    (halves / "checkpoint-4.partial").mkdir()
    # Resumed the way a user repeats a run: the killed run's args.json as --config, two flags changed.
    _train(
        "dit",
        ["--config", halves / "args.json", "--max_train_steps", 4, "--resume_from_checkpoint", "latest"],
    )
    _assert_same_run(straight, halves, _dit_snapshot, steps=4, resumed_from=2)


@pytest.mark.slow
def test_vae_decoder_loss_falls(assets, tmp_path):
    out = tmp_path / "vae"
    _train("vae", _vae_args(assets, out, "--batch_size", 2, "--batch_gpu", 2, "--max_train_steps", 40,
                            "--ref_lr", 5e-3, "--disc_start", 1000, "--checkpointing_steps", 100,
                            "--ema_decay", "0.9"))  # fmt: skip
    records = _log(out)
    first, last = _mean(r["loss"] for r in records[:5]), _mean(r["loss"] for r in records[-5:])
    assert last < 0.7 * first, f"loss {first:.0f} -> {last:.0f}"  # measured: 0.64
    assert _mean(r["rec"] for r in records[-5:]) < 0.8 * _mean(r["rec"] for r in records[:5])  # L1: 0.69
    # The EMA is an original-layout conditional checkpoint, loadable as the sampler's --vae_path.
    ema = WanVAE.from_original(
        out / "checkpoint-40" / "ema-0.9.pth", conditional=True, config=vae_tiny_config()
    )
    assert ema.conditional


def _vae_snapshot(checkpoint: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for name in ("model.safetensors", "model_1.safetensors"):
        tensors.update({f"{name}/{k}": v for k, v in load_file(checkpoint / name).items()})
    tensors.update(
        {f"ema/{k}": v for k, v in torch.load(checkpoint / "ema-0.9.pth", weights_only=True).items()}
    )
    for name in ("optimizer.bin", "optimizer_1.bin"):
        for index, state in torch.load(checkpoint / name, weights_only=True)["state"].items():
            tensors.update({f"{name}/{index}/{k}": v for k, v in state.items() if torch.is_tensor(v)})
    return tensors


@pytest.mark.slow
def test_vae_discriminator_steps_from_the_start(assets, tmp_path):
    """As the reference (train_vae.py:538-595), every iteration ends with a discriminator step on a fresh batch;
    before --disc_start its loss is multiplied by 0: the weights stay (ActNorm aside, initialised on the first
    batch's real frames), Adam counts the steps with zero moments, and the stream moves two batches per step."""
    out = tmp_path / "vae"
    _train("vae", _vae_args(assets, out, "--batch_size", 1, "--batch_gpu", 1, "--max_train_steps", 2,
                            "--checkpointing_steps", 1))  # fmt: skip
    for step in (1, 2):
        checkpoint = out / f"checkpoint-{step}"
        assert json.loads((checkpoint / "state.json").read_text())["data_position"] == 2 * step
        adam = torch.load(checkpoint / "optimizer_1.bin", weights_only=True)["state"]
        assert adam and all(float(s["step"]) == step for s in adam.values())
        assert not any(s["exp_avg"].any() or s["exp_avg_sq"].any() for s in adam.values())
    first, second = (load_file(out / f"checkpoint-{step}" / "model_1.safetensors") for step in (1, 2))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert all(v.item() == 1 for k, v in first.items() if k.endswith("initialized"))
    assert all("d_loss" not in record for record in _log(out))


@pytest.mark.slow
def test_vae_kill_and_resume_equals_straight_run(assets, tmp_path):
    """With the adversarial phase switched on mid-run (disc_start 2 of 4 steps)."""
    common = ["--batch_size", 2, "--batch_gpu", 1, "--ref_lr", 1e-3, "--disc_lr", 1e-3, "--ema_decay", "0.9",
              "--disc_start", 2, "--checkpointing_steps", 2, "--no_freeze_encoder"]  # fmt: skip
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    _train("vae", _vae_args(assets, straight, *common, "--max_train_steps", 4))
    _train("vae", _vae_args(assets, halves, *common, "--max_train_steps", 2))
    _train(
        "vae",
        _vae_args(assets, halves, *common, "--max_train_steps", 4, "--resume_from_checkpoint", "latest"),
    )
    _assert_same_run(straight, halves, _vae_snapshot, steps=4, resumed_from=2)
    assert "d_loss" in _log(straight)[-1] and "d_loss" not in _log(straight)[0]


def test_perceptual_loss_loads_alexnet_by_path(assets, tmp_path):
    loss = PerceptualLoss.from_file(assets["alexnet"])
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = x.clone().requires_grad_()
    same = loss(x, y)
    assert same.shape == (2, 1, 1, 1) and same.abs().max() < 1e-5
    same.sum().backward()
    assert torch.isfinite(y.grad).all()  # the eps inside the sqrt keeps identical features finite
    assert loss(x, torch.rand_like(x)).min() > 0
    assert not any(p.requires_grad for p in loss.parameters())
    first = {"features.0.weight": load_file(assets["alexnet"])["features.0.weight"]}
    save_file(first, tmp_path / "partial.safetensors")
    with pytest.raises(InputError, match="--lpips_weights .* is not an AlexNet trunk"):
        PerceptualLoss.from_file(tmp_path / "partial.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(InputError, match="could not be read as a state dict"):
        PerceptualLoss.from_file(tmp_path / "junk.pth")


@pytest.mark.parametrize(
    "stage, extra, message",
    [
        ("dit", ["--temporal_sf", "4-2"], "descending range"),
        ("dit", ["--num_frames", "16"], "multiple of --tile_min_t"),
        ("dit", ["--batch_size", "3", "--batch_gpu", "2"], "not a multiple of --batch_gpu"),
        ("dit", ["--pn", "huge"], "--pn must be"),
        ("dit", ["--ema_decay", "1.5"], "--ema_decay"),
        ("dit", ["--lora_rank", "4"], "LoRA"),
        ("dit", ["--avg_frames", "1,3"], "frame averaging"),
        ("dit", ["--tile_stride_h", "64"], "tiling flags"),
        ("dit", ["--dynamic_res", "--batch_gpu", "2"], "--batch_gpu 1"),
        ("vae", ["--num_frames", "16"], "1 + 4k"),
        (
            "vae",
            ["--perceptual_weight", "1", "--lpips_weights", "/missing/alex.pth"],
            "--lpips_weights: not found",
        ),
    ],
)
def test_bad_flags_fail_before_loading_anything(assets, tmp_path, capsys, stage, extra, message):
    base = _dit_args(assets, tmp_path / "x") if stage == "dit" else _vae_args(assets, tmp_path / "x")
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    try:
        status = MAIN[stage]([str(a) for a in base + extra])
    except SystemExit as exc:  # argparse-level errors (a path flag that does not exist) exit directly
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_vae_needs_lpips_weights_by_path(assets, tmp_path, capsys):
    args = [a for a in _vae_args(assets, tmp_path / "x") if a != assets["alexnet"] and a != "--lpips_weights"]
    assert main_vae([str(a) for a in args]) == 2
    assert "--lpips_weights PATH" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("sp_size", [1, 2])
def test_two_processes_train_like_one(assets, tmp_path, sp_size):
    """torchrun, 2 CPU processes with gloo = 1 process accumulating 2 clips.

    sp_size 1: data parallel, one clip per process; the stream positions, hence the clips and their noise, do
    not depend on the process layout. sp_size 2: one sequence-parallel group, each rank holding half the tokens
    of every chunk (Ulysses all-to-alls in every attention), both ranks on the same clips."""
    common = ["--batch_size", 2, "--batch_gpu", 1, "--max_train_steps", 2, "--ref_lr", 1e-3,
              "--checkpointing_steps", 2, "--ema_decay", "0.9"]  # fmt: skip
    two, one = tmp_path / "two", tmp_path / "one"
    argv = [str(a) for a in _dit_args(assets, two, *common, "--sp_size", sp_size)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", f"{29517 + sp_size}",
         "train.py", *argv],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (two / "checkpoint-2" / "random_states_1.pkl").is_file()  # every rank saved its state
    _train("dit", _dit_args(assets, one, *common))
    log_two, log_one = _log(two), _log(one)
    assert [r["samples"] for r in log_two] == [r["samples"] for r in log_one] == [2, 4]
    for a, b in zip(log_two, log_one):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    weights_two, weights_one = _dit_snapshot(two / "checkpoint-2"), _dit_snapshot(one / "checkpoint-2")
    for key in weights_one:
        if key.startswith(("model/", "ema-0.9/")):
            torch.testing.assert_close(weights_two[key], weights_one[key], rtol=1e-4, atol=1e-6)


def _script_env(assets, out: Path, **extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LAUNCHER": "torchrun", "NUM_PROCESSES": "1", "MIXED_PRECISION": "no",
           "DATA": str(assets["data"]), "OUTPUT_DIR": str(out), "VAE_PATH": str(assets["vae"]), "BATCH_SIZE": "1",
           "BATCH_GPU": "1"}  # fmt: skip
    env.pop("ACCELERATE_CONFIG", None)
    env.update(extra)
    return env


def _tiny_dit_extra(assets) -> str:
    tiny = ["--model_config", assets["dit_config"], "--num_frames", 15, "--pn", "64x64", *TINY_TILING]
    return " ".join(str(a) for a in tiny) + " --no_grad_checkpoint"


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("stage", ["dit", "vae"])
def test_quick_start_scripts_run_under_torchrun(assets, tmp_path, stage):
    """The launch scripts as shipped (recipe flags, default launch config), with the tiny models and one step
    through EXTRA_ARGS. Without DeepSpeed (not a requirement), train_dit.sh says so in one line and runs DDP."""
    out = tmp_path / stage
    common = (
        f"--vae_config {assets['vae_config']} --max_train_steps 1 --dataloader_num_workers 0 --logger none"
    )
    if stage == "dit":
        extra = f"{_tiny_dit_extra(assets)} {common}"
        env = _script_env(assets, out, MODEL_PATH="", MAIN_PROCESS_PORT="29561", EXTRA_ARGS=extra)
    else:
        env = _script_env(assets, out, LPIPS_WEIGHTS=str(assets["alexnet"]), NUM_FRAMES="5", PN="48x48",
                          MAIN_PROCESS_PORT="29562", EXTRA_ARGS=f"{common} --disc_ndf 8")  # fmt: skip
    script = REPO_ROOT / "quick_start" / f"train_{stage}.sh"
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:] + (out / "log.txt").read_text()[-3000:]
    assert [r["step"] for r in _log(out)] == [1]
    saved = json.loads((out / "args.json").read_text())
    assert saved["resume_from_checkpoint"] == "latest"  # the script's flags arrived
    assert saved["no_bicubic"] == (stage == "dit") and saved["num_frames"] == (15 if stage == "dit" else 5)
    if stage == "dit" and importlib.util.find_spec("deepspeed") is None:
        notices = [line for line in result.stderr.splitlines() if line.startswith("notice:")]
        assert len(notices) == 1 and "DeepSpeed is not installed" in notices[0] and "DDP" in notices[0]


@pytest.mark.slow
def test_quick_start_bad_flag_is_one_error_line(assets, tmp_path):
    """Flags are checked once before any process is launched (here under the default launcher, accelerate):
    one `error:` line, exit 2, no launcher output."""
    out = tmp_path / "dit"
    extra = f"{_tiny_dit_extra(assets)} --num_frames 16"
    env = _script_env(assets, out, MODEL_PATH="", LAUNCHER="accelerate", EXTRA_ARGS=extra)
    result = subprocess.run(["bash", str(REPO_ROOT / "quick_start" / "train_dit.sh")], env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if not line.startswith("notice:")]
    assert len(errors) == 1 and errors[0].startswith("error: --num_frames 16 must be a multiple"), (
        result.stderr
    )
    assert not out.exists()  # nothing launched, nothing written


@pytest.mark.slow
@pytest.mark.parametrize("config", ["zero1", "zero3"])
def test_deepspeed_configs_train_and_resume(assets, tmp_path, config):
    """Only where DeepSpeed is installed (not a test requirement): one CPU process, bf16 from the JSON."""
    pytest.importorskip("deepspeed")
    out = tmp_path / config
    argv = [str(a) for a in _dit_args(assets, out, "--batch_size", 2, "--batch_gpu", 1, "--ref_lr", 1e-3,
                                       "--checkpointing_steps", 1, "--ema_decay", "0.9")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", f"configs/accelerate/{config}.yaml",
              "--num_processes", "1", "--num_machines", "1", "--main_process_port", "29571", "train.py"]  # fmt: skip
    for steps, resume in ((1, []), (2, ["--resume_from_checkpoint", "latest"])):
        result = subprocess.run([*launch, *argv, "--max_train_steps", str(steps), *resume], cwd=REPO_ROOT, env=env,
                                capture_output=True, text=True, timeout=400)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    assert [r["step"] for r in _log(out)] == [1, 2]
    assert (out / "checkpoint-2" / "pytorch_model").is_dir()  # DeepSpeed's own checkpoint layout
    assert (out / "checkpoint-2" / "ema-0.9" / "transformer" / "config.json").is_file()
    assert "bfloat16" in result.stderr  # the JSON's bf16 reached the trainer
    # The optimizer DeepSpeed stepped (its saved state): the released model's AdamW hyper-parameters.
    (states,) = (out / "checkpoint-2" / "pytorch_model").glob("*optim_states.pt")
    saved = torch.load(states, weights_only=False, map_location="cpu")
    pending, groups = [saved], None
    while pending and groups is None:  # the param groups sit at a depth that depends on the ZeRO stage
        node = pending.pop()
        groups = node.get("param_groups") if isinstance(node, dict) else None
        pending.extend(v for v in (node.values() if isinstance(node, dict) else []) if isinstance(v, dict))
    assert groups
    for group in groups:
        assert (tuple(group["betas"]), group["eps"], group["weight_decay"]) == ((0.9, 0.999), 1e-8, 0.0)


@pytest.mark.slow
def test_tiny_config_trains_then_generates(tmp_path, small_video, monkeypatch):
    """The README's first run, no weights: configs/train/tiny.yaml trains a random tiny DiT (its VAE random too)
    on the demo clip (here 1 step), writes a checkpoint and args.json, and generate.py interpolates with them."""
    from ldf_vfi.cli import generate_main
    from ldf_vfi.io import probe

    monkeypatch.chdir(REPO_ROOT)  # the config's paths are relative to the repository root
    out = tmp_path / "tiny"
    _train("dit", ["--config", REPO_ROOT / "configs" / "train" / "tiny.yaml", "--output_dir", out,
                   "--max_train_steps", 1, "--checkpointing_steps", 1, "--batch_size", 1, "--batch_gpu", 1,
                   "--dataloader_num_workers", 0])  # fmt: skip
    saved = json.loads((out / "args.json").read_text())
    assert saved["data"] == "assets/demo.mp4" and saved["vae_path"] is None and saved["max_train_steps"] == 1
    ema = out / "checkpoint-1" / "ema-0.9"
    assert (ema / "transformer" / "config.json").is_file() and (out / "vae.pth").is_file()
    # The optimizer that stepped: the released model's AdamW hyper-parameters.
    group = torch.load(out / "checkpoint-1" / "optimizer.bin", weights_only=True)["param_groups"][0]
    assert (tuple(group["betas"]), group["eps"], group["weight_decay"]) == ((0.9, 0.999), 1e-8, 0.0)
    status = generate_main([
        "--data", str(small_video), "--temporal_sf", "2", "--backend", "ldf", "--model_path", str(ema),
        "--vae_path", str(out / "vae.pth"), "--num_frames", "15", *TINY_TILING[:-2], "--sampling_steps", "1",
        "--output_dir", str(tmp_path / "gen"),
    ])  # fmt: skip
    assert status == 0
    assert probe(tmp_path / "gen" / "small" / "pred.mp4").num_frames == (9 - 1) * 2 + 1


@pytest.mark.parametrize(
    "module, entry, expected",
    [
        ("ldf_vfi.training.cli", "main_dit", "--validate_only"),
        ("ldf_vfi.evaluation.cli", "main", "--averaging"),
    ],
)
def test_other_commands_do_not_load_the_interpolate_command(module, entry, expected):
    """The trainers and evaluate.py take the command runner from the neutral ldf_vfi.commands and the backend
    flags from ldf_vfi.backend_flags, not from generate.py's ldf_vfi.cli."""
    code = (
        f"import sys\nfrom {module} import {entry}\n"
        f"try:\n    {entry}(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'ldf_vfi.cli' not in sys.modules, 'ldf_vfi.cli was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout


@pytest.mark.slow
def test_trained_checkpoints_drive_the_sampler(assets, tmp_path):
    """What training writes is what inference reads: the DiT EMA folder as --model_path, the conditional VAE
    EMA .pth as --vae_path of generate.py --backend ldf."""
    from ldf_vfi.cli import generate_main

    dit, vae = tmp_path / "dit", tmp_path / "vae"
    _train("dit", _dit_args(assets, dit, "--batch_size", 1, "--batch_gpu", 1, "--max_train_steps", 1,
                            "--ema_decay", "0.9"))  # fmt: skip
    _train("vae", _vae_args(assets, vae, "--batch_size", 1, "--batch_gpu", 1, "--max_train_steps", 1,
                            "--ema_decay", "0.9"))  # fmt: skip
    clip = next((assets["data"].parent / "LAVIB" / "segments").iterdir()) / "vid.mp4"
    status = generate_main([
        "--data", str(clip), "--backend", "ldf", "--model_path", str(dit / "checkpoint-1" / "ema-0.9"),
        "--vae_path", str(vae / "checkpoint-1" / "ema-0.9.pth"), "--temporal_sf", "2", "--num_frames", "15",
        *TINY_TILING[:-2], "--sampling_steps", "2", "--output_dir", str(tmp_path / "gen"),
    ])  # fmt: skip
    assert status == 0
    assert (tmp_path / "gen" / "vid" / "pred.mp4").is_file()
