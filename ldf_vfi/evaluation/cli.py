"""Command line of the evaluation: ``python evaluate.py`` (and the ``ldf-vfi evaluate`` sub-command).

Flag names follow the reference's ``eval_snu_film.py`` / ``eval_x4k.py`` (``--data_dir``, ``--task``,
``--temporal_sf``, ``--resolution``, ``--output_dir``, ``--save_lq``, ``--fps``) and
``calculate_metrics.py`` (``--metrics``, ``--batch_size``, ``--max_videos``), so one command replaces the
reference's three (generate, metrics, FVD). The backend and model flags are the very ones of
``generate.py`` (:func:`ldf_vfi.backend_flags.add_backend_arguments`, not redefined), plus two
baselines, ``repeat`` and ``blend``.

Errors a user can cause print one line, ``error: <what is wrong>``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from .aggregation import AVERAGINGS, FVD_MODES
from .baselines import BASELINES
from .runner import (
    DATASETS,
    EvalSettings,
    default_averaging,
    default_fvd_mode,
    default_task,
    default_temporal_sf,
    run_evaluation,
)
from .scoring import ALL_METRICS, DEFAULT_METRICS, WeightPaths, parse_metric_list


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``evaluate.py`` / ``ldf-vfi evaluate`` (plus ``--config FILE``, see :mod:`ldf_vfi.config`)."""
    from ..config import add_config_argument, existing_path

    add_config_argument(parser)
    data = parser.add_argument_group("dataset and protocol")
    data.add_argument(
        "--dataset_config",
        type=existing_path,
        default=None,
        help="a dataset entry (configs/datasets/*.yaml): sets --dataset, --data_dir, --task, --temporal_sf",
    )
    data.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="snu_film, x4k or video_folder (any folder of clips)",
    )
    data.add_argument(
        "--data_dir",
        default=None,
        help="dataset root holding test/ (SNU-FILM: GOPRO_test, YouTube_test; X4K: Type1-3)",
    )
    data.add_argument(
        "--task",
        default=None,
        help="snu_film: entire (default, whole sequences) or test-easy/-medium/-hard/-extreme (triplets); "
        "x4k: 1k (default, 540x1024), 2k (1080x2048) or 4k (native)",
    )
    data.add_argument(
        "--temporal_sf",
        type=int,
        default=None,
        help="inputs are GT[::temporal_sf] (default: 8 on SNU-FILM, 16 on X4K, 2 for triplets)",
    )
    data.add_argument("--resolution", default=None, help="crop every frame to its top-left HEIGHTxWIDTH")
    data.add_argument("--max_videos", type=int, default=None, help="evaluate only the first N clips")

    out = parser.add_argument_group("outputs")
    out.add_argument(
        "--output_dir",
        default=None,
        help="results folder (default runs/eval_<dataset>[-<task>]-<sf>x-<backend>, the task when not the "
        "default); rerun to resume",
    )
    out.add_argument("--method_name", default=None, help="row label in the tables (default: the backend)")
    out.add_argument("--save_pred", action="store_true", help="keep the predicted frames (pred/<clip>)")
    out.add_argument("--save_lq", action="store_true", help="keep the input frames (lq/<clip>)")
    out.add_argument(
        "--save_gt", action="store_true", help="keep the ground truth after resize/crop (gt/<clip>)"
    )
    out.add_argument(
        "--save_format",
        choices=("png", "mp4"),
        default="png",
        help="saved frames as PNG folders or H.264 videos",
    )
    out.add_argument("--fps", type=float, default=30.0, help="frame rate of saved videos (default 30)")
    out.add_argument(
        "--no_contact_sheets", action="store_true", help="do not write contact_sheets/<clip>.png"
    )
    out.add_argument(
        "--overwrite", action="store_true", help="recompute clips already scored in --output_dir"
    )

    metrics = parser.add_argument_group("metrics")
    metrics.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help=f"comma list from {','.join(ALL_METRICS)} (default {','.join(DEFAULT_METRICS)}); learned "
        "metrics without weights are skipped with a note",
    )
    metrics.add_argument("--weights_dir", default=None, help="folder searched for the metric weight files")
    metrics.add_argument(
        "--lpips_weights", default=None, help="AlexNet (+ LPIPS heads) weights for LPIPS and FloLPIPS"
    )
    metrics.add_argument("--i3d_weights", default=None, help="i3d_pretrained_400.pt for FVD")
    metrics.add_argument(
        "--pwcnet_weights", default=None, help="PWC-Net network-default.pytorch for FloLPIPS"
    )
    metrics.add_argument(
        "--averaging",
        choices=AVERAGINGS,
        default=None,
        help="per-video PSNR/SSIM/LPIPS: paper = the reference's calculate_metrics.py arithmetic (mean of "
        "batch-of-8 means over its 8-process split; default on snu_film and x4k), frame = plain mean over "
        "the scored frames (default on video_folder)",
    )
    metrics.add_argument(
        "--fvd_mode",
        choices=FVD_MODES,
        default=None,
        help="paper = every ground-truth frame, the tail after the last input included (predicted by the "
        "ldf model, the last input held by other backends), float32 statistics, as calculate_fvd.py "
        "(default on snu_film and x4k); interpolated = frames 0..(N-1)*sf only, float64",
    )
    metrics.add_argument(
        "--batch_size", type=int, default=8, help="frames per metric batch (default 8; no effect on values)"
    )
    metrics.add_argument(
        "--fvd_max_sequences", type=int, default=2048, help="cap on 16-frame FVD sequences (default 2048)"
    )

    from ..backend_flags import add_backend_arguments

    add_backend_arguments(
        parser,
        extra_backends=BASELINES,
        backend_help="flow (no weights, CPU), ldf (diffusion model), or a baseline: repeat (nearest input frame), "
        "blend (linear cross-fade); auto picks ldf when --model_path is given",
    )


def settings_from_args(args: argparse.Namespace) -> EvalSettings:
    """Turn parsed flags into :class:`EvalSettings` (validating them; errors are one line)."""
    from ..backend_flags import backend_options, resolve_backend, validate_backend_args
    from ..config import effective_config
    from ..data import parse_resolution
    from ..pipelines.flow import check_temporal_sf

    dataset_config = None
    if args.dataset_config is not None:
        from ..data.registry import load_dataset_config

        dataset_config = load_dataset_config(args.dataset_config)
        args.dataset = args.dataset or {"x4k1000fps": "x4k"}.get(dataset_config.type, dataset_config.type)
        args.data_dir = args.data_dir or dataset_config.root
        args.task = args.task or dataset_config.task
        args.temporal_sf = args.temporal_sf or dataset_config.temporal_sf
    if args.dataset is None or args.data_dir is None:
        raise InputError("give --dataset and --data_dir, or --dataset_config FILE")
    task = args.task or default_task(args.dataset)
    sf = (
        check_temporal_sf(args.temporal_sf)
        if args.temporal_sf is not None
        else default_temporal_sf(args.dataset, task)
    )
    validate_backend_args(args)
    backend = resolve_backend(args)
    options = {} if backend in BASELINES else backend_options(args, backend)
    if backend == "ldf":  # the protocol's numbers are the reference's: every clip one continuous video
        options["detect_scene_cuts"] = False
    # The backend in the default folder: flow, repeat and blend runs can follow one another without clashing.
    task_part = "" if task == default_task(args.dataset) else f"-{task}"
    output_dir = Path(args.output_dir or f"runs/eval_{args.dataset}{task_part}-{sf}x-{backend}")
    # The effective flags (resolved defaults included): args.json, so ``--config args.json`` repeats the run.
    recorded = effective_config(args)
    averaging = args.averaging or default_averaging(args.dataset)
    fvd_mode = args.fvd_mode or default_fvd_mode(args.dataset)
    recorded.update(
        task=task,
        temporal_sf=sf,
        backend=backend,
        output_dir=str(output_dir),
        averaging=averaging,
        fvd_mode=fvd_mode,
    )
    return EvalSettings(
        dataset=args.dataset,
        data_dir=args.data_dir,
        output_dir=output_dir,
        task=task,
        temporal_sf=sf,
        resolution=parse_resolution(args.resolution),
        backend=backend,
        backend_options=options,
        method=args.method_name,
        metrics=parse_metric_list(args.metrics),
        weights=WeightPaths(args.lpips_weights, args.i3d_weights, args.pwcnet_weights, args.weights_dir),
        batch_size=args.batch_size,
        max_videos=args.max_videos,
        save_pred=args.save_pred,
        save_lq=args.save_lq,
        save_gt=args.save_gt,
        save_format=args.save_format,
        fps=Fraction(args.fps).limit_denominator(1_000_000),
        contact_sheets=not args.no_contact_sheets,
        overwrite=args.overwrite,
        device=args.device,
        sp_size=args.sp_size if backend == "ldf" else 1,
        fvd_max_sequences=args.fvd_max_sequences,
        averaging=averaging,
        fvd_mode=fvd_mode,
        dataset_config=dataset_config,
        args=recorded,
    )


def run_evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation the flags describe; rank 0 prints the table. Returns the exit status."""
    settings = settings_from_args(args)
    summary = run_evaluation(settings)
    if summary is not None:
        from .results import TABLE_FILE, render_table

        print(render_table([summary], skipped=False), end="")  # skipped metrics were logged at the start
        print(f"results in {settings.output_dir} ({TABLE_FILE}, summary.json, per_clip_metrics.csv)")
        if summary["num_missing"]:
            print(
                f"warning: {summary['num_missing']} clip(s) have no result: {json.dumps(summary['missing'][:5])}"
            )
    return 0


EVALUATE_HELP = (
    "score a backend on SNU-FILM or X4K1000FPS with the LDF-VFI protocol (same flags as evaluate.py)"
)


def build_parser() -> argparse.ArgumentParser:
    from ..commands import command_parser

    return command_parser("evaluate.py", add_evaluate_arguments)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``evaluate.py``: ``--config`` support, one-line errors (exit 2), Ctrl-C handling.

    Runs through :func:`ldf_vfi.commands.run_command` like every script.
    """
    from ..commands import run_command

    return run_command("evaluate.py", "evaluate", argv)


__all__ = [
    "EVALUATE_HELP",
    "add_evaluate_arguments",
    "build_parser",
    "main",
    "run_evaluate",
    "settings_from_args",
]
