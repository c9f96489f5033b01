"""benchmarks/gpu_check.py: the CPU rehearsal of every stage (so the GPU script cannot rot), its time guards and
report, and the real sizes it will use, checked without allocating them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from benchmarks import gpu_check as G
from benchmarks.sampler import DIT_PARAMS, VAE_PARAMS
from ldf_vfi.models.attention import ChunkGrid, WindowMask, window_attention

from conftest import REPO_ROOT

REAL_DIT_FP32_GIB = DIT_PARAMS * 4 / 2**30  # 5.25: what the dry run must never hold


@pytest.mark.slow
def test_dry_run_runs_every_stage_on_the_cpu_with_tiny_models(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    stages = report["stages"]
    assert list(stages) == ["correctness", "model", "vae", "sampler", "sp"]
    assert {name: s["status"] for name, s in stages.items()} == dict.fromkeys(stages, "ok")
    assert "| stage | measurement |" in (tmp_path / "gpu_check.md").read_text()
    assert "| **sampler** | ok" in result.stdout

    tests, *flex = stages["correctness"]["rows"]
    assert {"tests/test_cuda.py", "tests/test_metrics.py"} <= set(tests["files"])
    assert tests["counts"]["skipped"] >= 4 and "failed" not in tests["counts"]  # no CUDA here: all skipped
    assert [row["ok"] for row in flex] == [True, True]
    rows = stages["model"]["rows"]
    assert len(rows) == 6 and all(row["seconds"] > 0 and row["tflops"] > 0 for row in rows)
    assert all("fraction_of_peak" not in row for row in rows)  # no peak known for a CPU
    assert [row["windows"] for row in stages["sampler"]["rows"][:3]] == [2, 4, 1]
    assert all(row["frames_done"] == row["output_frames"] for row in stages["sampler"]["rows"][:3])
    sp2 = stages["sp"]["rows"][1]
    assert sp2["ok"] and stages["sp"]["ranks"][0]["max_abs_diff"] <= 1e-5

    # The real models exist only on the meta device: their sizes are checked, nothing of them is allocated.
    assert report["plan"]["dit_parameters"] == DIT_PARAMS and report["plan"]["vae_parameters"] == VAE_PARAMS
    assert stages["model"]["parameters"] < 1e6
    assert report["process_peak_rss_gib"] < REAL_DIT_FP32_GIB / 2


def test_real_profile_uses_the_released_sizes():
    profile = G.real_profile()
    config = G.profile_model_config(profile)
    assert (config["num_attention_heads"], config["attention_head_dim"], config["in_channels"]) == (
        12,
        128,
        36,
    )
    assert config["attention_type"] == "slide_chunk_all_block_2x1x1" and profile.dtype == torch.bfloat16
    grid = G.window_grid(profile, *profile.size(profile.attention_resolution))
    assert (grid.chunks, grid.chunk_tokens, grid.seq_len) == (
        (3, 4, 7),
        (8, 12, 12),
        96768,
    )  # 720p, 60 frames
    assert G.window_grid(profile, *profile.size("1080p")).chunks == (3, 6, 10)
    # the sampler's videos: exactly 2, 4 and 1 windows of 60 frames at x4
    assert [G.input_frames_for(w, profile) for w in (2, 4, 1)] == [15, 25, 10]
    assert sum(profile.budgets_s[s] for s in ("correctness", "model", "vae", "sampler")) <= 450  # < 8 min


def test_plan_counts_the_flops_the_mask_keeps():
    plan = G.real_plan()["windows"]
    assert plan["720p"]["tokens"] == 96768
    # 1080p: 30 blocks x 2 attentions over 3x6x10 chunks, each seeing its 3x3 spatial (edges fewer) x 3 temporal
    assert 0.12 < plan["1080p"]["mask_density"] < 0.13
    assert 2540 < plan["1080p"]["dit_forward_tflop"] < 2560
    assert (
        plan["480p"]["dit_forward_tflop"]
        < plan["720p"]["dit_forward_tflop"]
        < plan["1080p"]["dit_forward_tflop"]
    )


def test_device_peaks_by_name():
    assert G.device_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert G.device_peak_tflops("NVIDIA H200") == 989.0
    assert G.device_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert G.device_peak_tflops("NVIDIA H200 NVL") == 835.0
    assert G.device_peak_tflops("NVIDIA GeForce GTX 1080") is None
    ctx = G.Context(G.dry_profile(), None, {}, None)
    assert "fraction_of_peak" not in ctx.tflops_row(1e12, 1.0)
    ctx = G.Context(G.dry_profile(), None, {}, 989.0)
    assert ctx.tflops_row(494.5e12, 1.0)["fraction_of_peak"] == pytest.approx(0.5)


def test_the_dense_reference_in_row_blocks_equals_the_dense_backend():
    grid = ChunkGrid((4, 2, 3), (1, 2, 2))
    mask = WindowMask("chunk", (2, 1, 1))
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, grid.seq_len, 8, generator=g) for _ in range(3))
    expected = window_attention(q, k, v, mask, grid, "dense")
    blocked = G.dense_reference(q, k, v, mask, grid, max_bytes=7 * 2 * grid.seq_len * 4 * 2)  # 7 rows a block
    torch.testing.assert_close(blocked, expected, atol=1e-6, rtol=1e-5)


def test_stages_are_guarded_and_the_report_is_written_after_each(tmp_path):
    profile = replace(G.dry_profile(), budgets_s={"boom": 5, "slow": 0.5, "wrong": 5, "fine": 5, "skip": 5})
    ctx = G.Context(profile, tmp_path, {"machine": {}, "stages": {}}, None)
    ctx.report.update(profile="test", started="now", peak_bf16_tflops=None)
    ctx.report["machine"] = dict.fromkeys(["device", "device_count", "torch", "cuda", "diffusers"], "-")

    def boom(ctx, record):
        record["rows"].append({"what": "first", "seconds": 1.0})
        raise RuntimeError("kaput\nsecond line")

    def slow(ctx, record):
        record["rows"].append({"what": "partial"})
        while True:  # only the guard ends this
            time.sleep(0.01)

    def wrong(ctx, record):
        record["rows"] += [{"what": "bad", "ok": False}, {"what": "good", "ok": True}]
        row = {"what": "crashing measurement"}
        record["rows"].append(row)
        with G.row_guard(row):
            raise ValueError("no memory")
        record["rows"].append({"what": "after it", "ok": True})

    def fine(ctx, record):
        on_disk = json.loads((tmp_path / "gpu_check.json").read_text())["stages"]
        record["seen_on_disk"] = [on_disk[s]["status"] for s in ("boom", "slow", "wrong")]

    def skip(ctx, record):
        raise G.StageSkipped("needs two GPUs")

    stages = [
        G.Stage(n, n, f)
        for n, f in (("boom", boom), ("slow", slow), ("wrong", wrong), ("fine", fine), ("skip", skip))
    ]
    start = time.monotonic()
    assert G.run_stages(ctx, stages) is False
    assert time.monotonic() - start < 60  # the endless stage was stopped by its 0.5 s guard
    report = json.loads((tmp_path / "gpu_check.json").read_text())["stages"]
    assert report["boom"]["status"] == "error" and report["boom"]["error"] == "RuntimeError: kaput"
    assert report["boom"]["rows"] == [{"what": "first", "seconds": 1.0}]  # what it measured is kept
    assert report["slow"]["status"] == "timeout" and report["slow"]["rows"] == [{"what": "partial"}]
    assert report["wrong"]["status"] == "error" and "ValueError: no memory" in report["wrong"]["error"]
    assert (
        "check failed: bad" in report["wrong"]["error"] and report["wrong"]["rows"][-1]["what"] == "after it"
    )
    assert report["fine"]["seen_on_disk"] == ["error", "timeout", "error"]  # written before "fine" ran
    assert report["fine"]["status"] == "ok"
    assert report["skip"] == {**report["skip"], "status": "skipped", "reason": "needs two GPUs"}
    assert "| **slow** | timeout" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--stages", "model,bogus"], "unknown stage(s) bogus"),
        (["--budget-scale", "0", "--dry-run"], "--budget-scale must be positive"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, argv, message):
    assert G.main(["--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_the_real_run_needs_cuda(tmp_path, capsys):
    assert G.main(["--out", str(tmp_path / "out")]) == 2
    assert "--dry-run" in capsys.readouterr().err
