"""Spreading independent work items (videos, clips) over processes.

Ranks come from the environment that ``torchrun`` and ``accelerate launch`` both set (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``), so one code path serves either launcher and a plain ``python`` run is
rank 0 of 1. With sequence parallelism, the ``sp_size`` consecutive ranks of a group share each item.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class ProcessInfo:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def process_info() -> ProcessInfo:
    """This process's rank, the world size and the local rank, read from the launcher's environment."""

    def read(name: str, default: int) -> int:
        value = os.environ.get(name, "")
        try:
            return int(value) if value else default
        except ValueError:
            raise InputError(f"environment variable {name}={value!r} is not an integer") from None

    world_size = read("WORLD_SIZE", 1)
    rank = read("RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"inconsistent launcher environment: RANK={rank}, WORLD_SIZE={world_size}")
    return ProcessInfo(rank=rank, world_size=world_size, local_rank=read("LOCAL_RANK", 0))


def shard_for_process(items: Sequence[T], info: ProcessInfo | None = None, sp_size: int = 1) -> list[T]:
    """The items this process handles: round-robin over data-parallel groups of ``sp_size`` ranks.

    Every item goes to exactly one group; all ranks of a group get the same items.
    """
    info = info or process_info()
    if sp_size < 1 or info.world_size % sp_size:
        raise InputError(f"--sp_size {sp_size} must divide the number of processes ({info.world_size})")
    groups = info.world_size // sp_size
    group = info.rank // sp_size
    return [item for index, item in enumerate(items) if index % groups == group]
