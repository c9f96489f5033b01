"""Worker processes that start clean.

Linux's default ``fork`` copies the parent with every object and lock it holds, but none of its threads. A
DataLoader worker forked from our test process hung forever (CI stopped at 81 % of the suite): its garbage
collector freed a PyAV frame decoded in the parent, whose scaler's slice-thread pool waited on a condition
variable that the parent's (now absent) pool threads were using (gdb: ``pthread_cond_destroy`` under
``avpriv_slicethread_free`` / ``sws_freeContext``). OpenMP and OpenCV pools have the same hazard. Workers are
therefore started from a ``forkserver``: a fresh interpreter that imports torch and our data modules and runs
nothing else, so forking from it is safe and still cheap.
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
