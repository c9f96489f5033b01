"""End to end: evaluate.py over generated SNU-FILM- and X4K-shaped folders, resume, errors, processes.

The folders hold synthetic scenes with known motion (``ldf_vfi.data.synthetic``) rendered at the full
rate, so the ground truth of every in-between frame exists; metric weights are random files in the
official layouts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ldf_vfi.data.snu_film import find_snu_film_clips
from ldf_vfi.data.synthetic import MovingShapes
from ldf_vfi.errors import LDFVFIError
from ldf_vfi.evaluation import EvalSettings, compare_runs, evaluate_clip, plan_clip, run_evaluation
from ldf_vfi.evaluation.baselines import get_baseline
from ldf_vfi.evaluation.cli import main
from ldf_vfi.evaluation.compare import main as compare_main
from ldf_vfi.evaluation.runner import predict
from ldf_vfi.evaluation.scoring import MetricSuite, WeightPaths
from ldf_vfi.metrics.testing import write_random_metric_weights

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _render(folder: Path, count: int, seed: int, step: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(MovingShapes(48, 64, "translate", seed).frames(count, step=step)):
        cv2.imwrite(str(folder / f"{i:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def snu_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("SNU-FILM")
    _render(root / "test" / "GOPRO_test" / "GOPR0384_11_00", 17, seed=0, step=0.5)
    _render(root / "test" / "YouTube_test" / "0000", 19, seed=1, step=0.5)
    return root


@pytest.fixture(scope="module")
def x4k_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("X4K1000FPS")
    _render(root / "test" / "Type1" / "TEST01_003_f0433", 33, seed=2, step=0.25)
    _render(root / "test" / "Type3" / "TEST11_078_f4977", 33, seed=3, step=0.25)
    return root


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    write_random_metric_weights(folder)
    return folder


def _evaluate(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def test_full_snu_film_run_writes_tables_and_resumes(snu_dir, weights_dir, tmp_path, capsys, caplog):
    out = tmp_path / "flow"
    argv = ["--dataset", "snu_film", "--data_dir", snu_dir, "--output_dir", out, "--weights_dir", weights_dir]
    code, stdout, _ = _evaluate(capsys, *argv, "--save_pred", "--save_lq", "--save_gt")
    assert code == 0
    summary = _load(out / "summary.json")
    assert summary["num_videos"] == 2 and summary["num_missing"] == 0
    assert set(summary["metrics"]) == {"psnr", "ssim", "lpips", "flolpips", "fvd"}
    assert summary["skipped_metrics"] == {}
    assert summary["fvd"]["num_sequences"] == 2  # one 16-frame sequence per 17- or 19-frame clip
    assert summary["averaging"] == "paper" and summary["fvd"]["mode"] == "paper"
    assert "not part of the reference protocol" in summary["protocol"]["flolpips"]
    assert summary["protocol"]["psnr"].startswith("paper averaging")
    assert set(summary["per_subset"]) == {"GOPRO_test", "YouTube_test"}
    # The protocol's frames: GT[::8] of 19 frames = 0, 8, 16; scored 1-7 and 9-15; 17, 18 never scored but
    # predicted (the last input held by the flow backend), for the paper's FVD over every GT frame.
    record = _load(out / "clips" / "test--YouTube_test--0000.json")
    assert record["frames"]["index"] == [*range(1, 8), *range(9, 16)]
    assert record["frames"]["name"][0] == "000001.png"
    assert record["num_inputs"] == 3 and record["prediction_length"] == 19
    # Per clip, paper averaging: 14 frames over 8 processes = ranks 0-5 two frames (j, j + 8), ranks 6-7 one;
    # one batch each; the mean of the 8 batch means.
    psnr = record["frames"]["psnr"]
    batch_means = [(psnr[r] + psnr[r + 8]) / 2 for r in range(6)] + [psnr[6], psnr[7]]
    assert record["metrics"]["psnr"] == pytest.approx(np.mean(batch_means), rel=1e-12)
    assert record["metrics"]["psnr"] != pytest.approx(np.mean(psnr), rel=1e-9)
    assert summary["metrics"]["psnr"] == pytest.approx(
        np.mean([_load(p)["metrics"]["psnr"] for p in (out / "clips").glob("*.json")])
    )
    clip_rows = (out / "per_clip_metrics.csv").read_text().splitlines()
    assert clip_rows[0].startswith("clip,subset,num_frames,num_scored,psnr,ssim,lpips,flolpips")
    assert len(clip_rows) == 3
    assert len((out / "per_frame_metrics.csv").read_text().splitlines()) == 1 + 14 + 14
    table = (out / "results.md").read_text()
    assert "| flow | snu_film | entire | 8x | 2 | paper |" in table and "FVD ↓" in table
    assert "FLOLPIPS ↓ †" in table and "- †: not part of the reference protocol" in table
    assert "- paper averaging: per video the mean of batch-of-8 means" in table
    assert "- paper FVD mode: every ground-truth frame" in table
    assert table.splitlines()[0] in stdout
    assert _load(out / "args.json")["backend"] == "flow"
    assert _load(out / "args.json")["averaging"] == "paper"
    sheet = cv2.imread(str(out / "contact_sheets" / "test--YouTube_test--0000.png"))
    assert sheet is not None and sheet.shape[1] >= 4 * 64
    assert len(list((out / "pred" / "test--YouTube_test--0000").glob("*.png"))) == 19
    assert len(list((out / "gt" / "test--YouTube_test--0000").glob("*.png"))) == 19
    assert len(list((out / "lq" / "test--YouTube_test--0000").glob("*.png"))) == 3

    records = sorted((out / "clips").glob("*.json"))
    stamps = {p.name: p.stat().st_mtime_ns for p in records}
    caplog.clear()
    caplog.set_level(logging.INFO, logger="ldf_vfi")
    assert _evaluate(capsys, *argv)[0] == 0
    assert {p.name: p.stat().st_mtime_ns for p in records} == stamps
    assert sum("already scored" in r.message for r in caplog.records) == 2

    (out / "clips" / "test--GOPRO_test--GOPR0384_11_00.json").unlink()
    assert _evaluate(capsys, *argv)[0] == 0
    assert (out / "clips" / "test--GOPRO_test--GOPR0384_11_00.json").is_file()
    assert (out / "clips" / "test--YouTube_test--0000.json").stat().st_mtime_ns == stamps[
        "test--YouTube_test--0000.json"
    ]
    assert _load(out / "summary.json")["metrics"]["psnr"] == pytest.approx(summary["metrics"]["psnr"])

    # args.json holds the effective flags: --config repeats the run (and so resumes it).
    caplog.clear()
    assert _evaluate(capsys, "--config", out / "args.json")[0] == 0
    assert sum("already scored" in r.message for r in caplog.records) == 2

    # The other averaging needs no rescoring: the clip values are rebuilt from the per-frame values.
    caplog.clear()
    assert _evaluate(capsys, *argv, "--averaging", "frame")[0] == 0
    assert sum("already scored" in r.message for r in caplog.records) == 2
    framewise = _load(out / "summary.json")
    assert (
        framewise["averaging"] == "frame"
        and "| flow | snu_film | entire | 8x | 2 | frame |" in (out / "results.md").read_text()
    )
    assert framewise["metrics"]["psnr"] == pytest.approx(
        np.mean([np.mean(_load(p)["frames"]["psnr"]) for p in (out / "clips").glob("*.json")])
    )

    code, _, err = _evaluate(capsys, *argv, "--temporal_sf", "4")
    assert code == 2 and "holds results of another run (different temporal_sf)" in err


@pytest.mark.parametrize("dataset", ["snu_film", "x4k"])
def test_flow_beats_frame_repetition(dataset, snu_dir, x4k_dir, tmp_path, capsys):
    data = snu_dir if dataset == "snu_film" else x4k_dir
    extra = ["--task", "4k"] if dataset == "x4k" else []
    summaries = {}
    for backend in ("flow", "repeat"):
        out = tmp_path / backend
        argv = ["--dataset", dataset, "--data_dir", data, "--output_dir", out, "--backend", backend, *extra]
        assert _evaluate(capsys, *argv, "--metrics", "psnr,ssim", "--no_contact_sheets")[0] == 0
        summaries[backend] = _load(out / "summary.json")
    if dataset == "x4k":  # 33 frames at 16x: inputs 0, 16, 32; scored 1-15 and 17-31
        record = _load(tmp_path / "flow" / "clips" / "test--Type1--TEST01_003_f0433.json")
        assert record["frames"]["index"] == [*range(1, 16), *range(17, 32)]
        assert record["num_inputs"] == 3 and record["prediction_length"] == 33
    flow, repeat = summaries["flow"]["metrics"], summaries["repeat"]["metrics"]
    assert flow["psnr"] > repeat["psnr"] + 0.5
    assert flow["ssim"] > repeat["ssim"]
    assert summaries["flow"]["temporal_sf"] == (8 if dataset == "snu_film" else 16)
    table = compare_runs([tmp_path / "flow", tmp_path / "repeat"])
    assert "| flow |" in table and "| repeat |" in table
    assert "lpips not computed" not in table  # only requested metrics are reported
    capsys.readouterr()
    assert compare_main([str(tmp_path / "flow"), str(tmp_path / "repeat")]) == 0
    assert capsys.readouterr().out == table
    assert compare_main([str(tmp_path / "nothing")]) == 2


@pytest.mark.parametrize("weights", [None, "absent"])
def test_skipped_metrics_are_reported_once_not_zero(weights, snu_dir, tmp_path, capsys, caplog):
    """No weight flags, or a --weights_dir not made yet: the learned metrics are skipped with one note each,
    logged once; the summary and results.md keep the note."""
    out = tmp_path / "run"
    extra = ["--weights_dir", tmp_path / weights] if weights else []
    caplog.set_level(logging.INFO, logger="ldf_vfi")
    code, stdout, _ = _evaluate(
        capsys,
        "--dataset",
        "snu_film",
        "--data_dir",
        snu_dir,
        "--output_dir",
        out,
        "--max_videos",
        "1",
        *extra,
    )
    assert code == 0
    summary = _load(out / "summary.json")
    assert set(summary["metrics"]) == {"psnr", "ssim"} and summary["num_videos"] == 1
    assert set(summary["skipped_metrics"]) == {"lpips", "flolpips", "fvd"}
    assert "--i3d_weights" in summary["skipped_metrics"]["fvd"]
    assert sum("metric fvd skipped" in r.getMessage() for r in caplog.records) == 1
    assert "fvd not computed" not in stdout  # already said at the start
    assert "fvd not computed" in (out / "results.md").read_text()
    record = _load(out / "clips" / "test--GOPRO_test--GOPR0384_11_00.json")
    assert record["prediction_length"] == 17 and record["fvd_mode"] is None  # no FVD: no tail predicted


def test_default_output_dir_names_the_backend():
    from ldf_vfi.evaluation.cli import build_parser, settings_from_args

    def output_dir(*argv):
        args = build_parser().parse_args(["--data_dir", "d", *argv])
        return str(settings_from_args(args).output_dir)

    assert output_dir("--dataset", "snu_film", "--backend", "repeat") == "runs/eval_snu_film-8x-repeat"
    assert output_dir("--dataset", "snu_film", "--backend", "blend") == "runs/eval_snu_film-8x-blend"
    assert output_dir("--dataset", "x4k", "--task", "4k") == "runs/eval_x4k-4k-16x-flow"
    settings = settings_from_args(build_parser().parse_args(["--data_dir", "d", "--dataset", "video_folder"]))
    assert (settings.averaging, settings.fvd_mode) == ("frame", "interpolated")
    settings = settings_from_args(build_parser().parse_args(["--data_dir", "d", "--dataset", "x4k"]))
    assert (settings.averaging, settings.fvd_mode) == ("paper", "paper")


def test_paper_fvd_scores_every_ground_truth_frame(weights_dir, tmp_path, capsys):
    """A 32-frame clip at 8x has inputs 0, 8, 16, 24: the paper's FVD takes frames 0-31 (two sequences), the
    interpolated mode frames 0-24 (one). The tail 25-31 is the last input held (repeat backend)."""
    data = tmp_path / "SNU-FILM"
    _render(data / "test" / "GOPRO_test" / "long", 32, seed=4, step=0.5)
    _render(data / "test" / "YouTube_test" / "keyed", 33, seed=5, step=0.5)  # ends on an input: no tail
    for mode, sequences in (("paper", 4), ("interpolated", 3)):
        out = tmp_path / mode
        argv = ["--dataset", "snu_film", "--data_dir", data, "--output_dir", out, "--backend", "repeat"]
        argv += ["--metrics", "psnr,fvd", "--weights_dir", weights_dir, "--fvd_mode", mode, "--save_pred"]
        assert _evaluate(capsys, *argv, "--no_contact_sheets")[0] == 0
        summary = _load(out / "summary.json")
        assert summary["fvd"]["num_sequences"] == sequences and summary["fvd"]["mode"] == mode
        assert summary["fvd_mode"] == mode and f"- {mode} FVD mode" in (out / "results.md").read_text()
    record = _load(tmp_path / "paper" / "clips" / "test--GOPRO_test--long.json")
    assert record["prediction_length"] == 32 and record["fvd_sequences"] == 2
    pred = sorted((tmp_path / "paper" / "pred" / "test--GOPRO_test--long").glob("*.png"))
    assert len(pred) == 32
    last_input = cv2.imread(str(data / "test" / "GOPRO_test" / "long" / "000024.png"))
    assert all(np.array_equal(cv2.imread(str(p)), last_input) for p in pred[24:])
    # The value: float32 statistics over the sequences in the reference's gather order.
    from ldf_vfi.evaluation.aggregation import reference_fvd_order
    from ldf_vfi.metrics import frechet_distance

    logits = [np.load(tmp_path / "paper" / "clips" / f"{c}.fvd.npz") for c in reference_fvd_order(
        ["test--YouTube_test--keyed", "test--GOPRO_test--long"])]  # fmt: skip
    expected = frechet_distance(
        np.concatenate([x["pred"] for x in logits]), np.concatenate([x["gt"] for x in logits]), torch.float32
    )
    assert _load(tmp_path / "paper" / "summary.json")["fvd"]["value"] == expected


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_dir", "is not a folder"),
        ("not_snu", "is not SNU-FILM shaped"),
        ("short_clip", "has 5 frame(s); --temporal_sf 8 needs at least 9"),
        ("ldf", "'ldf' backend needs the released weights"),
        ("missing_weights", "--i3d_weights: no file at"),
        ("triplet_sf", "triplet protocol"),
        ("bad_metric", "unknown metric 'fid'"),
        ("bad_tiles", "--tile_stride_h must not exceed --tile_min_h"),  # the model flags generate.py checks
        ("bad_flow", "--flow_max_side must be at least 16"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(case, message, snu_dir, tmp_path, capsys):
    data, extra = snu_dir, []
    if case == "missing_dir":
        data = tmp_path / "nowhere"
    elif case == "not_snu":
        data = tmp_path / "videos"
        (data / "clips").mkdir(parents=True)
    elif case == "short_clip":
        data = tmp_path / "short"
        _render(data / "test" / "GOPRO_test" / "tiny", 5, seed=0, step=1.0)
    extra = {
        "ldf": ["--backend", "ldf"],
        "missing_weights": ["--i3d_weights", tmp_path / "i3d.pt"],
        "triplet_sf": ["--task", "test-hard", "--temporal_sf", "8"],
        "bad_metric": ["--metrics", "psnr,fid"],
        "bad_tiles": ["--tile_min_h", "64", "--tile_stride_h", "96"],
        "bad_flow": ["--flow_max_side", "8"],
    }.get(case, [])
    out = tmp_path / "out"
    code, _, err = _evaluate(capsys, "--dataset", "snu_film", "--data_dir", data, "--output_dir", out, *extra)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not out.exists()


def test_python_api_and_mp4_outputs(snu_dir, tmp_path):
    settings = EvalSettings(
        dataset="snu_film",
        data_dir=snu_dir,
        output_dir=tmp_path / "api",
        backend="blend",
        metrics=("psnr",),
        max_videos=1,
        save_pred=True,
        save_lq=True,
        save_format="mp4",
        contact_sheets=False,
    )
    summary = run_evaluation(settings)
    assert summary["method"] == "blend" and summary["num_videos"] == 1
    from ldf_vfi.io import probe

    assert probe(tmp_path / "api" / "pred" / "test--GOPRO_test--GOPR0384_11_00.mp4").num_frames == 17
    assert probe(tmp_path / "api" / "lq" / "test--GOPRO_test--GOPR0384_11_00.mp4").num_frames == 3


class _ShortBackend:
    def interpolate(self, frames, temporal_sf):
        yield from list(frames)  # the inputs only: far too few frames


def test_backend_with_wrong_frame_count_is_caught(snu_dir, tmp_path):
    clip = find_snu_film_clips(snu_dir)[0]
    settings = EvalSettings(dataset="snu_film", data_dir=snu_dir, output_dir=tmp_path, metrics=("psnr",))
    suite = MetricSuite.build(("psnr",), WeightPaths(), "cpu")
    with pytest.raises(LDFVFIError, match="returned 3 frames .* expected 17"):
        evaluate_clip(clip, plan_clip(len(clip), 8), _ShortBackend(), suite, settings)
    assert not (tmp_path / "clips").exists()


class _ExtrapolatingBackend:
    """Marks its frames: 1 for interpolated, 2 for extrapolated tail frames."""

    def interpolate(self, frames, temporal_sf, *, tail_frames=0):
        count = (len(list(frames)) - 1) * temporal_sf + 1
        yield from [np.ones((2, 2, 3), np.uint8)] * count + [np.full((2, 2, 3), 2, np.uint8)] * tail_frames


def test_predict_tail_from_the_backend_or_the_last_input_held():
    inputs = [np.full((2, 2, 3), v, np.uint8) for v in (10, 20, 30)]
    made = [int(f[0, 0, 0]) for f in predict(_ExtrapolatingBackend(), iter(inputs), 4, tail=3)]
    assert made == [1] * 9 + [2] * 3
    held = [int(f[0, 0, 0]) for f in predict(get_baseline("repeat"), iter(inputs), 4, tail=3)]
    assert held == [10, 10, 10, 20, 20, 20, 20, 30, 30, 30, 30, 30]
    assert len(list(predict(get_baseline("blend"), iter(inputs), 4))) == 9


@pytest.mark.distributed
def test_two_processes_split_clips_and_rank0_merges(snu_dir, tmp_path):
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun not installed")
    out = tmp_path / "dist"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        "torchrun",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(29500 + os.getpid() % 1000),
        str(ROOT / "evaluate.py"),
        "--dataset",
        "snu_film",
        "--data_dir",
        str(snu_dir),
        "--output_dir",
        str(out),
        "--metrics",
        "psnr",
        "--no_contact_sheets",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = _load(out / "summary.json")
    assert summary["num_videos"] == 2 and summary["num_missing"] == 0
    assert result.stdout.count("| flow | snu_film") == 1  # only rank 0 prints the table


@pytest.mark.parametrize("script", ["eval_snu_film.sh", "eval_x4k.sh"])
def test_quick_start_scripts_run(script, snu_dir, x4k_dir, tmp_path):
    data, env_extra = (snu_dir, {}) if script == "eval_snu_film.sh" else (x4k_dir, {"TASK": "4k"})
    env = {
        **os.environ,
        "DATA_DIR": str(data),
        "OUTPUT_DIR": str(tmp_path / "qs"),
        "METRICS": "psnr",
        "WEIGHTS_DIR": str(tmp_path / "absent"),
        "EXTRA_ARGS": "--max_videos 1 --no_contact_sheets",
        "OMP_NUM_THREADS": "1",
        **env_extra,
    }
    result = subprocess.run(
        ["bash", str(ROOT / "quick_start" / script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-2000:]
    summary = _load(tmp_path / "qs" / "summary.json")
    assert summary["num_videos"] == 1 and "psnr" in summary["metrics"]
    assert (tmp_path / "qs" / "log.txt").is_file()
