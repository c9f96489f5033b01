"""The command table and runner shared by every script (``generate.py``, ``evaluate.py``, ``train.py``,
``train_vae.py`` and the ``ldf-vfi`` console command).

A neutral module: it names each command's flag adder and handler by module path and imports them on first
use, so no command's module imports another's (``train.py`` does not load the interpolate command, and
``generate.py`` does not pay for the metric and training imports). Errors a user can cause print one line,
``error: <what is wrong>``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .config import ArgumentParser, parse_args_with_config
from .errors import LDFVFIError

__all__ = ["COMMANDS", "EXIT_INPUT_ERROR", "command_parser", "one_line", "run_command"]

EXIT_INPUT_ERROR = 2


def one_line(exc: BaseException) -> str:
    """An error message on one line (multi-line reports, e.g. checkpoint key lists, are joined with '; ')."""
    return "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def _lazy(module: str, name: str) -> Callable:
    """A command function imported on first use, so a script pays only for its own command's imports."""

    def call(*args, **kwargs):
        from importlib import import_module

        return getattr(import_module(module, __package__), name)(*args, **kwargs)

    return call


# Sub-commands of the ``ldf-vfi`` console command: name -> (help, add_arguments, handler). Each also has its own
# top-level script (generate.py, ...) with the same flags.
COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    "interpolate": (
        "raise the frame rate of videos (same flags as generate.py)",
        _lazy(".cli", "add_interpolate_arguments"),
        _lazy(".cli", "run_interpolate"),
    ),
    "evaluate": (
        "score a backend on SNU-FILM / X4K1000FPS (same flags as evaluate.py)",
        _lazy(".evaluation.cli", "add_evaluate_arguments"),
        _lazy(".evaluation.cli", "run_evaluate"),
    ),
    "train": (
        "train the LDF-VFI diffusion transformer (same flags as train.py)",
        _lazy(".training.args", "add_train_dit_arguments"),
        _lazy(".training.cli", "run_train_dit"),
    ),
    "train_vae": (
        "train the conditional VAE decoder (same flags as train_vae.py)",
        _lazy(".training.args", "add_train_vae_arguments"),
        _lazy(".training.cli", "run_train_vae"),
    ),
}


def command_parser(prog: str, add_arguments: Callable[[argparse.ArgumentParser], None]) -> ArgumentParser:
    """A parser with one command's flags (``--config FILE`` included) and one-line errors."""
    parser = ArgumentParser(prog=prog, description="Video frame interpolation with LDF-VFI.")
    add_arguments(parser)
    return parser


def run_command(prog: str, name: str, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` (with ``--config`` support) for command ``name`` and run it; returns the exit status."""
    _, add_arguments, handler = COMMANDS[name]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        args = parse_args_with_config(command_parser(prog, add_arguments), argv)
        return handler(args)
    except LDFVFIError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print("interrupted; no partial output was kept", file=sys.stderr)
        return 130
