"""The flags of ``train.py`` (DiT) and ``train_vae.py`` (conditional VAE decoder), defined once.

Names are the reference's (``train_dit.py``/``train_vae.py``, REFERENCE_SPEC 10.4-10.5), so its launch
scripts' lines work here. Defaults are what the reference's code actually ran, each with its source file and
line in a comment: for the DiT the values of its ``quick_start/train_dit.sh`` and, where its code and its
intent differ, the effect (the optimizer: DeepSpeed's AdamW defaults, see :data:`STAGE_DEFAULTS`); for the VAE
decoder, which has no launch script, the ``train_vae.py`` argparse defaults. A bare ``python train.py --data
... --model_path ... --vae_path ...`` trains the released DiT configuration (tiles 256/192/20, temporal
forcing, shift 5, sf 2-16, ...). Boolean switches that the DiT script turns on (``--no_bicubic``,
``--grad_checkpoint``) are on by default and keep their reference spelling; ``--bicubic`` and
``--no_grad_checkpoint`` turn them off.

The parsers are the package's (:mod:`ldf_vfi.config`): ``--config FILE`` (YAML/JSON keyed by flag names;
the command line wins), one-line argparse errors, and the ``args.json`` a run writes into its output folder
repeats it with ``--config``. Every value is checked by :func:`validate_args` before a file is read or a model
built; a bad one is an :class:`~ldf_vfi.errors.InputError` whose message is one line naming the flag.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Literal

from ..config import add_config_argument, existing_path
from ..data.clips import parse_pn
from ..data.temporal import parse_int_list
from ..diffusion import DIFFUSION_FORCING_MODES
from ..errors import InputError

__all__ = [
    "STAGE_DEFAULTS",
    "Stage",
    "add_train_dit_arguments",
    "add_train_vae_arguments",
    "build_parser",
    "ema_decays",
    "gradient_accumulation_steps",
    "temporal_sf_list",
    "tiling_config",
    "validate_args",
]

Stage = Literal["dit", "vae"]

# The defaults of each stage, every value with its source in the reference (files of xypeng9903/LDF-VFI,
# checked out at /work/ref). DiT: what quick_start/train_dit.sh passes, else what train_dit.py then runs with.
# VAE decoder: the reference has no launch script, so its train_vae.py argparse defaults are the recipe.
STAGE_DEFAULTS: dict[str, dict] = {
    "dit": dict(
        num_frames=60,  # quick_start/train_dit.sh:28
        pn="0.25M",  # quick_start/train_dit.sh:46
        temporal_sf="2-16",  # quick_start/train_dit.sh:48
        no_bicubic=True,  # quick_start/train_dit.sh:47
        output_dir="runs/train_dit",  # quick_start/train_dit.sh:16
        batch_size=256,  # quick_start/train_dit.sh:56
        batch_gpu=8,  # quick_start/train_dit.sh:67
        num_epochs=20,  # quick_start/train_dit.sh:60
        ref_lr=5e-5,  # quick_start/train_dit.sh:57
        rampup_Msample=0.5,  # quick_start/train_dit.sh:58
        # The optimizer that ran (REFERENCE_SPEC 14): train_dit.py:383-396 passes a DummyOptim because
        # configs/zero_stage1_config.json:5-7 (quick_start/train_dit.sh:77) has an optimizer block; the block
        # has no "params", so accelerate 1.15.0 fills nothing in (accelerator.py:2329-2331 and
        # deepspeed_config_process only replace "auto" values that are present) and DeepSpeed 0.19.8 builds
        # FusedAdam(adam_w_mode=True) with its own defaults (runtime/engine.py:2486-2493, 2409;
        # ops/adam/fused_adam.py:78-85): betas (0.9, 0.999), eps 1e-8, weight decay 0. train_dit.py's
        # --adam_beta1 0.95 and --adam_weight_decay 1e-6 (train_dit.py:104-107) never reached it.
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        adam_weight_decay=0.0,
        max_grad_norm=1.0,  # configs/zero_stage1_config.json:17 "gradient_clipping"
        ema_decay="0.995,0.999",  # quick_start/train_dit.sh:63
        checkpointing_steps=100,  # quick_start/train_dit.sh:71
    ),
    "vae": dict(
        # train_vae.py:60 defaults to 60, which cannot run (the causal VAE reconstructs 1 + 4k frames: 57, and
        # the loss fails on the shapes); 5 frames = one group as the sampler decodes them
        # (training/models/precond.py:664-666).
        num_frames=5,
        pn="0.25M",  # train_vae.py:61
        temporal_sf="4",  # train_vae.py:62
        no_bicubic=False,  # train_vae.py:65
        output_dir="runs/train_vae",  # ours (train_vae.py:89 "ddpm-model-64")
        batch_size=2048,  # train_vae.py:90
        batch_gpu=16,  # train_vae.py:91
        num_epochs=100,  # train_vae.py:95
        ref_lr=1e-4,  # train_vae.py:96
        rampup_Msample=0.0,  # train_vae.py:98
        # torch.optim.Adam, not AdamW, for both models (train_vae.py:298-310) with these flags:
        adam_beta1=0.95,  # train_vae.py:99
        adam_beta2=0.999,  # train_vae.py:100
        adam_epsilon=1e-8,  # train_vae.py:102
        adam_weight_decay=0.0,  # train_vae.py:101
        max_grad_norm=0.0,  # train_vae.py:519, 594: the optimizers step without clipping
        ema_decay="",  # train_vae.py:103
        checkpointing_steps=500,  # train_vae.py:108
    ),
}

_VAE_TYPES = {"dit": ("wan2_1", "wan2_1_cond_v2"), "vae": ("wan2_1_cond_v2",)}


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        required=True,
        type=existing_path,
        help="a dataset entry (configs/datasets/*.yaml, its train split), an index (the --dst folder of "
        "data_tools.py or its index.jsonl) or one video file",
    )
    data.add_argument(
        "--num_frames",
        type=int,
        help="frames per training clip (DiT: a multiple of --tile_min_t; VAE: 1 + 4k)",
    )
    data.add_argument(
        "--pn",
        help="crop size class: 0.06M (256x256), 0.25M (512x512), 1M, 4M (several sizes, see --dynamic_res) or HxW",
    )
    data.add_argument(
        "--temporal_sf",
        help="temporal scale factors drawn uniformly per clip, list syntax 'a,b,c-d' (e.g. 2-16)",
    )
    data.add_argument("--no_bicubic", dest="no_bicubic", action="store_true",
                      help="resize only clips smaller than the crop (DiT default, as its recipe)")  # fmt: skip
    data.add_argument("--bicubic", dest="no_bicubic", action="store_false",
                      help="always resize clips so the crop covers the frame's short side")  # fmt: skip
    # Flips and transposition off: quick_start/train_dit.sh:50-52, train_vae.py:66-68.
    data.add_argument("--p_vflip", type=float, default=0.0, help="probability of a vertical flip")
    data.add_argument("--p_hflip", type=float, default=0.0, help="probability of a horizontal flip")
    data.add_argument(
        "--p_transpose", type=float, default=0.0, help="probability of swapping height and width"
    )
    data.add_argument(
        "--dynamic_res",
        action="store_true",
        help="draw the crop among all sizes of --pn (needs --batch_gpu 1)",
    )
    data.add_argument(
        "--temporal_upsample",
        choices=("nearest",),
        default="nearest",  # quick_start/train_dit.sh:26, train_vae.py:70
        help="how missing frames are filled",
    )
    data.add_argument(
        "--avg_frames",
        default="0,0",  # quick_start/train_dit.sh:49, train_vae.py:63
        help="(reference compatibility) frame averaging is dead code in the reference; only 0,0 is accepted",
    )
    data.add_argument(
        "--video_backend", choices=("auto", "decord", "pyav"), default="auto", help="video decoder"
    )
    data.add_argument(
        "--dataloader_num_workers",
        type=int,
        default=2,  # train_dit.py:456, train_vae.py:338
        help="DataLoader worker processes per rank (each decodes with one thread)",
    )


def _add_vae_file_arguments(parser: argparse.ArgumentParser, stage: Stage) -> argparse._ArgumentGroup:
    vae = parser.add_argument_group("VAE")
    vae.add_argument(
        "--vae_path",
        type=existing_path,
        help="Wan2.1_VAE.pth (or a conditional v2 checkpoint); without it, a random VAE of --vae_config",
    )
    vae.add_argument(
        "--vae_type",
        choices=_VAE_TYPES[stage],
        default=_VAE_TYPES[stage][0],  # quick_start/train_dit.sh:32; train_vae.py:76 has none (v1 or v2)
        help="checkpoint layout: plain Wan2.1 or the conditional v2 (only its encoder is used by the DiT)",
    )
    vae.add_argument(
        "--vae_config",
        default=None,
        type=existing_path,
        help="JSON WanVAE config overriding the sizes read off --vae_path",
    )
    return vae


def _add_dit_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model_path",
        default=None,
        type=existing_path,
        help="Wan2.1-T2V-1.3B-Diffusers/transformer (widened to 36 inputs) or an LDF transformer folder to continue",
    )
    model.add_argument(
        "--model_config",
        default=None,
        type=existing_path,
        help="diffusers transformer config JSON: random init when no --model_path",
    )
    model.add_argument(  # None: quick_start/train_dit.sh:25's slide_chunk_all_block_2x1x1
        "--attention_type", default=None, help="default: the released slide_chunk_all_block_2x1x1"
    )
    model.add_argument("--attention_backend", default="auto", help="auto, flex, local_sdpa or dense")
    model.add_argument(
        "--diffusion_forcing",
        choices=DIFFUSION_FORCING_MODES,
        default="temporal",  # quick_start/train_dit.sh:27
        help="noise level per temporal chunk (released) or per chunk",
    )
    model.add_argument("--t_shift", type=float, default=5.0,  # quick_start/train_dit.sh:59
                       help="noise-level shift s (released: 5)")  # fmt: skip
    model.add_argument("--vae_channels", type=int, default=16,  # quick_start/train_dit.sh:23
                       help="(reference compatibility) must be 16")  # fmt: skip
    model.add_argument("--lq_proj_hidden_dim", type=int, default=16,  # quick_start/train_dit.sh:24
                       help="(reference compatibility) must be 16")  # fmt: skip
    model.add_argument("--lora_rank", type=int, default=0,  # train_dit.py:75
                       help="(reference compatibility) LoRA is not supported; 0")  # fmt: skip
    model.add_argument("--grad_checkpoint", dest="grad_checkpoint", action="store_true", default=True,
                       help="gradient checkpointing of the transformer blocks (default on: "
                       "quick_start/train_dit.sh:70)")  # fmt: skip
    model.add_argument("--no_grad_checkpoint", dest="grad_checkpoint", action="store_false")

    vae = _add_vae_file_arguments(parser, "dit")
    # VAE tiles and groups: quick_start/train_dit.sh:34-41.
    vae.add_argument(
        "--vae_batch_size", type=int, default=16, help="5-frame groups per VAE call (memory knob)"
    )
    vae.add_argument(
        "--tile_min_h", type=int, default=256, help="VAE tile = DiT chunk height in pixels (released 256)"
    )
    vae.add_argument("--tile_min_w", type=int, default=256)
    vae.add_argument("--tile_stride_h", type=int, default=192, help="tile stride (released 192)")
    vae.add_argument("--tile_stride_w", type=int, default=192)
    vae.add_argument("--tile_min_t", type=int, default=20, help="frames per temporal chunk (released 20)")
    vae.add_argument(
        "--spatial_compression_ratio", type=int, default=8, help="(reference compatibility) must be 8"
    )
    vae.add_argument(
        "--temporal_compression_ratio", type=int, default=4, help="(reference compatibility) must be 4"
    )
    vae.add_argument(
        "--batch_vae", type=int, default=None, help="(reference compatibility) unused, as in the reference"
    )


def _add_vae_training_arguments(parser: argparse.ArgumentParser) -> None:
    vae = _add_vae_file_arguments(parser, "vae")
    # Off by default (train_vae.py:82-83): the reference trains the encoder too, and at inference that encoder
    # makes the LQ latent the DiT reads (REFERENCE_SPEC 3.4), so freezing it changes the model.
    vae.add_argument("--freeze_encoder", dest="freeze_encoder", action="store_true", default=False,
                     help="keep the encoder (and conv1) fixed, i.e. the latent space of the Wan2.1 VAE")  # fmt: skip
    vae.add_argument("--no_freeze_encoder", dest="freeze_encoder", action="store_false",
                     help="train the encoder too (the default)")  # fmt: skip
    vae.add_argument("--freeze_decoder", action="store_true", help="keep the Wan decoder (and conv2) fixed")
    vae.add_argument(
        "--lpips_weights",
        default=None,
        type=existing_path,
        help="LPIPS AlexNet weights by path (torchvision or lpips layout; tools/convert_lpips_weights.py makes them)",
    )
    vae.add_argument("--perceptual_weight", type=float, default=1.0,  # train_vae.py:79
                     help="LPIPS weight w_p")  # fmt: skip
    vae.add_argument("--kl_weight", type=float, default=1e-6, help="KL weight")  # train_vae.py:81
    vae.add_argument("--disc_weight", type=float, default=0.5,  # train_vae.py:80
                     help="adversarial weight (times the adaptive weight)")  # fmt: skip
    vae.add_argument("--disc_start", type=int, default=50001,  # train_vae.py:78
                     help="first optimizer step with the adversarial loss")  # fmt: skip
    vae.add_argument("--disc_lr", type=float, default=1e-4,  # train_vae.py:77
                     help="discriminator reference learning rate")  # fmt: skip
    # NLayerDiscriminator(input_nc=3, n_layers=3) with ndf's default 64: train_vae.py:238, discriminator.py:93.
    vae.add_argument("--disc_ndf", type=int, default=64, help="PatchGAN filters in the first layer")
    vae.add_argument("--disc_layers", type=int, default=3, help="PatchGAN strided layers")


def _add_training_arguments(parser: argparse.ArgumentParser, stage: Stage) -> None:
    train = parser.add_argument_group("training")
    train.add_argument("--output_dir", help="checkpoints, log.jsonl, args.json and tensorboard logs go here")
    train.add_argument(
        "--seed",
        type=int,
        default=42,  # train_dit.py:93, train_vae.py:88
        help="seeds the data order, the clips, the noise and the init",
    )
    train.add_argument(
        "--batch_size", type=int, help="global batch per optimizer step (all ranks x accumulation)"
    )
    train.add_argument(
        "--batch_gpu", type=int, help="clips per rank per forward; accumulation fills --batch_size"
    )
    train.add_argument("--num_epochs", type=float, help="training length in passes over the index")
    train.add_argument(
        "--max_train_steps", type=int, default=None, help="stop after this many optimizer steps"
    )
    train.add_argument("--ref_lr", type=float, help="learning rate after the ramp-up (EDM2 schedule)")
    train.add_argument(
        "--ref_batches",
        type=float,
        default=0,  # train_dit.py:102, train_vae.py:97
        help=">0: lr / sqrt(samples / (ref_batches * batch_size)) decay",
    )
    train.add_argument(
        "--rampup_Msample", type=float, help="linear lr ramp-up over this many million samples"
    )
    train.add_argument("--adam_beta1", type=float, help="Adam beta1 (DiT: AdamW; VAE decoder: Adam)")
    train.add_argument("--adam_beta2", type=float)
    train.add_argument("--adam_weight_decay", type=float)
    train.add_argument("--adam_epsilon", type=float)
    train.add_argument(
        "--max_grad_norm", type=float, help="gradient clipping (0: off); DeepSpeed reads its JSON's"
    )
    train.add_argument("--ema_decay", help="comma-separated EMA decays, e.g. 0.995,0.999 ('' for none)")
    train.add_argument("--offload_ema", action="store_true", help="keep the EMA copies in CPU memory")
    train.add_argument(
        "--sp_size",
        type=int,
        default=1,  # quick_start/train_dit.sh:69
        help="sequence-parallel group size (ranks sharing a clip)",
    )
    train.add_argument("--start_step", type=int, default=None, help="start a fresh run as if at this step")
    train.add_argument("--reset_lr", action="store_true", help="with --start_step: restart the lr ramp there")
    train.add_argument("--checkpointing_steps", type=int, help="save a checkpoint every N optimizer steps")
    train.add_argument(
        "--checkpoints_total_limit", type=int, default=None, help="keep only the newest N checkpoints"
    )
    train.add_argument("--resume_from_checkpoint", default=None, help="'latest' or a checkpoint-N folder")
    train.add_argument(  # train_dit.py:110-111, train_vae.py:105-106
        "--logger", choices=("tensorboard", "wandb", "none"), default="tensorboard"
    )
    train.add_argument("--logging_dir", default="logs", help="tracker folder inside --output_dir")
    train.add_argument(
        "--validate_only",
        action="store_true",
        help="check the flags and exit (the launch scripts do this once, before starting processes)",
    )
    train.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)  # old launchers pass it


def _add_arguments(parser: argparse.ArgumentParser, stage: Stage) -> None:
    add_config_argument(parser)
    _add_data_arguments(parser)
    if stage == "dit":
        _add_dit_arguments(parser)
    else:
        _add_vae_training_arguments(parser)
    _add_training_arguments(parser, stage)
    parser.set_defaults(**STAGE_DEFAULTS[stage])


def add_train_dit_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``train.py`` / ``ldf-vfi train`` (with ``--config FILE``), released DiT recipe as defaults."""
    _add_arguments(parser, "dit")


def add_train_vae_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``train_vae.py`` / ``ldf-vfi train_vae`` (with ``--config FILE``)."""
    _add_arguments(parser, "vae")


def build_parser(stage: Stage, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of one training stage: ``"dit"`` (train.py) or ``"vae"`` (train_vae.py)."""
    from ..commands import command_parser

    adders = {"dit": add_train_dit_arguments, "vae": add_train_vae_arguments}
    return command_parser(prog or {"dit": "train.py", "vae": "train_vae.py"}[stage], adders[stage])


def temporal_sf_list(text: str) -> list[int]:
    """The ``--temporal_sf`` factors (``"2-16"`` -> ``[2, ..., 16]``); :class:`InputError` when malformed."""
    try:
        factors = parse_int_list(str(text))
    except ValueError as exc:
        raise InputError(f"--temporal_sf: {exc}") from None
    if not factors or min(factors) < 1:
        raise InputError(f"--temporal_sf needs factors >= 1, got '{text}'")
    return factors


def tiling_config(args: argparse.Namespace):
    """The :class:`~ldf_vfi.models.tiling.TilingConfig` of the flags of the same names (``--tile_min_h``, ...,
    ``--vae_batch_size``, ``--spatial_compression_ratio``); :class:`InputError` for an impossible geometry."""
    from ..models.tiling import TilingConfig

    return TilingConfig.from_options(args)


def ema_decays(text: str) -> list[float]:
    """``"0.995,0.999"`` -> ``[0.995, 0.999]``; empty -> ``[]``."""
    return [float(part) for part in text.split(",") if part.strip()]


def gradient_accumulation_steps(batch_size: int, batch_gpu: int, dp_size: int) -> int:
    """Micro-batches per optimizer step so that ``batch_gpu * dp_size * steps == batch_size`` exactly."""
    per_pass = batch_gpu * dp_size
    if batch_size % per_pass:
        raise InputError(
            f"--batch_size {batch_size} is not a multiple of --batch_gpu {batch_gpu} x {dp_size} data-parallel ranks"
        )
    return batch_size // per_pass


def _positive(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if value is None or value <= 0:
            raise InputError(f"--{name} must be positive, got {value}")


def _exists(value: str | None, flag: str) -> None:
    if value is not None and not Path(value).exists():
        raise InputError(f"--{flag} not found: '{value}'")


def _json_file(value: str | None, flag: str) -> None:
    if value is None:
        return
    _exists(value, flag)
    try:
        json.loads(Path(value).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"--{flag} '{value}' is not a JSON file: {exc}") from None


def validate_args(args: argparse.Namespace, stage: Stage, world_size: int | None = None) -> None:
    """Check every flag of a parsed training command line; raises :class:`InputError` (one line) on the first
    bad value. ``world_size`` defaults to the launcher's ``WORLD_SIZE``."""
    world_size = world_size if world_size is not None else int(os.environ.get("WORLD_SIZE", "1") or 1)
    _positive(args, "num_frames", "batch_size", "batch_gpu", "num_epochs", "checkpointing_steps", "sp_size")
    try:
        parse_pn(args.pn)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    temporal_sf_list(args.temporal_sf)
    for name in ("p_vflip", "p_hflip", "p_transpose"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise InputError(f"--{name} must be a probability in [0, 1], got {getattr(args, name)}")
    if args.avg_frames.replace(" ", "") not in ("0,0", "0"):
        raise InputError(
            f"--avg_frames {args.avg_frames}: frame averaging is not implemented (dead code in the reference)"
        )
    if args.dynamic_res and args.batch_gpu != 1:
        raise InputError("--dynamic_res mixes crop sizes, so it needs --batch_gpu 1")
    if args.dataloader_num_workers < 0:
        raise InputError(f"--dataloader_num_workers must be >= 0, got {args.dataloader_num_workers}")
    if world_size % args.sp_size:
        raise InputError(f"--sp_size {args.sp_size} must divide the number of processes ({world_size})")
    gradient_accumulation_steps(args.batch_size, args.batch_gpu, world_size // args.sp_size)
    if args.max_train_steps is not None and args.max_train_steps < 1:
        raise InputError(f"--max_train_steps must be positive, got {args.max_train_steps}")
    if args.ref_lr < 0 or args.rampup_Msample < 0 or args.ref_batches < 0:
        raise InputError("--ref_lr, --rampup_Msample and --ref_batches must not be negative")
    if not (0.0 <= args.adam_beta1 < 1.0 and 0.0 <= args.adam_beta2 < 1.0):
        raise InputError(f"Adam betas must be in [0, 1), got {args.adam_beta1}, {args.adam_beta2}")
    if args.adam_epsilon <= 0 or args.adam_weight_decay < 0 or args.max_grad_norm < 0:
        raise InputError(
            "--adam_epsilon must be positive; --adam_weight_decay and --max_grad_norm not negative"
        )
    try:
        decays = ema_decays(args.ema_decay)
    except ValueError:
        raise InputError(f"--ema_decay must be comma-separated numbers, got '{args.ema_decay}'") from None
    if any(not 0.0 < d < 1.0 for d in decays):
        raise InputError(f"--ema_decay values must be in (0, 1), got {args.ema_decay}")
    if args.start_step is not None and args.start_step < 0:
        raise InputError(f"--start_step must not be negative, got {args.start_step}")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        raise InputError(f"--checkpoints_total_limit must be positive, got {args.checkpoints_total_limit}")
    resume = args.resume_from_checkpoint
    if (
        resume not in (None, "latest")
        and not Path(resume).is_dir()
        and not (Path(args.output_dir) / resume).is_dir()
    ):
        raise InputError(f"--resume_from_checkpoint '{resume}' is neither 'latest' nor a checkpoint folder")
    _json_file(args.vae_config, "vae_config")
    (_validate_dit if stage == "dit" else _validate_vae)(args)


def _validate_dit(args: argparse.Namespace) -> None:
    _positive(args, "t_shift")
    for name, required in (("vae_channels", 16), ("lq_proj_hidden_dim", 16), ("spatial_compression_ratio", 8),
                           ("temporal_compression_ratio", 4)):  # fmt: skip
        if getattr(args, name) != required:
            raise InputError(
                f"--{name} must be {required} for LDF-VFI (it only sets a fixed width), got {getattr(args, name)}"
            )
    if args.lora_rank:
        raise InputError(
            "--lora_rank: LoRA is not supported; train all weights (the reference's LoRA froze the new input channels)"
        )
    tiling = tiling_config(args)
    if args.num_frames % tiling.tile_min_t:
        raise InputError(
            f"--num_frames {args.num_frames} must be a multiple of --tile_min_t {tiling.tile_min_t}"
        )
    if args.model_path is None and args.model_config is None:
        raise InputError(
            "give --model_path (Wan2.1-T2V-1.3B-Diffusers/transformer) or --model_config (random init)"
        )
    if args.vae_path is None and args.vae_config is None:
        raise InputError("give --vae_path (Wan2.1_VAE.pth) or --vae_config (a random VAE of that config)")
    _json_file(args.model_config, "model_config")
    if args.attention_type is not None:
        from ..models.attention import check_attention_type

        try:
            check_attention_type(args.attention_type)
        except ValueError as exc:
            raise InputError(f"--attention_type: {exc}") from None


def _validate_vae(args: argparse.Namespace) -> None:
    if (args.num_frames - 1) % 4:
        raise InputError(f"--num_frames {args.num_frames} must be 1 + 4k for the causal VAE (e.g. 5, 17)")
    for name in ("perceptual_weight", "kl_weight", "disc_weight"):
        if getattr(args, name) < 0:
            raise InputError(f"--{name} must not be negative, got {getattr(args, name)}")
    if args.disc_start < 0 or args.disc_lr < 0:
        raise InputError("--disc_start and --disc_lr must not be negative")
    _positive(args, "disc_ndf", "disc_layers")
    if args.sp_size != 1:
        raise InputError("--sp_size: the VAE decoder trains with data parallelism only (sp_size 1)")
    if args.perceptual_weight > 0 and args.lpips_weights is None:
        raise InputError(
            "--perceptual_weight > 0 needs --lpips_weights PATH (ImageNet AlexNet trunk; tools/convert_lpips_weights.py "
            "makes one offline; nothing is downloaded), or pass --perceptual_weight 0"
        )
