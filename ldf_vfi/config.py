"""One config system for every script: YAML/JSON files whose keys are the command-line flags.

Each script defines its flags once with argparse. :func:`parse_args_with_config` adds ``--config FILE``:
the file's values become the parser's defaults, so the command line still overrides them, and a required
flag may come from the file. Keys are checked before anything else runs: an unknown key (with the closest
valid one suggested), a value of the wrong type or outside the allowed choices, or a missing path each give
one clear error that names the key and the file. :func:`config_dataclass` turns a parser into a dataclass
type whose fields are the flags, so a config is a typed object that round-trips file -> dataclass -> file;
:func:`save_effective_config` writes the values a run actually used next to its outputs, so any run can be
repeated exactly with ``--config that_file``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, first_line

CONFIG_FLAG = "config"
_INTERNAL_DESTS = {"help", "version", CONFIG_FLAG, "handler", "command"}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON file holding one mapping of flag names to values."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file not found: '{path}'")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        first = first_line(exc)
        raise InputError(f"cannot parse config file '{path}': {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(
            f"config file '{path}' must hold a mapping of flag names to values, not {type(data).__name__}"
        )
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        a.dest: a for a in parser._actions if a.dest not in _INTERNAL_DESTS and a.dest != argparse.SUPPRESS
    }


def _check_value(action: argparse.Action, key: str, value: Any, source: str) -> Any:
    """Convert/validate one config value the way argparse would treat it on the command line."""
    where = f"'{key}' in {source}"
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise InputError(f"{where} must be true or false, got {value!r}")
        return value
    if value is None:
        return None
    if action.nargs in ("*", "+") or isinstance(action.nargs, int):
        items = value if isinstance(value, list) else [value]
        return [_convert(action, where, item) for item in items]
    if isinstance(value, (list, dict)):
        raise InputError(f"{where} must be a single value, got {type(value).__name__}")
    return _convert(action, where, value)


def _convert(action: argparse.Action, where: str, value: Any) -> Any:
    converter = action.type
    if converter is not None:
        if converter in (int, float) and isinstance(value, bool):
            raise InputError(f"{where} must be {converter.__name__}, got {value!r}")
        if converter is int and isinstance(value, float) and not value.is_integer():
            raise InputError(f"{where} must be an integer, got {value!r}")
        try:
            value = converter(value)
        except argparse.ArgumentTypeError as exc:
            raise InputError(f"{where}: {exc}") from None
        except (TypeError, ValueError):
            name = getattr(converter, "__name__", "value").lstrip("_")
            raise InputError(f"{where} is not a valid {name}: {value!r}") from None
    elif not isinstance(value, (str, int, float)):
        raise InputError(f"{where} must be a string or number, got {type(value).__name__}")
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise InputError(f"{where} must be one of {choices}, got {value!r}")
    return value


def validate_config(parser: argparse.ArgumentParser, config: dict[str, Any], source: str) -> dict[str, Any]:
    """Check every key and value of ``config`` against ``parser``; returns the converted values."""
    actions = _actions(parser)
    checked = {}
    for key, value in config.items():
        if key not in actions:
            close = difflib.get_close_matches(key, list(actions), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise InputError(f"unknown key '{key}' in {source}{hint}")
        checked[key] = _check_value(actions[key], key, value, source)
    return checked


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: <message>``, exit 2); the usage stays behind ``--help``."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message}\n")


def existing_path(text: str) -> str:
    """argparse ``type`` for input paths: the same check for a flag and for a config-file key."""
    if not Path(str(text)).exists():
        raise argparse.ArgumentTypeError(f"not found: '{text}'")
    return str(text)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        f"--{CONFIG_FLAG}",
        default=None,
        help="YAML/JSON file of flag values (keys are the flag names); flags on the command line override it",
    )


def parse_args_with_config(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> argparse.Namespace:
    """``parser.parse_args`` with ``--config FILE`` support (the file sets defaults, the command line wins).

    The parser must already have the ``--config`` flag (:func:`add_config_argument`).
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument(f"--{CONFIG_FLAG}", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.config is not None:
        source = f"config file '{known.config}'"
        values = validate_config(parser, load_config_file(known.config), source)
        actions = _actions(parser)
        for key in values:
            actions[key].required = False  # the file provides it
        parser.set_defaults(**values)
    return parser.parse_args(argv)


def _plain(value: Any) -> Any:
    if isinstance(value, (Fraction, Path)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def effective_config(args: argparse.Namespace | Any) -> dict[str, Any]:
    """The flag values of a parsed run as a plain mapping (what :func:`save_effective_config` writes)."""
    values = vars(args) if isinstance(args, argparse.Namespace) else dataclasses.asdict(args)
    return {k: _plain(v) for k, v in values.items() if k not in _INTERNAL_DESTS and not callable(v)}


def save_effective_config(
    args: argparse.Namespace | Any, path: str | Path, extra: dict | None = None
) -> Path:
    """Write the run's flags (YAML for ``.yaml``/``.yml``, else JSON) so ``--config path`` repeats it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = effective_config(args)
    if extra:
        data.update(_plain(extra))
    tmp = path.with_name(f".{path.name}.partial")
    if path.suffix.lower() in (".yaml", ".yml"):
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    else:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def config_dataclass(parser: argparse.ArgumentParser, name: str = "Config") -> type:
    """A dataclass type with one field per flag of ``parser`` (defaults included), for typed configs."""
    specs = []
    for dest, action in _actions(parser).items():
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            kind = bool
        elif action.type in (int, float, str):
            kind = action.type
        else:
            kind = Any
        specs.append((dest, kind, dataclasses.field(default=action.default)))
    return dataclasses.make_dataclass(name, specs)


def load_config(parser: argparse.ArgumentParser, path: str | Path, name: str = "Config"):
    """Read and validate ``path`` into an instance of :func:`config_dataclass` ``(parser)``."""
    values = validate_config(parser, load_config_file(path), f"config file '{path}'")
    return config_dataclass(parser, name)(**values)
