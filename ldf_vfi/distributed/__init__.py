"""Process topology helpers: which rank am I, and which of the inputs are mine."""

from .sharding import ProcessInfo, process_info, shard_for_process

__all__ = ["ProcessInfo", "process_info", "shard_for_process"]
