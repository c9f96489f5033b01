"""Worker processes that start clean.

Linux's default ``fork`` copies the parent with every lock held by its other threads at that moment (OpenMP
and OpenCV thread pools, FFmpeg's slice threads, glibc's atexit lock) and none of the threads that would
release them; a child that touches one of those locks waits forever. That happened to a DataLoader worker
after a long run of decoding and flow estimation in the parent (CI hung at 81 % of the suite). Workers are
therefore started from a ``forkserver``: a fresh interpreter that has imported torch and nothing has run in,
so forking from it is safe and cheap.
"""

from __future__ import annotations

import multiprocessing
import sys
from multiprocessing.context import BaseContext

# Modules the fork server imports once, so each worker forked from it starts without importing torch again.
_PRELOAD = ["torch", "ldf_vfi.data.clips", "ldf_vfi.data.lavib"]


def clean_context() -> BaseContext:
    """A multiprocessing context whose children share no locks or threads with this process: ``forkserver``
    where the platform has it (Linux, macOS), otherwise ``spawn`` (Windows)."""
    if sys.platform != "win32" and "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")
