"""Errors a user can act on.

Every error raised for bad input derives from :class:`ScanServerError`; the command
line prints its message on one line (``error: ...``) and exits with status 2, never a
traceback. Messages name the offending quantity and, where possible, how to fix it.
"""


class ScanServerError(Exception):
    """Base class of all errors caused by input the user can correct."""


class GeometryError(ScanServerError):
    """An impossible sampling or scan geometry (e.g. probe window larger than the object)."""


class RecordingError(ScanServerError):
    """A recording file that is missing, malformed or inconsistent."""


class ParameterError(ScanServerError):
    """A physical or numerical parameter outside its valid range (e.g. a negative dose)."""
