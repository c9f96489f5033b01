"""Exceptions with one-line messages that the command-line tools print as ``error: <message>``."""


class LDFVFIError(Exception):
    """Base class of every error this package raises on purpose (bad input, missing weights, ...)."""


class InputError(LDFVFIError, ValueError):
    """The user's input (a path, a video, a flag value) cannot be used; the message says why."""


class BackendUnavailableError(LDFVFIError, RuntimeError):
    """The requested interpolation backend cannot run here (not built yet, or its weights are missing)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when empty), for one-line error reports.

    System and FFmpeg errors give their words without the raw code: ``Permission denied: 'out'`` rather than
    ``[Errno 13] Permission denied: 'out'``, ``Invalid data found when processing input`` rather than
    ``[Errno 1094995529] Invalid data found ...: 'avcodec_send_packet()'`` (PyAV's "filename" there names the
    failing FFmpeg call, which tells a user nothing)."""
    reason = getattr(exc, "strerror", None)
    if isinstance(reason, str) and reason.strip():
        filename = getattr(exc, "filename", None)
        if filename is None or type(exc).__module__.startswith("av."):
            return reason.strip()
        return f"{reason.strip()}: '{filename}'"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
