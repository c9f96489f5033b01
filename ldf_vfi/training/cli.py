"""Command lines of the trainers: ``train.py`` (DiT) and ``train_vae.py`` (conditional VAE decoder).

Both parse the shared flags of :mod:`~ldf_vfi.training.args`, validate them before anything is loaded, and
print user errors as one line ``error: <message>`` with exit status 2. :func:`add_train_command` hooks both
into ``ldf-vfi train dit|vae`` when the package CLI registers it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..errors import LDFVFIError
from .args import Stage, build_parser, validate_args

__all__ = ["add_train_command", "main", "run_stage"]

EXIT_INPUT_ERROR = 2


def run_stage(args: argparse.Namespace) -> int:
    """Validate and run one parsed training command line; returns the exit status."""
    validate_args(args)
    if args.stage == "dit":
        from .dit import train_dit

        train_dit(args)
    else:
        from .vae_decoder import train_vae

        train_vae(args)
    return 0


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run_stage(args)
    except LDFVFIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR


def main(stage: Stage, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point of ``train.py`` (``stage="dit"``) and ``train_vae.py`` (``stage="vae"``)."""
    return _run(build_parser(stage, prog=prog).parse_args(argv))


def add_train_command(subparsers) -> None:
    """Register ``train dit`` and ``train vae`` on the ``ldf-vfi`` sub-command parsers."""
    train = subparsers.add_parser("train", help="train the DiT or the conditional VAE decoder")
    stages = train.add_subparsers(dest="stage_command", required=True)
    for stage, text in (
        ("dit", "the diffusion transformer (train.py)"),
        ("vae", "the VAE decoder (train_vae.py)"),
    ):
        parser = stages.add_parser(
            stage, help=text, parents=[build_parser(stage)], add_help=False, conflict_handler="resolve"
        )
        parser.set_defaults(handler=_run, stage=stage)
