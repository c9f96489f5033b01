"""Command lines of the trainers: ``train.py`` (DiT) and ``train_vae.py`` (conditional VAE decoder).

Both run through the package's command runner (:func:`ldf_vfi.commands.run_command`): ``--config FILE``,
one-line errors ``error: <message>`` with exit status 2, flags validated before anything is loaded
(``--validate_only`` stops there: the launch scripts check a command line once before starting processes); the
same commands are ``ldf-vfi train`` and ``ldf-vfi train_vae``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .args import validate_args

__all__ = ["main_dit", "main_vae", "run_train_dit", "run_train_vae"]


def run_train_dit(args: argparse.Namespace) -> int:
    """Validate and run DiT training; returns the exit status."""
    validate_args(args, "dit")
    if args.validate_only:
        return 0
    from .dit import train_dit

    train_dit(args)
    return 0


def run_train_vae(args: argparse.Namespace) -> int:
    """Validate and run conditional VAE decoder training; returns the exit status."""
    validate_args(args, "vae")
    if args.validate_only:
        return 0
    from .vae_decoder import train_vae

    train_vae(args)
    return 0


def _run(prog: str, name: str, argv: Sequence[str] | None) -> int:
    from ..commands import run_command  # the ldf-vfi command table lists train and train_vae

    return run_command(prog, name, argv)


def main_dit(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``train.py``."""
    return _run("train.py", "train", argv)


def main_vae(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``train_vae.py``."""
    return _run("train_vae.py", "train_vae", argv)
