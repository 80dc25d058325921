"""The one error hierarchy of Lethe: errors a caller can fix, each with a `kind`.

`edits`, `retrieval` and `service` all raise subclasses of `LetheError`; the gRPC adapter maps
kinds to status codes in one table (`lethe.service.status`), the CLI prints the message without a
traceback. This module imports nothing, so every layer may use it.
"""

from typing import Literal

ErrorKind = Literal[
    "invalid_argument",
    "not_found",
    "already_exists",
    "failed_precondition",
    "unavailable",
    "resource_exhausted",
    "unauthenticated",
    "deadline_exceeded",
    "internal",
]


class LetheError(Exception):
    """Base class: the message says what is wrong and what to do about it."""

    kind: ErrorKind = "invalid_argument"


class InvalidArgument(LetheError):
    kind: ErrorKind = "invalid_argument"


class NotFound(LetheError):
    kind: ErrorKind = "not_found"


class AlreadyExists(LetheError):
    kind: ErrorKind = "already_exists"


class FailedPrecondition(LetheError):
    kind: ErrorKind = "failed_precondition"


class Unavailable(LetheError):
    kind: ErrorKind = "unavailable"


class UnsupportedArchitecture(InvalidArgument):
    """The model's architecture has no MLP mapping in `edits.architectures`."""
