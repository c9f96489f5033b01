"""Command line: ``ldf-vfi interpolate`` (also ``python generate.py``).

Flag names follow the reference launchers (``--data``, ``--temporal_sf``, ``--num_frames``, ``--sampling_steps``,
``--t_shift``, ``--sp_size``, ``--tile_min_h``, ...) so their users feel at home; defaults are the released
model's settings (16 steps, shift 8, tiles 256/192/20), not the reference's generic argparse defaults.
Errors a user can cause print one line, ``error: <what is wrong>``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import __version__
from .commands import COMMANDS, EXIT_INPUT_ERROR, one_line, run_command
from .config import ArgumentParser, add_config_argument, existing_path, save_effective_config
from .distributed import process_info, shard_for_process
from .errors import InputError, LDFVFIError
from .io import VideoInfo, VideoWriter, iter_frames, list_inputs, probe
from .pipelines import BACKENDS, get_interpolator
from .pipelines.flow import MAX_TEMPORAL_SF, check_temporal_sf, output_frame_count

logger = logging.getLogger("ldf_vfi")

FLOW_OPTION_NAMES = ("flow_preset", "flow_max_side", "scene_cut_threshold")
# Model flags that only the diffusion backend reads; giving them to the flow backend is worth a warning.
MODEL_FLAGS = ("model_path", "vae_path")


def _positive_fraction(text: str) -> Fraction:
    try:
        value = Fraction(text).limit_denominator(1_000_000)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"not a number: {text!r} (use e.g. 60, 59.94 or 60000/1001)"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_interpolate_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``generate.py`` / ``ldf-vfi interpolate``, defined once."""
    add_config_argument(parser)
    data = parser.add_argument_group("input and output")
    data.add_argument(
        "--data",
        required=True,
        type=existing_path,
        help="a video file, a folder of frames, or a folder of videos",
    )
    data.add_argument(
        "--is_img_folder",
        action="store_true",
        help="(reference compatibility) --data is one folder of frames; detected automatically anyway",
    )
    data.add_argument(
        "--input_fps",
        type=_positive_fraction,
        default=None,
        help="frame rate of a frame-folder input (default 30) or an override for videos",
    )
    data.add_argument(
        "--temporal_sf",
        type=int,
        default=4,
        help=f"integer frame-rate multiplier, 1..{MAX_TEMPORAL_SF} (default 4)",
    )
    data.add_argument(
        "--target_fps",
        type=_positive_fraction,
        default=None,
        help="resample to this frame rate instead of an integer factor (flow backend)",
    )
    data.add_argument(
        "--fps",
        type=_positive_fraction,
        default=None,
        help="frame rate written into the output (default: input fps x temporal_sf, i.e. real time; a smaller value gives slow motion)",
    )
    data.add_argument(
        "--output_dir",
        default="runs/generate",
        help="results go to <output_dir>/<input name>/pred.mp4 (default runs/generate)",
    )
    data.add_argument(
        "--output",
        default=None,
        help="exact output path for a single input (.mp4/.mkv/.mov, or a folder for PNG frames)",
    )
    data.add_argument(
        "--output_format",
        choices=("mp4", "png"),
        default="mp4",
        help="video (H.264) or a folder of PNG frames",
    )
    data.add_argument(
        "--save_lq", action="store_true", help="also write the input as lq.mp4 beside the result"
    )
    data.add_argument("--no_audio", action="store_true", help="do not copy the input's audio track")
    data.add_argument("--crf", type=int, default=16, help="H.264 quality, lower is better (default 16)")
    data.add_argument("--skip_existing", action="store_true", help="skip inputs whose result already exists")

    add_backend_arguments(parser)


def add_backend_arguments(
    parser: argparse.ArgumentParser,
    extra_backends: Sequence[str] = (),
    backend_help: str = "flow (no weights, CPU) or ldf (diffusion model); auto picks ldf when --model_path is given",
) -> None:
    """The backend and diffusion-model flags, shared by ``generate.py`` and ``evaluate.py`` (which adds its
    baselines through ``extra_backends``)."""
    backend = parser.add_argument_group("backend")
    backend.add_argument(
        "--backend", choices=("auto", *BACKENDS, *extra_backends), default="auto", help=backend_help
    )
    backend.add_argument(
        "--device", default="auto", help="torch device for the ldf backend: auto, cpu, cuda, cuda:1, ..."
    )
    backend.add_argument("--seed", type=int, default=42, help="random seed (ldf backend)")
    backend.add_argument(
        "--flow_preset",
        choices=("ultrafast", "fast", "medium"),
        default="medium",
        help="optical-flow quality/speed (flow backend)",
    )
    backend.add_argument(
        "--flow_max_side",
        type=int,
        default=1024,
        help="estimate flow at most at this resolution (flow backend)",
    )
    backend.add_argument(
        "--scene_cut_threshold",
        type=float,
        default=0.3,
        help="scene-cut score above which frames are repeated, not blended (flow backend)",
    )
    backend.add_argument(
        "--no_scene_detect", action="store_true", help="never treat neighbours as a scene cut"
    )

    model = parser.add_argument_group("diffusion model (ldf backend)")
    model.add_argument(
        "--model_path",
        type=existing_path,
        default=None,
        help="folder holding transformer/ (the released LDF-VFI weights)",
    )
    model.add_argument("--vae_path", type=existing_path, default=None, help="Wan2.1_VAE_cond_v2.pth")
    model.add_argument("--vae_type", choices=("wan2_1", "wan2_1_cond_v2"), default="wan2_1_cond_v2")
    model.add_argument(
        "--attention_type", default=None, help="default: the released model's slide_chunk_all_block_2x1x1"
    )
    model.add_argument("--temporal_upsample", choices=("nearest",), default="nearest")
    model.add_argument(
        "--num_frames",
        type=int,
        default=60,
        help="window length in output frames, a multiple of --tile_min_t, at least 3 chunks (default 60)",
    )
    model.add_argument("--sampling_steps", type=int, default=16)
    model.add_argument("--t_shift", type=float, default=8.0)
    model.add_argument("--t_cond", type=float, default=0.1, help="noise level of the context chunks")
    model.add_argument(
        "--sp_size", type=int, default=1, choices=(1, 2, 4), help="sequence-parallel group size"
    )
    model.add_argument("--max_chunks", type=int, default=None, help="stop after this many output segments")
    model.add_argument("--vae_batch_size", type=int, default=16)
    model.add_argument("--tile_min_h", type=int, default=256)
    model.add_argument("--tile_min_w", type=int, default=256)
    model.add_argument("--tile_stride_h", type=int, default=192)
    model.add_argument("--tile_stride_w", type=int, default=192)
    model.add_argument("--tile_min_t", type=int, default=20)


def validate_interpolate_args(args: argparse.Namespace) -> None:
    """Reject impossible flag values before any file is read or model loaded (one clear line each)."""
    check_temporal_sf(args.temporal_sf)
    if args.crf < 0 or args.crf > 51:
        raise InputError(f"--crf must be in 0..51, got {args.crf}")
    if args.flow_max_side < 16:
        raise InputError(f"--flow_max_side must be at least 16, got {args.flow_max_side}")
    if not 0.0 < args.scene_cut_threshold <= 1.0:
        raise InputError(f"--scene_cut_threshold must be in (0, 1], got {args.scene_cut_threshold}")
    for name in (
        "sampling_steps",
        "vae_batch_size",
        "tile_min_h",
        "tile_min_w",
        "tile_stride_h",
        "tile_stride_w",
        "tile_min_t",
    ):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    for axis in ("h", "w"):
        if getattr(args, f"tile_stride_{axis}") > getattr(args, f"tile_min_{axis}"):
            raise InputError(f"--tile_stride_{axis} must not exceed --tile_min_{axis}")
    if args.num_frames % args.tile_min_t or args.num_frames < 3 * args.tile_min_t:
        raise InputError(
            f"--num_frames must be a multiple of --tile_min_t ({args.tile_min_t}) of at least 3 chunks, got {args.num_frames}"
        )
    if args.t_shift <= 0:
        raise InputError(f"--t_shift must be positive, got {args.t_shift}")
    if not 0.0 <= args.t_cond < 1.0:
        raise InputError(f"--t_cond must be in [0, 1), got {args.t_cond}")
    if args.max_chunks is not None and args.max_chunks < 1:
        raise InputError(f"--max_chunks must be positive, got {args.max_chunks}")
    if args.output is not None and Path(args.data).is_dir() and len(list_inputs(args.data)) > 1:
        raise InputError("--output names one file, but --data holds several inputs; use --output_dir")


def resolve_backend(args: argparse.Namespace) -> str:
    if args.backend != "auto":
        return args.backend
    return "ldf" if args.model_path else "flow"


def backend_options(args: argparse.Namespace, backend: str) -> dict:
    if backend == "flow":
        options = {name: getattr(args, name) for name in FLOW_OPTION_NAMES}
        options["detect_scene_cuts"] = not args.no_scene_detect
        return options
    return {
        name: getattr(args, name)
        for name in (
            "model_path",
            "vae_path",
            "vae_type",
            "attention_type",
            "temporal_upsample",
            "num_frames",
            "sampling_steps",
            "t_shift",
            "t_cond",
            "sp_size",
            "max_chunks",
            "vae_batch_size",
            "tile_min_h",
            "tile_min_w",
            "tile_stride_h",
            "tile_stride_w",
            "tile_min_t",
            "seed",
            "device",
        )
    }


def output_path_for(source: Path, args: argparse.Namespace) -> Path:
    if args.output is not None:
        return Path(args.output)
    name = "pred.mp4" if args.output_format == "mp4" else "pred"
    return Path(args.output_dir) / source.stem / name


def interpolate_one(
    source: Path,
    destination: Path,
    interpolator,
    args: argparse.Namespace,
    info: VideoInfo,
    position: int = 0,
    write: bool = True,
) -> dict:
    """Interpolate one input into ``destination`` (atomically); returns a summary of what was written.

    ``write=False`` runs the interpolation without writing (the other ranks of a sequence-parallel group,
    which compute the same frames as the group's first rank)."""
    if info.num_frames < 2:
        raise InputError(f"'{source}' has {info.num_frames} frame(s); interpolation needs at least 2")
    if args.target_fps is not None:
        ratio = args.target_fps / info.fps
        if ratio > MAX_TEMPORAL_SF:
            raise InputError(
                f"--target_fps {float(args.target_fps):g} is more than {MAX_TEMPORAL_SF}x the input's {float(info.fps):g} fps"
            )
        natural_fps = args.target_fps
    else:
        ratio = Fraction(args.temporal_sf)
        natural_fps = info.fps * args.temporal_sf
    output_fps = args.fps or natural_fps
    # Audio only stays in sync when the output plays in real time.
    copy_audio = info.has_audio and not args.no_audio and output_fps == natural_fps
    expected = output_frame_count(info.num_frames, ratio)
    if write:
        logger.info(
            "%s: %d frames %dx%d at %s fps%s -> %d frames at %s fps",
            source.name, info.num_frames, info.width, info.height, info.fps,
            " with audio" if info.has_audio else "", expected, output_fps,
        )  # fmt: skip

    lq_writer = None
    if args.save_lq and write:
        lq_writer = VideoWriter(
            destination.parent / "lq.mp4", info.fps, audio_from=source if copy_audio else None, crf=args.crf
        )

    def inputs() -> Iterator[np.ndarray]:
        for frame in iter_frames(source):
            if lq_writer is not None:
                lq_writer.write(frame)
            yield frame

    if args.target_fps is not None:
        stream = interpolator.retime(inputs(), info.fps, args.target_fps)
    else:
        stream = interpolator.interpolate(inputs(), args.temporal_sf)
    if not write:
        produced = sum(1 for _ in stream)
        return {
            "input": str(source),
            "output": None,
            "input_frames": info.num_frames,
            "output_frames": produced,
        }
    writer = VideoWriter(destination, output_fps, audio_from=source if copy_audio else None, crf=args.crf)
    try:
        with writer:
            for frame in tqdm(
                stream,
                total=expected,
                desc=source.name,
                unit="frame",
                position=position,
                leave=False,
                dynamic_ncols=True,
            ):
                writer.write(frame)
        if lq_writer is not None:
            lq_writer.close()
    except BaseException:
        if lq_writer is not None:
            lq_writer.abort()
        raise
    return {
        "input": str(source),
        "output": str(destination),
        "input_frames": info.num_frames,
        "output_frames": writer.frames_written,
        "fps": str(output_fps),
        "scene_cuts": list(getattr(interpolator, "scene_cuts", [])),
    }


def run_interpolate(args: argparse.Namespace) -> int:
    """Run ``interpolate`` over every input this process owns; returns the exit status."""
    validate_interpolate_args(args)
    backend = resolve_backend(args)
    if backend == "flow" and any(getattr(args, name) for name in MODEL_FLAGS):
        logger.warning("--backend flow ignores --model_path/--vae_path")
    sources = list_inputs(args.data)
    interpolator = get_interpolator(backend, **backend_options(args, backend))
    sp_size = args.sp_size if backend == "ldf" else 1
    mine = shard_for_process(sources, sp_size=sp_size)
    writes = process_info().rank % sp_size == 0  # one writer per sequence-parallel group
    failures = 0
    progress = tqdm(mine, desc="videos", unit="video", disable=len(mine) < 2, dynamic_ncols=True)
    for source in progress:
        destination = output_path_for(source, args)
        if args.skip_existing and destination.exists():
            logger.info("skipping %s: %s exists", source, destination)
            continue
        try:
            info = probe(source, fps=args.input_fps)
            summary = interpolate_one(
                source,
                destination,
                interpolator,
                args,
                info,
                position=1 if len(mine) > 1 else 0,
                write=writes,
            )
        except LDFVFIError as exc:
            if len(sources) == 1:
                raise
            failures += 1
            print(f"error: {one_line(exc)}", file=sys.stderr)
            continue
        if not writes:
            continue
        config_path = destination.parent / (
            "generate_config.yaml" if args.output is None else f"{destination.name}.config.yaml"
        )
        save_effective_config(args, config_path, extra={"backend": backend})
        (config_path.with_suffix(".result.json")).write_text(
            json.dumps({**summary, "ldf_vfi_version": __version__}, indent=2) + "\n"
        )
        cuts = summary["scene_cuts"]
        print(
            f"wrote {summary['output']}: {summary['output_frames']} frames at {float(Fraction(summary['fps'])):.6g} fps"
            + (f" ({len(cuts)} scene cut(s) repeated, not blended)" if cuts else "")
        )
    return EXIT_INPUT_ERROR if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ldf-vfi`` console command: ``ldf-vfi <command> [flags]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = ArgumentParser(prog="ldf-vfi", description="LDF-VFI: video frame interpolation.")
    top.add_argument("--version", action="version", version=f"ldf-vfi {__version__}")
    top.add_argument(
        "command", choices=sorted(COMMANDS), help="; ".join(f"{k}: {v[0]}" for k, v in COMMANDS.items())
    )
    if not argv or argv[0].startswith("-"):
        top.parse_args(argv or ["--help"])
    top.parse_args(argv[:1])
    return run_command(f"ldf-vfi {argv[0]}", argv[0], argv[1:])


def generate_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``generate.py``: the ``interpolate`` command without the sub-command word."""
    return run_command("generate.py", "interpolate", argv)
