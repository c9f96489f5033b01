"""How training ranks are arranged: data-parallel groups of ``sp_size`` sequence-parallel ranks.

Consecutive ranks form a sequence-parallel (SP) group (rank ``r`` is in group ``r // sp_size``), as in the
reference (REFERENCE_SPEC 6). All ranks of a group train on the same clips: they share one data-parallel
rank, so :class:`~ldf_vfi.data.clips.ClipOrder` hands them identical samples without sending frames around
(the reference all-gathered decoded batches instead), and the noise and noise levels are broadcast from the
group's first rank. Splitting the transformer's tokens across the group is the model's job; a model that does
not split them computes the whole window on every rank of the group, which gives the same gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["ParallelLayout", "broadcast_in_group", "new_sp_group"]


@dataclass(frozen=True)
class ParallelLayout:
    world_size: int = 1
    rank: int = 0
    sp_size: int = 1

    def __post_init__(self) -> None:
        if self.sp_size < 1 or self.world_size % self.sp_size:
            raise ValueError(f"sp_size {self.sp_size} must divide the world size {self.world_size}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside a world of {self.world_size}")

    @property
    def dp_size(self) -> int:
        return self.world_size // self.sp_size

    @property
    def dp_rank(self) -> int:
        return self.rank // self.sp_size

    @property
    def sp_rank(self) -> int:
        return self.rank % self.sp_size

    @property
    def sp_source(self) -> int:
        """Global rank of the first member of this rank's SP group (the broadcast source)."""
        return self.dp_rank * self.sp_size

    def sp_group_ranks(self, group: int) -> list[int]:
        return list(range(group * self.sp_size, (group + 1) * self.sp_size))


def new_sp_group(layout: ParallelLayout):
    """Create every SP group (all ranks must call this, in the same order) and return this rank's; None when
    ``sp_size`` is 1."""
    if layout.sp_size == 1:
        return None
    mine = None
    for group in range(layout.dp_size):
        handle = dist.new_group(layout.sp_group_ranks(group))
        if group == layout.dp_rank:
            mine = handle
    return mine


def broadcast_in_group(tensors: Sequence[torch.Tensor], layout: ParallelLayout, group) -> None:
    """Overwrite ``tensors`` on every SP rank with the group source's values (in place); no-op without SP."""
    if group is None:
        return
    for tensor in tensors:
        dist.broadcast(tensor, src=layout.sp_source, group=group)
