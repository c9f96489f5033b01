"""The backend and diffusion-model flags, shared by ``generate.py`` and ``evaluate.py``.

One definition of each flag, one check of its value and one translation into the interpolator's options, so
the two scripts cannot drift apart (``evaluate.py`` adds its baselines through ``extra_backends``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .config import existing_path
from .errors import InputError
from .pipelines import BACKENDS
from .pipelines.scene import DEFAULT_SCENE_CUT_THRESHOLD

FLOW_OPTION_NAMES = ("flow_preset", "flow_max_side", "scene_cut_threshold")
# The VAE tiling flags (TilingConfig's fields, the reference launchers' names): positive integers.
TILING_FLAGS = ("vae_batch_size", "tile_min_h", "tile_min_w", "tile_stride_h", "tile_stride_w", "tile_min_t")
LDF_OPTION_NAMES = (
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
    *TILING_FLAGS,
    "seed",
    "device",
)


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
        help="optical-flow quality/speed (flow backend; the ldf backend's frames between its slots for --target_fps)",
    )
    backend.add_argument(
        "--flow_max_side",
        type=int,
        default=1024,
        help="estimate flow at most at this resolution (flow backend, and the ldf backend for --target_fps)",
    )
    backend.add_argument(
        "--scene_cut_threshold",
        type=float,
        default=DEFAULT_SCENE_CUT_THRESHOLD,
        help=f"scene-cut score in (0, 1] above which two neighbours are different shots: the flow backend "
        f"repeats instead of blending, the ldf backend samples each shot on its own; lower finds more cuts "
        f"(default {DEFAULT_SCENE_CUT_THRESHOLD})",
    )
    backend.add_argument(
        "--no_scene_detect",
        action="store_true",
        help="never treat neighbours as a scene cut (the ldf backend then samples the input as one continuous "
        "video, as the reference does)",
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


def validate_backend_args(args: argparse.Namespace) -> None:
    """Reject impossible backend and model flag values (one clear line each) before anything is loaded."""
    if args.flow_max_side < 16:
        raise InputError(f"--flow_max_side must be at least 16, got {args.flow_max_side}")
    if not 0.0 < args.scene_cut_threshold <= 1.0:
        raise InputError(f"--scene_cut_threshold must be in (0, 1], got {args.scene_cut_threshold}")
    for name in ("sampling_steps", *TILING_FLAGS):
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


def resolve_backend(args: argparse.Namespace) -> str:
    """``--backend auto`` means the diffusion model when its weights are given, optical flow otherwise."""
    if args.backend != "auto":
        return args.backend
    return "ldf" if args.model_path else "flow"


def backend_options(args: argparse.Namespace, backend: str) -> dict:
    """The keyword arguments of :func:`ldf_vfi.pipelines.get_interpolator` for ``backend``."""
    # The ldf backend takes the flow options too: the same cut detector, and flow between its slots.
    options = {name: getattr(args, name) for name in FLOW_OPTION_NAMES}
    options["detect_scene_cuts"] = not args.no_scene_detect
    if backend == "ldf":
        options.update({name: getattr(args, name) for name in LDF_OPTION_NAMES})
    return options
