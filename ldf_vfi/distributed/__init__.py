"""Process topology helpers: which rank am I, which inputs are mine, and sequence parallelism."""

from .sharding import ProcessInfo, process_info, shard_for_process

__all__ = ["ProcessInfo", "process_info", "shard_for_process"]
# Sequence parallelism (torch.distributed collectives) lives in .sequence_parallel, imported on demand.
