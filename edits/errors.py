"""Errors a caller can fix. Each carries a `kind`; the service maps kinds to gRPC codes."""

from typing import Literal

ErrorKind = Literal[
    "invalid_argument", "not_found", "already_exists", "failed_precondition", "unavailable"
]


class EditError(Exception):
    """Base class: the message says what is wrong and what to do about it."""

    kind: ErrorKind = "invalid_argument"


class InvalidArgument(EditError):
    kind: ErrorKind = "invalid_argument"


class NotFound(EditError):
    kind: ErrorKind = "not_found"


class AlreadyExists(EditError):
    kind: ErrorKind = "already_exists"


class UnsupportedArchitecture(InvalidArgument):
    """The model's architecture has no MLP mapping in `edits.architectures`."""
