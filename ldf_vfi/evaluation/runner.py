"""The evaluation loop: clips -> backend -> per-frame metrics -> per-clip records -> merged tables.

Each clip is streamed: the inputs ``GT[::sf]`` are read lazily and fed to the backend, every predicted frame
is scored as it arrives (batched on the metric device), and only the frames a batch, an FVD sequence or the
contact sheet needs are held. A clip's record is written when the clip is done, so an interrupted run
resumes where it stopped: clips whose record already holds every requested metric are skipped.

Several processes (``accelerate launch`` / ``torchrun``) split the clips round-robin
(:func:`ldf_vfi.distributed.shard_for_process`); each writes its own clip records, and rank 0 merges them
after a barrier. The barrier is a gloo group with a long timeout, so a rank that finishes early can wait
for one still working on a long sequence.
"""

from __future__ import annotations

import datetime
import inspect
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import EvalClip
from ..data.registry import DatasetConfig, eval_clips
from ..data.snu_film import TRIPLET_LEVELS, find_snu_film_clips
from ..data.x4k import find_x4k_clips
from ..distributed import ProcessInfo, process_info, shard_for_process
from ..errors import InputError, LDFVFIError
from ..io import VideoWriter
from ..metrics.fvd import FVD_MAX_SEQUENCES, FVD_SEQUENCE_LENGTH
from .aggregation import AVERAGINGS, FVD_MODES, check_choice, video_mean
from .baselines import BASELINES, get_baseline
from .contact_sheet import SheetRow, save_contact_sheet
from .protocol import ClipPlan, contact_sheet_indices, plan_clip
from .results import (
    clip_record_path,
    is_complete,
    load_clip_record,
    merge_results,
    save_clip_fvd,
    write_json_atomic,
)
from .scoring import DEFAULT_METRICS, MetricSuite, WeightPaths

logger = logging.getLogger(__name__)

DATASETS = ("snu_film", "x4k", "video_folder")
BARRIER_TIMEOUT = datetime.timedelta(days=7)


def default_task(dataset: str) -> str:
    return {"snu_film": "entire", "x4k": "1k", "video_folder": "test"}[dataset]


def default_averaging(dataset: str) -> str:
    """``paper`` (the reference's arithmetic) on the paper's datasets, ``frame`` on other folders."""
    return "frame" if dataset == "video_folder" else "paper"


def default_fvd_mode(dataset: str) -> str:
    """``paper`` (every ground-truth frame) on the paper's datasets, ``interpolated`` on other folders."""
    return "interpolated" if dataset == "video_folder" else "paper"


def default_temporal_sf(dataset: str, task: str) -> int:
    """The reference launchers' factors: 8 on SNU-FILM, 16 on X4K; 2 for the SNU-FILM triplet levels."""
    if dataset == "snu_film":
        return 2 if task in TRIPLET_LEVELS else 8
    return 8 if dataset == "video_folder" else 16


def find_clips(
    dataset: str,
    data_dir: str | Path,
    task: str,
    crop: tuple[int, int] | None = None,
    dataset_config: DatasetConfig | None = None,
) -> list[EvalClip]:
    """The clips to evaluate. ``video_folder``: every video / frame folder below ``data_dir`` (or the ``task``
    split of ``dataset_config``), inputs taken every ``temporal_sf`` frames, the frames between scored."""
    if dataset == "video_folder":
        config = dataset_config or DatasetConfig(
            type="video_folder", root=str(data_dir), source=str(data_dir)
        )
        return eval_clips(config, crop, split=task)
    if dataset == "snu_film":
        return find_snu_film_clips(data_dir, task, crop)
    if dataset == "x4k":
        return find_x4k_clips(data_dir, task, crop)
    raise InputError(f"unknown --dataset '{dataset}' (choose {', '.join(DATASETS)})")


@dataclass
class EvalSettings:
    """Everything one evaluation run needs (the CLI fills it from flags; Python callers build it directly)."""

    dataset: str
    data_dir: str | Path
    output_dir: str | Path
    task: str | None = None
    temporal_sf: int | None = None
    resolution: tuple[int, int] | None = None
    backend: str = "flow"
    backend_options: dict = field(default_factory=dict)
    method: str | None = None
    metrics: tuple[str, ...] = DEFAULT_METRICS
    weights: WeightPaths = field(default_factory=WeightPaths)
    batch_size: int = 8
    max_videos: int | None = None
    save_pred: bool = False
    save_lq: bool = False
    save_gt: bool = False
    save_format: str = "png"
    fps: Fraction | float = 30
    contact_sheets: bool = True
    overwrite: bool = False
    device: str = "auto"
    sp_size: int = 1
    fvd_max_sequences: int = FVD_MAX_SEQUENCES
    averaging: str | None = None
    fvd_mode: str | None = None
    dataset_config: DatasetConfig | None = None
    args: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise InputError(f"unknown --dataset '{self.dataset}' (choose {', '.join(DATASETS)})")
        self.task = self.task or default_task(self.dataset)
        if self.temporal_sf is None:
            self.temporal_sf = default_temporal_sf(self.dataset, self.task)
        if self.dataset == "snu_film" and self.task in TRIPLET_LEVELS and self.temporal_sf != 2:
            raise InputError(
                f"--task {self.task} is a triplet protocol (one middle frame): --temporal_sf must be 2"
            )
        self.method = self.method or self.backend
        self.averaging = check_choice(
            "--averaging", self.averaging or default_averaging(self.dataset), AVERAGINGS
        )
        self.fvd_mode = check_choice("--fvd_mode", self.fvd_mode or default_fvd_mode(self.dataset), FVD_MODES)
        self.output_dir = Path(self.output_dir)
        if self.batch_size < 1:
            raise InputError(f"--batch_size must be positive, got {self.batch_size}")
        if self.max_videos is not None and self.max_videos < 1:
            raise InputError(f"--max_videos must be positive, got {self.max_videos}")
        if self.save_format not in ("png", "mp4"):
            raise InputError(f"--save_format must be png or mp4, got '{self.save_format}'")

    def fingerprint(self) -> dict:
        """What makes two runs' clip records comparable: protocol and method, not paths or metric choice."""
        return {
            "dataset": self.dataset,
            "task": self.task,
            "temporal_sf": self.temporal_sf,
            "resolution": list(self.resolution) if self.resolution else None,
            "method": self.method,
            "backend": self.backend,
            "backend_options": {k: _jsonable(v) for k, v in sorted(self.backend_options.items())},
        }


def _jsonable(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class Interpolator(Protocol):
    """What the harness needs from a backend: ``(N - 1) sf + 1`` uint8 RGB frames for ``N`` inputs.

    A backend whose ``interpolate`` takes a keyword ``tail_frames`` (the LDF pipeline) can also predict
    frames after the last input; see :func:`predict`.
    """

    def interpolate(self, frames: Iterable[np.ndarray], temporal_sf: int) -> Iterator[np.ndarray]: ...


def predict(
    interpolator: Interpolator, frames: Iterable[np.ndarray], temporal_sf: int, tail: int = 0
) -> Iterator[np.ndarray]:
    """The backend's frames, then ``tail`` more after the last input (the ``paper`` FVD mode needs every
    ground-truth frame). A backend that can extrapolate on its timeline (``interpolate(...,
    tail_frames=k)``, the LDF model, as the reference) makes them itself; for the others (flow, repeat,
    blend) the last input frame is held, which is what frame repetition would show there."""
    if tail == 0:
        return iter(interpolator.interpolate(frames, temporal_sf))
    if "tail_frames" in inspect.signature(interpolator.interpolate).parameters:
        return iter(interpolator.interpolate(frames, temporal_sf, tail_frames=tail))
    return _hold_last(interpolator.interpolate(frames, temporal_sf), tail)


def _hold_last(stream: Iterable[np.ndarray], count: int) -> Iterator[np.ndarray]:
    last = None
    for last in stream:
        yield last
    if last is not None:
        for _ in range(count):
            yield last


def make_interpolator(backend: str, options: dict) -> Interpolator:
    """A baseline (``repeat``, ``blend``) or a backend of :func:`ldf_vfi.pipelines.get_interpolator`."""
    if backend in BASELINES:
        return get_baseline(backend)
    from ..pipelines import get_interpolator

    return get_interpolator(backend, **options)


def resolve_device(device: str, info: ProcessInfo) -> torch.device:
    """``auto``: this process's GPU (``cuda:LOCAL_RANK``) when there is one, else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", info.local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise InputError(f"--device '{device}' is not a torch device") from None


def _barrier(info: ProcessInfo) -> None:
    """Wait for every process (no-op alone). Uses a gloo group with a timeout of days, not minutes."""
    if info.world_size == 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
        group = None
    else:
        group = dist.new_group(backend="gloo", timeout=BARRIER_TIMEOUT)
    dist.barrier(group=group)


class _ClipOutputs:
    """Optional saved streams of one clip (prediction, inputs, ground truth), each an atomic writer."""

    def __init__(self, settings: EvalSettings, clip: EvalClip):
        self.writers: dict[str, VideoWriter] = {}
        fps = Fraction(settings.fps).limit_denominator(1_000_000)
        for kind, wanted, rate in (
            ("pred", settings.save_pred, fps),
            ("lq", settings.save_lq, fps / settings.temporal_sf),
            ("gt", settings.save_gt, fps),
        ):
            if wanted:
                suffix = ".mp4" if settings.save_format == "mp4" else ""
                self.writers[kind] = VideoWriter(
                    Path(settings.output_dir) / kind / f"{clip.clip_id}{suffix}", rate
                )

    def write(self, kind: str, frame: np.ndarray) -> None:
        if kind in self.writers:
            self.writers[kind].write(frame)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


def evaluate_clip(
    clip: EvalClip,
    plan: ClipPlan,
    interpolator: Interpolator,
    suite: MetricSuite | None,
    settings: EvalSettings,
) -> dict | None:
    """Run the backend over one clip and score it; returns the clip record (``None`` when ``suite`` is
    ``None``, i.e. a sequence-parallel helper rank that only drives the backend)."""
    start = time.perf_counter()
    load_seconds = 0.0
    keys: dict[int, np.ndarray] = {}
    outputs = _ClipOutputs(settings, clip) if suite is not None else None

    def key(index: int) -> np.ndarray:
        if index not in keys:
            keys[index] = clip.load(index)
        return keys[index]

    def inputs() -> Iterator[np.ndarray]:
        nonlocal load_seconds
        for index in plan.input_indices:
            t = time.perf_counter()
            frame = key(index)
            load_seconds += time.perf_counter() - t
            if outputs is not None:
                outputs.write("lq", frame)
            yield frame

    stream = predict(interpolator, inputs(), plan.sf, plan.tail)
    if suite is None:
        for _ in stream:
            pass
        return None

    scored = set(plan.scored_indices)
    fvd_end = len(plan.fvd_windows(FVD_SEQUENCE_LENGTH)) * FVD_SEQUENCE_LENGTH if suite.fvd else 0
    sheet = set(contact_sheet_indices(plan)) if settings.contact_sheets else set()
    features = suite.fvd_features() if suite.fvd else None
    values: dict[str, list[float]] = {m: [] for m in suite.frame_metrics}
    indices: list[int] = []
    pending: list[tuple] = []
    window_pred: list[torch.Tensor] = []
    window_gt: list[torch.Tensor] = []
    logits_pred: list[np.ndarray] = []
    logits_gt: list[np.ndarray] = []
    rows: list[SheetRow] = []
    metric_seconds = 0.0
    produced = 0

    def flush() -> None:
        nonlocal metric_seconds
        if not pending:
            return
        t = time.perf_counter()
        j, pred, gt, k0, k1 = zip(*pending)
        batch = suite.score(pred, gt, k0 if suite.needs_keys else None, k1 if suite.needs_keys else None)
        for name, v in batch.items():
            values[name].extend(float(x) for x in v)
        indices.extend(j)
        pending.clear()
        metric_seconds += time.perf_counter() - t

    def collect(new: tuple[np.ndarray, np.ndarray]) -> None:
        if new[0].size:
            logits_pred.append(new[0])
            logits_gt.append(new[1])

    iterator = iter(stream)
    try:
        while True:
            try:
                pred = next(iterator)
            except StopIteration:
                break
            interp_end = time.perf_counter()
            j = produced
            produced += 1
            if j >= plan.prediction_length:
                raise LDFVFIError(
                    f"backend '{settings.backend}' returned more than {plan.prediction_length} frames for {clip.clip_id}"
                )
            pred = np.asarray(pred)
            needs_gt = j in scored or j < fvd_end or j in sheet or settings.save_gt
            gt = (keys[j] if j in keys else clip.load(j)) if needs_gt else None
            load_seconds += time.perf_counter() - interp_end
            if gt is not None and pred.shape != gt.shape:
                raise LDFVFIError(
                    f"backend returned a {pred.shape} frame for the {gt.shape} frames of {clip.clip_id}"
                )
            outputs.write("pred", pred)
            if gt is not None:
                outputs.write("gt", gt)
            if j in scored:
                k0, k1 = plan.block_keys(j)
                pending.append(
                    (j, pred, gt, key(k0), key(k1)) if suite.needs_keys else (j, pred, gt, None, None)
                )
                if len(pending) >= settings.batch_size:
                    flush()
            if j < fvd_end:
                t_fvd = time.perf_counter()
                window_pred.append(suite.fvd_preprocess([pred]))
                window_gt.append(suite.fvd_preprocess([gt]))
                if len(window_pred) == FVD_SEQUENCE_LENGTH:
                    features.add(torch.cat(window_pred, 1), torch.cat(window_gt, 1))
                    window_pred.clear()
                    window_gt.clear()
                    collect(features.flush())
                metric_seconds += time.perf_counter() - t_fvd
            if j in sheet:
                nearest = plan.nearest_key(j)
                rows.append(SheetRow(j, nearest, key(nearest), pred, gt))
            if j % plan.sf == 0:  # frames from here on only need keys >= j
                for old in [i for i in keys if i < j]:
                    del keys[old]
        flush()
        if features is not None:  # the sequences left over (usually all of a clip's): I3D time is metric time
            t_fvd = time.perf_counter()
            collect(features.flush(force=True))
            metric_seconds += time.perf_counter() - t_fvd
        if produced != plan.prediction_length:
            raise LDFVFIError(
                f"backend '{settings.backend}' returned {produced} frames for {clip.clip_id}, expected {plan.prediction_length}"
            )
        outputs.close()
    except BaseException:
        outputs.abort()
        raise

    total = time.perf_counter() - start
    order = np.argsort(indices)
    in_order = {m: [v[i] for i in order] for m, v in values.items()}
    record = {
        "clip": clip.clip_id,
        "subset": clip.subset,
        "num_frames": plan.num_frames,
        "num_inputs": len(plan.input_indices),
        "num_scored": len(indices),
        "prediction_length": plan.prediction_length,
        "fingerprint": settings.fingerprint(),
        "averaging": settings.averaging,
        "metrics": {m: video_mean(v, settings.averaging) for m, v in in_order.items()},
        "frames": {
            "index": [int(indices[i]) for i in order],
            "name": [clip.frame_name(int(indices[i])) for i in order],
            **in_order,
        },
        "fvd_mode": settings.fvd_mode if features is not None else None,
        "fvd_sequences": int(sum(len(x) for x in logits_pred)),
        "interpolation_seconds": max(total - metric_seconds - load_seconds, 0.0),
        "metric_seconds": metric_seconds,
        "seconds": total,
    }
    output_dir = Path(settings.output_dir)
    if features is not None:
        dim = logits_pred[0].shape[1] if logits_pred else 0
        save_clip_fvd(
            output_dir,
            clip.clip_id,
            np.concatenate(logits_pred) if logits_pred else np.zeros((0, dim)),
            np.concatenate(logits_gt) if logits_gt else np.zeros((0, dim)),
        )
    if rows:
        title = f"{clip.clip_id}  |  {settings.method}  |  {settings.dataset} {settings.task} {plan.sf}x"
        save_contact_sheet(output_dir / "contact_sheets" / f"{clip.clip_id}.png", title, rows)
    write_json_atomic(clip_record_path(output_dir, clip.clip_id), record)
    return record


def _check_previous_records(settings: EvalSettings, clips: list[EvalClip]) -> None:
    """Refuse to mix results of a different protocol or method into an existing output folder."""
    if settings.overwrite:
        return
    mine = settings.fingerprint()
    for clip in clips:
        record = load_clip_record(settings.output_dir, clip.clip_id)
        if record is not None and record.get("fingerprint") != mine:
            differs = sorted(k for k in mine if record.get("fingerprint", {}).get(k) != mine[k])
            raise InputError(
                f"--output_dir {settings.output_dir} holds results of another run (different {', '.join(differs)}); "
                "use a new --output_dir or pass --overwrite"
            )


def run_evaluation(settings: EvalSettings) -> dict | None:
    """Evaluate every clip (this process's share of them); on rank 0 return the merged summary."""
    info = process_info()
    clips = find_clips(
        settings.dataset, settings.data_dir, settings.task, settings.resolution, settings.dataset_config
    )
    if settings.max_videos is not None:
        clips = clips[: settings.max_videos]
    for clip in clips:  # a clip too short for the protocol stops the run before any model is loaded
        plan_clip(len(clip), settings.temporal_sf, f"clip '{clip.clip_id}'")
    _check_previous_records(settings, clips)
    output_dir = Path(settings.output_dir)

    settings.weights.check()
    device = resolve_device(settings.device, info)
    interpolator = make_interpolator(settings.backend, settings.backend_options)
    # With sequence parallelism the first rank of each group scores; the others only drive the backend but
    # must make the same skip decisions, so every rank builds the suite.
    leads_group = info.rank % settings.sp_size == 0
    suite = MetricSuite.build(settings.metrics, settings.weights, device)
    if info.is_main:  # once per run, not once per process
        for name, reason in suite.skipped.items():
            logger.warning("metric %s skipped: %s", name, reason)
    # The paper's FVD scores every ground-truth frame, so the prediction then covers the tail as well.
    whole = suite.fvd and settings.fvd_mode == "paper"
    plans = {
        clip.clip_id: plan_clip(len(clip), settings.temporal_sf, f"clip '{clip.clip_id}'", whole)
        for clip in clips
    }
    mine = shard_for_process(clips, info, sp_size=settings.sp_size)
    if info.is_main:
        write_json_atomic(output_dir / "args.json", settings.args)

    progress = tqdm(
        mine, desc=f"rank {info.rank}" if info.world_size > 1 else "clips", unit="clip", dynamic_ncols=True
    )
    for clip in progress:
        if not settings.overwrite and is_complete(
            load_clip_record(output_dir, clip.clip_id), suite.names, output_dir, settings.fvd_mode
        ):
            logger.info("%s already scored, skipping", clip.clip_id)
            continue
        progress.set_postfix_str(clip.clip_id)
        record = evaluate_clip(
            clip, plans[clip.clip_id], interpolator, suite if leads_group else None, settings
        )
        if record is not None:
            shown = ", ".join(f"{m} {v:.4g}" for m, v in record["metrics"].items())
            logger.info(
                "%s: %d frames scored%s", clip.clip_id, record["num_scored"], f" ({shown})" if shown else ""
            )

    _barrier(info)
    if not info.is_main:
        return None
    run = {
        "method": settings.method,
        "dataset": settings.dataset,
        "task": settings.task,
        "temporal_sf": settings.temporal_sf,
        "resolution": list(settings.resolution) if settings.resolution else None,
        "metrics": suite.names,
        "skipped_metrics": suite.skipped,
        "weights": suite.weight_files,
        "fvd_max_sequences": settings.fvd_max_sequences,
        "averaging": settings.averaging,
        "fvd_mode": settings.fvd_mode,
        "args": settings.args,
    }
    return merge_results(output_dir, [(c.clip_id, c.subset) for c in clips], run)


__all__ = [
    "DATASETS",
    "EvalSettings",
    "Interpolator",
    "default_averaging",
    "default_fvd_mode",
    "default_task",
    "default_temporal_sf",
    "evaluate_clip",
    "find_clips",
    "make_interpolator",
    "predict",
    "run_evaluation",
]
