"""Exceptions with one-line messages that the command-line tools print as ``error: <message>``."""


class LDFVFIError(Exception):
    """Base class of every error this package raises on purpose (bad input, missing weights, ...)."""


class InputError(LDFVFIError, ValueError):
    """The user's input (a path, a video, a flag value) cannot be used; the message says why."""


class BackendUnavailableError(LDFVFIError, RuntimeError):
    """The requested interpolation backend cannot run here (not built yet, or its weights are missing)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when empty), for one-line error reports."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
