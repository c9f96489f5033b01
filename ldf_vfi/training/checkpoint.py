"""Checkpoint folders of a training run: naming, finding the latest complete one, atomic saving, pruning.

A checkpoint is ``<output_dir>/checkpoint-<step>/`` holding ``accelerator.save_state`` files (model,
optimizer, RNG states), ``state.json`` (:class:`RunState`) and the EMA copies. It is written under
``checkpoint-<step>.partial`` and renamed when complete, so ``--resume_from_checkpoint latest`` never picks
up a checkpoint that a killed run left half-written.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputError

__all__ = [
    "CHECKPOINT_PREFIX",
    "STATE_FILE",
    "RunState",
    "checkpoint_path",
    "list_checkpoints",
    "prune_checkpoints",
    "resolve_resume",
]

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "state.json"
_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


@dataclass
class RunState:
    """Where a run stands. ``cur_nsample`` counts optimizer-step samples (drives the lr schedule, as in the
    reference); ``data_position`` counts samples drawn from the data stream (the VAE trainer draws a second
    batch per step for the discriminator), which is where a resumed run continues the stream."""

    global_step: int = 0
    cur_nsample: int = 0
    data_position: int = 0
    metrics: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def load(cls, folder: str | Path) -> RunState:
        path = Path(folder) / STATE_FILE
        try:
            data = json.loads(path.read_text())
            return cls(
                int(data["global_step"]),
                int(data["cur_nsample"]),
                int(data["data_position"]),
                data.get("metrics", {}),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"cannot read training state '{path}': {exc}") from None


def checkpoint_path(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / f"{CHECKPOINT_PREFIX}{step}"


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (those with ``state.json``) of ``output_dir``, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir() and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def resolve_resume(value: str | None, output_dir: str | Path) -> Path | None:
    """The checkpoint to resume from: None for a fresh run; ``latest`` is the newest complete checkpoint of
    ``output_dir`` (None when there is none, so a launcher can always pass ``latest``); anything else is a
    folder, absolute or inside ``output_dir``."""
    if value is None:
        return None
    if value == "latest":
        found = list_checkpoints(output_dir)
        return found[-1][1] if found else None
    for candidate in (Path(value), Path(output_dir) / value):
        if (candidate / STATE_FILE).is_file():
            return candidate
    raise InputError(f"--resume_from_checkpoint '{value}' is not a complete checkpoint (no {STATE_FILE})")


def prune_checkpoints(output_dir: str | Path, keep: int | None) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints; returns the deleted folders."""
    if keep is None:
        return []
    found = list_checkpoints(output_dir)
    doomed = [path for _, path in found[: max(0, len(found) - keep)]]
    for path in doomed:
        shutil.rmtree(path)
    return doomed
