"""Errors a caller can fix. Each carries a `kind`; the service maps kinds to gRPC codes."""

from typing import Literal

ErrorKind = Literal["invalid_argument", "not_found", "already_exists", "failed_precondition", "unavailable"]


class RetrievalError(Exception):
    """Base class: the message says what is wrong and what to do about it."""

    kind: ErrorKind = "invalid_argument"


class InvalidArgument(RetrievalError):
    kind: ErrorKind = "invalid_argument"


class NotFound(RetrievalError):
    kind: ErrorKind = "not_found"


class AlreadyExists(RetrievalError):
    kind: ErrorKind = "already_exists"


class EmbedderMismatch(RetrievalError):
    """The index was built with another embedder; its vectors are not comparable."""

    kind: ErrorKind = "failed_precondition"


class IndexCorrupt(RetrievalError):
    """The index directory exists but its files are unreadable or inconsistent."""

    kind: ErrorKind = "failed_precondition"
