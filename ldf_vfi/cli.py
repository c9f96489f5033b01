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
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

from tqdm.auto import tqdm

from . import __version__
from .backend_flags import add_backend_arguments, backend_options, resolve_backend, validate_backend_args
from .commands import COMMANDS, EXIT_INPUT_ERROR, one_line, run_command
from .config import ArgumentParser, add_config_argument, save_effective_config
from .distributed import process_info, shard_for_process
from .errors import InputError, LDFVFIError, first_line
from .io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    FrameReader,
    TimedFrame,
    VideoInfo,
    VideoWriter,
    check_input_path,
    list_inputs,
    probe,
)
from .io.writer import VIDEO_OUTPUT_EXTENSIONS, check_output_path, check_video_size
from .pipelines import get_interpolator
from .pipelines.flow import MAX_TEMPORAL_SF, check_temporal_sf, output_frame_count
from .pipelines.timing import UniformGrid, check_rate_increase, exact_time_base, slot_factor, with_slot_times

logger = logging.getLogger("ldf_vfi")

DEFAULT_TEMPORAL_SF = 4
# Model flags that only the diffusion backend reads; giving them to the flow backend is worth a warning.
MODEL_FLAGS = ("model_path", "vae_path")
CUT_HANDLING = {"ldf": "each shot sampled on its own"}


def _input_path(text: str) -> str:
    """argparse ``type`` of ``--data``: a readable regular file or folder (see :func:`check_input_path`)."""
    try:
        return str(check_input_path(text))
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
        type=_input_path,
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
        default=None,
        help=f"integer frame-rate multiplier, 1..{MAX_TEMPORAL_SF} (default {DEFAULT_TEMPORAL_SF})",
    )
    data.add_argument(
        "--target_fps",
        type=_positive_fraction,
        default=None,
        help="resample to this constant frame rate instead of an integer factor (flow backend; not with --temporal_sf)",
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
        help="results go to <output_dir>/<input stem>/pred.mp4, or <output_dir>/<input file name>/pred.mp4 "
        "for inputs that share a stem (default runs/generate)",
    )
    data.add_argument(
        "--output",
        default=None,
        help="exact output path for a single input (.mp4/.mkv/.mov, or a folder for PNG frames)",
    )
    data.add_argument(
        "--output_format",
        choices=("mp4", "png"),
        default=None,
        help="video (H.264, the default) or a folder of PNG frames",
    )
    data.add_argument(
        "--save_lq", action="store_true", help="also write the input as lq.mp4 beside the result"
    )
    data.add_argument("--no_audio", action="store_true", help="do not copy the input's audio track")
    data.add_argument("--crf", type=int, default=16, help="H.264 quality, lower is better (default 16)")
    data.add_argument("--skip_existing", action="store_true", help="skip inputs whose result already exists")

    add_backend_arguments(parser)


def validate_interpolate_args(args: argparse.Namespace) -> None:
    """Reject impossible or conflicting flag values before any file is read or model loaded (one clear line
    each), and fill the defaults that depend on other flags (``--temporal_sf``, ``--output_format``)."""
    if args.target_fps is not None and args.temporal_sf is not None:
        raise InputError(
            "--target_fps and --temporal_sf both set the output frame rate; give one of them "
            "(--temporal_sf multiplies the input's rate, --target_fps sets it, e.g. 60)"
        )
    if args.target_fps is None:
        args.temporal_sf = check_temporal_sf(
            DEFAULT_TEMPORAL_SF if args.temporal_sf is None else args.temporal_sf
        )
    _resolve_output_format(args)
    if args.crf < 0 or args.crf > 51:
        raise InputError(f"--crf must be in 0..51, got {args.crf}")
    validate_backend_args(args)
    if args.is_img_folder and not Path(args.data).is_dir():
        raise InputError(f"--is_img_folder says --data is a folder of frames, but '{args.data}' is a file")


def _resolve_output_format(args: argparse.Namespace) -> None:
    """``--output_format`` from ``--output``'s name when not given; a contradiction is an error."""
    if args.output is None:
        args.output_format = args.output_format or "mp4"
        return
    suffix = Path(args.output).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        raise InputError(f"--output '{args.output}' looks like one image; name a folder for PNG frames")
    if suffix in VIDEO_EXTENSIONS and suffix not in VIDEO_OUTPUT_EXTENSIONS:
        raise InputError(
            f"cannot write {suffix} videos; name the --output {', '.join(VIDEO_OUTPUT_EXTENSIONS)}, "
            "or a folder for PNG frames"
        )
    implied = "mp4" if suffix in VIDEO_OUTPUT_EXTENSIONS else "png"
    if args.output_format not in (None, implied):
        what = "a video file" if implied == "mp4" else "a folder (PNG frames)"
        raise InputError(f"--output_format {args.output_format} contradicts --output '{args.output}', {what}")
    args.output_format = implied


def output_folder_names(sources: Sequence[Path]) -> dict[Path, str]:
    """The folder under ``--output_dir`` for each input: its stem (``clip.mp4`` -> ``clip``), or its whole
    file name (``clip.mp4``, ``clip.mov``) for inputs whose stems collide, so no two inputs share a result."""
    stems = Counter(source.stem for source in sources)
    names = {source: source.stem if stems[source.stem] == 1 else source.name for source in sources}
    taken = Counter(names.values())
    while any(count > 1 for count in taken.values()):  # a stem equal to another input's full name
        names = {s: s.name if taken[n] > 1 else n for s, n in names.items()}
        taken = Counter(names.values())
    return names


def output_path_for(source: Path, args: argparse.Namespace, folder_name: str | None = None) -> Path:
    if args.output is not None:
        return Path(args.output)
    name = "pred.mp4" if args.output_format == "mp4" else "pred"
    return Path(args.output_dir) / (folder_name or source.stem) / name


def plan_outputs(
    sources: Sequence[Path], args: argparse.Namespace, written_here: Collection[Path] | None = None
) -> dict[Path, Path]:
    """Each input's result path, checked before any work: one result per input, none overwriting an input,
    every folder creatable and writable (tried, then removed again), a video where a video fits.

    ``written_here`` (default: all) are the inputs whose results this process writes: only their folders are
    tried, so processes sharing ``--output_dir`` never create and remove each other's folders."""
    if args.output is not None and len(sources) > 1:
        raise InputError("--output names one file, but --data holds several inputs; use --output_dir")
    names = output_folder_names(sources)
    plan = {source: output_path_for(source, args, names[source]) for source in sources}
    inputs = {source.resolve() for source in sources}
    for source, destination in plan.items():
        if args.skip_existing and destination.exists():
            continue
        if destination.resolve() in inputs:
            raise InputError(f"the result '{destination}' would overwrite the input '{source}'")
        if args.save_lq and destination.parent / "lq.mp4" == destination:
            raise InputError(
                f"--save_lq writes '{destination}' beside the result; name the --output otherwise"
            )
        if written_here is None or source in written_here:
            check_output_path(destination, video=args.output_format == "mp4")
    return plan


def _time_scale(args: argparse.Namespace, info: VideoInfo) -> tuple[Fraction, Fraction, Fraction]:
    """``(ratio, real-time output fps, output fps)``: the rate multiplier, the rate that plays in real time,
    and the one written (``--fps``; below real time it is slow motion)."""
    if args.target_fps is not None:
        ratio = args.target_fps / info.fps
        if ratio > MAX_TEMPORAL_SF:
            raise InputError(
                f"--target_fps {float(args.target_fps):g} is more than {MAX_TEMPORAL_SF}x the input's {float(info.fps):g} fps"
            )
        return ratio, args.target_fps, args.fps or args.target_fps
    natural = info.fps * args.temporal_sf
    return Fraction(args.temporal_sf), natural, args.fps or natural


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

    Output frames are timed from the input's real frame times (see :mod:`ldf_vfi.pipelines.timing`): with
    ``--temporal_sf`` each input interval is cut into equal parts (a variable-rate input stays variable),
    with ``--target_fps`` the output has that constant rate; the last frame lasts until the input's end.
    ``--fps`` other than the real-time rate stretches every time by the same factor (slow motion, no audio).
    ``write=False`` runs the interpolation without writing (the other ranks of a sequence-parallel group,
    which compute the same frames as the group's first rank)."""
    if info.num_frames < 2:
        raise InputError(f"'{source}' has {info.num_frames} frame(s); interpolation needs at least 2")
    ratio, natural_fps, output_fps = _time_scale(args, info)
    # The diffusion backend shows its own bar in denoising steps (frames come a whole window at a time) and is
    # told the input's length to size it; it samples integer factors only, so it never lowers the rate.
    own_progress = getattr(interpolator, "reports_progress", False)
    if own_progress and args.target_fps is not None:
        check_rate_increase(info.fps, args.target_fps)
    if args.output_format == "mp4":
        check_video_size(info.width, info.height)
    stretch = natural_fps / output_fps  # 1 plays in real time
    # Audio only stays in sync when the output plays in real time.
    copy_audio = info.has_audio and not args.no_audio and stretch == 1
    expected = output_frame_count(info.num_frames, ratio)
    if write:
        audio = ""
        if copy_audio:
            audio = " with audio"
        elif info.has_audio and not args.no_audio:
            audio = " (audio not copied: slow motion)"
        rotated = f" (shown rotated {info.rotation} degrees)" if info.rotation else ""
        logger.info(
            "%s: %d frames %dx%d%s at %s fps -> %d frames at %s fps%s",
            source.name, info.num_frames, info.width, info.height, rotated, info.fps, expected, output_fps, audio,
        )  # fmt: skip

    reader = FrameReader(source, fps=args.input_fps)
    input_times: list[Fraction] = []
    lq_writer = None
    if args.save_lq and write:
        lq_writer = VideoWriter(
            destination.parent / "lq.mp4",
            info.fps,
            audio_from=source if copy_audio else None,
            crf=args.crf,
            time_base=info.time_base,
        )

    def inputs() -> Iterator[TimedFrame]:
        for frame in reader:
            input_times.append(frame.time)
            if lq_writer is not None:
                lq_writer.write(frame.image, frame.time)
            yield frame

    hints = {"num_inputs": info.num_frames} if own_progress else {}
    if args.target_fps is not None:
        if own_progress:  # an integer-factor sampler: the slot grid it samples before placing frames
            hints["temporal_sf"] = slot_factor(ratio)
        stream = interpolator.resample(inputs(), UniformGrid(args.target_fps, info.start_time), **hints)
        time_base = exact_time_base(info.start_time, 1 / args.target_fps, info.time_base)
    else:
        slots = interpolator.interpolate((frame.image for frame in inputs()), args.temporal_sf, **hints)
        stream = with_slot_times(slots, input_times, args.temporal_sf)
        time_base = info.time_base / args.temporal_sf
    if not write:
        produced = sum(1 for _ in stream)
        return {
            "input": str(source),
            "output": None,
            "input_frames": reader.frames_read,
            "output_frames": produced,
        }
    # Real time keeps the input's timestamps (audio stays in sync); slow motion starts at 0.
    origin = info.start_time if stretch != 1 else Fraction(0)

    def shown_at(time: Fraction) -> Fraction:
        return (time - origin) * stretch if stretch != 1 else time

    writer = VideoWriter(
        destination,
        output_fps,
        audio_from=source if copy_audio else None,
        crf=args.crf,
        time_base=time_base * stretch if time_base else Fraction(1, 1_000_000),
    )
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
                disable=own_progress,
            ):
                writer.write(frame.image, shown_at(frame.time))
            if writer.frames_written == 0:
                raise InputError(f"'{source}' gave no output frames")
            end = reader.end_time
            writer.close(end_time=shown_at(end) if end is not None else None)
        if lq_writer is not None:
            lq_writer.close(end_time=reader.end_time)
    except BaseException:
        if lq_writer is not None:
            lq_writer.abort()
        raise
    end = reader.end_time
    return {
        "input": str(source),
        "output": str(destination),
        "input_frames": reader.frames_read,
        "output_frames": writer.frames_written,
        "fps": str(output_fps),
        "duration": float(shown_at(end) - shown_at(input_times[0])) if end is not None else None,
        "audio": copy_audio,
        "scene_cuts": list(getattr(interpolator, "scene_cuts", [])),
    }


def _failure(source: Path, exc: BaseException) -> InputError:
    """One human line for anything an input or output can cause (our own errors, system and FFmpeg errors,
    memory): an :class:`InputError` that names the input when the message does not already."""
    if isinstance(exc, LDFVFIError):
        message = str(exc)
    elif isinstance(exc, MemoryError):
        message = f"not enough memory to interpolate '{source}'"
    else:
        message = f"'{source}': {first_line(exc)}"
    return InputError(one_line(message))


def run_interpolate(args: argparse.Namespace) -> int:
    """Run ``interpolate`` over every input this process owns; returns the exit status.

    Everything that can be checked without decoding is checked before the model is loaded: the flags, every
    input path, every result path. A failing input leaves nothing behind (no partial file, no folder made
    for it) and is reported in one line; the others are still processed.
    """
    import av

    validate_interpolate_args(args)
    backend = resolve_backend(args)
    if backend == "flow" and any(getattr(args, name) for name in MODEL_FLAGS):
        logger.warning("--backend flow ignores --model_path/--vae_path")
    try:
        sources = list_inputs(args.data)
        sp_size = args.sp_size if backend == "ldf" else 1
        mine = shard_for_process(sources, sp_size=sp_size)
        writes = process_info().rank % sp_size == 0  # one writer per sequence-parallel group
        plan = plan_outputs(sources, args, written_here=mine if writes else ())
        interpolator = get_interpolator(backend, **backend_options(args, backend))
    except OSError as exc:  # e.g. a folder that cannot be listed
        raise InputError(first_line(exc)) from None
    failures = 0
    progress = tqdm(mine, desc="videos", unit="video", disable=len(mine) < 2, dynamic_ncols=True)
    for source in progress:
        destination = plan[source]
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
            if not writes:
                continue
            config_path = destination.parent / (
                "generate_config.yaml" if args.output is None else f"{destination.name}.config.yaml"
            )
            save_effective_config(args, config_path, extra={"backend": backend})
            (config_path.with_suffix(".result.json")).write_text(
                json.dumps({**summary, "ldf_vfi_version": __version__}, indent=2) + "\n"
            )
        except (LDFVFIError, OSError, av.error.FFmpegError, MemoryError) as exc:
            error = _failure(source, exc)
            if len(sources) == 1:
                raise error from None
            failures += 1
            tqdm.write(f"error: {error}", file=sys.stderr)  # above the progress bar, on a line of its own
            continue
        cuts = summary["scene_cuts"]
        print(
            f"wrote {summary['output']}: {summary['output_frames']} frames at {float(Fraction(summary['fps'])):.6g} fps"
            + (
                f" ({len(cuts)} scene cut(s): {CUT_HANDLING.get(backend, 'repeated, not blended')})"
                if cuts
                else ""
            )
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
