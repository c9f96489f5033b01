"""Result files of an evaluation run, and merging them into tables.

Layout of ``--output_dir``::

    args.json                    effective arguments of the (last) run
    clips/<clip>.json            one record per finished clip: per-frame values, means, timing (resume marker)
    clips/<clip>.fvd.npz         I3D logits of the clip's 16-frame sequences (pred, gt), when FVD is on
    contact_sheets/<clip>.png
    per_clip_metrics.csv         one row per clip
    per_frame_metrics.csv        one row per scored frame
    summary.json                 means over videos, per subset, FVD, skipped metrics, timing
    results.md                   method x metric table

Aggregation (:mod:`ldf_vfi.evaluation.aggregation`): a clip's value comes from its per-frame values, with the
reference's arithmetic (``paper`` averaging) or as their plain mean (``frame``), recomputed here from the
records, so a rerun with the other averaging needs no new scoring; the dataset value is the unweighted mean
over clips (as the reference); FVD pools the sequences of all clips (order and precision by FVD mode).

``python -m ldf_vfi.evaluation.compare RUN_DIR [RUN_DIR ...]`` prints one markdown table comparing runs.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..metrics.fvd import FVD_MAX_SEQUENCES, FVD_SEQUENCE_LENGTH, frechet_distance
from .aggregation import (
    AVERAGING_NOTES,
    FVD_NOTES,
    NOT_REFERENCE_METRICS,
    NOT_REFERENCE_NOTE,
    fvd_dtype,
    reference_fvd_order,
    video_mean,
)
from .scoring import ALL_METRICS, FRAME_METRICS, HIGHER_IS_BETTER

CLIPS_DIR = "clips"
SUMMARY_FILE = "summary.json"
TABLE_FILE = "results.md"
CLIP_CSV = "per_clip_metrics.csv"
FRAME_CSV = "per_frame_metrics.csv"
_DIGITS = {"psnr": 2, "ssim": 4, "ssim2d": 4, "lpips": 4, "flolpips": 4, "fvd": 2}


def write_json_atomic(path: Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def clip_record_path(output_dir: Path, clip_id: str) -> Path:
    return Path(output_dir) / CLIPS_DIR / f"{clip_id}.json"


def clip_fvd_path(output_dir: Path, clip_id: str) -> Path:
    return Path(output_dir) / CLIPS_DIR / f"{clip_id}.fvd.npz"


def load_clip_record(output_dir: Path, clip_id: str) -> dict | None:
    path = clip_record_path(output_dir, clip_id)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def save_clip_fvd(output_dir: Path, clip_id: str, pred: np.ndarray, gt: np.ndarray) -> None:
    path = clip_fvd_path(output_dir, clip_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.npz")
    np.savez(tmp, pred=pred.astype(np.float32), gt=gt.astype(np.float32))
    os.replace(tmp, path)


def is_complete(record: dict | None, metrics: Sequence[str], output_dir: Path, fvd_mode: str) -> bool:
    """Whether a finished clip already holds every requested metric (so a rerun can skip it); its FVD
    sequences count only when they were taken in ``fvd_mode`` (another frame set is rescored)."""
    if record is None:
        return False
    frame_metrics = [m for m in metrics if m in FRAME_METRICS]
    if any(m not in record.get("metrics", {}) for m in frame_metrics):
        return False
    if "fvd" not in metrics:
        return True
    return record.get("fvd_mode") == fvd_mode and clip_fvd_path(output_dir, record["clip"]).is_file()


def _mean(values) -> float:
    values = [float(v) for v in values]
    return float(np.mean(values)) if values else float("nan")


def _strict(value):
    """JSON without NaN/Infinity literals: non-finite floats become the strings ``"nan"``, ``"inf"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def pooled_fvd(
    output_dir: Path,
    clip_ids: Sequence[str],
    max_sequences: int = FVD_MAX_SEQUENCES,
    fvd_mode: str = "paper",
) -> dict:
    """FVD over the sequences of ``clip_ids``, at most ``max_sequences``: the first ones in the reference's
    gather order (``paper`` mode, float32 statistics) or in the given order (float64)."""
    if fvd_mode == "paper":
        clip_ids = reference_fvd_order(clip_ids)
    pred, gt = [], []
    for clip_id in clip_ids:
        path = clip_fvd_path(output_dir, clip_id)
        if path.is_file():
            with np.load(path) as data:
                if data["pred"].size:
                    pred.append(data["pred"])
                    gt.append(data["gt"])
    pred_all = np.concatenate(pred)[:max_sequences] if pred else np.zeros((0, 0))
    gt_all = np.concatenate(gt)[:max_sequences] if gt else np.zeros((0, 0))
    result = {
        "value": float("nan"),
        "mode": fvd_mode,
        "frames": FVD_NOTES[fvd_mode],
        "num_sequences": int(pred_all.shape[0]),
        "sequence_length": FVD_SEQUENCE_LENGTH,
        "max_sequences": max_sequences,
    }
    if pred_all.shape[0] >= 2:
        result["value"] = frechet_distance(pred_all, gt_all, dtype=fvd_dtype(fvd_mode))
    else:
        result["note"] = "fewer than 2 sequences of 16 frames: FVD is undefined"
    return result


def merge_results(output_dir: Path, clips: Sequence[tuple[str, str]], run: dict) -> dict:
    """Read every finished clip of ``clips`` (``(clip_id, subset)``), write the tables, return the summary.

    ``run`` carries what describes the run in the summary (method, dataset, task, temporal_sf, resolution,
    metrics, skipped_metrics, weights, averaging, fvd_mode, args).
    """
    output_dir = Path(output_dir)
    records, missing = [], []
    for clip_id, _ in clips:
        record = load_clip_record(output_dir, clip_id)
        if record is None:
            missing.append(clip_id)
        else:
            records.append(record)
    metrics = [m for m in run["metrics"] if m in FRAME_METRICS]
    averaging, fvd_mode = run.get("averaging", "paper"), run.get("fvd_mode", "paper")
    for record in records:  # the clip values under this run's averaging, from the per-frame values
        frames = record["frames"]
        record["metrics"] = {m: video_mean(frames[m], averaging) for m in record["metrics"] if m in frames}

    def means(rows: list[dict]) -> dict:
        return {m: _mean(r["metrics"][m] for r in rows if m in r["metrics"]) for m in metrics}

    summary = {
        "method": run["method"],
        "dataset": run["dataset"],
        "task": run["task"],
        "temporal_sf": run["temporal_sf"],
        "resolution": run.get("resolution"),
        "num_videos": len(records),
        "num_missing": len(missing),
        "missing": missing,
        "num_scored_frames": int(sum(r["num_scored"] for r in records)),
        "metrics": means(records),
        "per_subset": {},
        "fvd": None,
        "skipped_metrics": run.get("skipped_metrics", {}),
        "weights": run.get("weights", {}),
        "averaging": averaging,
        "fvd_mode": fvd_mode if "fvd" in run["metrics"] else None,
        "protocol": _protocol_notes(run["metrics"], averaging, fvd_mode),
    }
    for subset in dict.fromkeys(r["subset"] for r in records):
        rows = [r for r in records if r["subset"] == subset]
        summary["per_subset"][subset] = {"num_videos": len(rows), **means(rows)}
    if "fvd" in run["metrics"]:
        cap = run.get("fvd_max_sequences", FVD_MAX_SEQUENCES)
        summary["fvd"] = pooled_fvd(output_dir, [r["clip"] for r in records], cap, fvd_mode)
        summary["metrics"]["fvd"] = summary["fvd"]["value"]
    interpolated = sum(r["prediction_length"] - r["num_inputs"] for r in records)
    seconds = sum(r.get("interpolation_seconds", 0.0) for r in records)
    summary["seconds_per_interpolated_frame"] = seconds / interpolated if interpolated else float("nan")
    summary["args"] = run.get("args", {})

    _write_clip_csv(output_dir / CLIP_CSV, records, metrics)
    _write_frame_csv(output_dir / FRAME_CSV, records, metrics)
    write_json_atomic(output_dir / SUMMARY_FILE, _strict(summary))
    table = render_table([summary])
    (output_dir / TABLE_FILE).write_text(table)
    return summary


def _protocol_notes(metrics: Sequence[str], averaging: str, fvd_mode: str) -> dict[str, str]:
    """For each reported metric, how its number was made (the ``protocol`` entry of the summary)."""
    notes = {}
    for metric in metrics:
        if metric == "fvd":
            notes[metric] = f"{fvd_mode} FVD mode: {FVD_NOTES[fvd_mode]}"
        else:
            notes[metric] = f"{averaging} averaging: {AVERAGING_NOTES[averaging]}"
        if metric in NOT_REFERENCE_METRICS:
            notes[metric] += f"; {NOT_REFERENCE_NOTE}"
    return notes


def _write_clip_csv(path: Path, records: list[dict], metrics: list[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["clip", "subset", "num_frames", "num_scored", *metrics, "interpolation_seconds"])
        for r in records:
            values = [r["metrics"].get(m, float("nan")) for m in metrics]
            writer.writerow(
                [
                    r["clip"],
                    r["subset"],
                    r["num_frames"],
                    r["num_scored"],
                    *values,
                    r.get("interpolation_seconds"),
                ]
            )


def _write_frame_csv(path: Path, records: list[dict], metrics: list[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["clip", "index", "name", *metrics])
        for r in records:
            frames = r["frames"]
            for k, index in enumerate(frames["index"]):
                writer.writerow(
                    [
                        r["clip"],
                        index,
                        frames["name"][k],
                        *(frames[m][k] if m in frames else "" for m in metrics),
                    ]
                )


def _format(metric: str, value) -> str:
    if value is None or (isinstance(value, str) and value == "nan"):
        return "–"
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "–"
    return f"{value:.{_DIGITS.get(metric, 4)}f}"


def render_table(summaries: Sequence[dict], skipped: bool = True) -> str:
    """Markdown table, one row per run (method x metric), with the protocol in the first columns and, per
    row, the averaging and FVD mode behind the numbers; notes below say what those mean, which metrics are
    not part of the reference protocol (marked †) and, with ``skipped``, which metrics were not computed."""
    metrics = [m for m in ALL_METRICS if any(m in s.get("metrics", {}) for s in summaries)]
    frame_metrics = [m for m in metrics if m != "fvd"]
    arrows = {m: "↑" if HIGHER_IS_BETTER[m] else "↓" for m in metrics}
    marks = {m: " †" if m in NOT_REFERENCE_METRICS else "" for m in metrics}
    head = ["method", "dataset", "task", "sf", "videos", *(["averaging"] if frame_metrics else [])]
    head += [f"{m.upper()} {arrows[m]}{marks[m]}" for m in metrics]
    head += [*(["FVD mode"] if "fvd" in metrics else []), "s/frame"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for s in summaries:
        spf = s.get("seconds_per_interpolated_frame")
        cells = [
            str(s["method"]),
            str(s["dataset"]),
            str(s["task"]),
            f"{s['temporal_sf']}x",
            str(s["num_videos"]) + (f" ({s['num_missing']} missing)" if s.get("num_missing") else ""),
            *([s.get("averaging") or "–"] if frame_metrics else []),
            *(_format(m, s["metrics"].get(m)) for m in metrics),
            *([s.get("fvd_mode") or "–"] if "fvd" in metrics else []),
            f"{spf:.3g}" if isinstance(spf, (int, float)) and math.isfinite(spf) else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    if frame_metrics:
        for averaging in dict.fromkeys(s.get("averaging") for s in summaries):
            if averaging in AVERAGING_NOTES:
                notes.append(f"- {averaging} averaging: {AVERAGING_NOTES[averaging]}")
    if "fvd" in metrics:
        for mode in dict.fromkeys(s.get("fvd_mode") for s in summaries):
            if mode in FVD_NOTES:
                notes.append(f"- {mode} FVD mode: {FVD_NOTES[mode]}")
    if any(marks.values()):
        notes.append(f"- †: {NOT_REFERENCE_NOTE}")
    for s in summaries if skipped else ():
        for metric, reason in s.get("skipped_metrics", {}).items():
            notes.append(f"- {s['method']}: {metric} not computed ({reason})")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def compare_runs(run_dirs: Sequence[str | Path]) -> str:
    """One markdown table over the ``summary.json`` of several output folders."""
    summaries = []
    for run_dir in run_dirs:
        path = Path(run_dir) / SUMMARY_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {SUMMARY_FILE} in '{run_dir}'")
        summaries.append(json.loads(path.read_text()))
    return render_table(summaries)


__all__ = [
    "compare_runs",
    "is_complete",
    "load_clip_record",
    "merge_results",
    "pooled_fvd",
    "render_table",
    "save_clip_fvd",
    "write_json_atomic",
]
