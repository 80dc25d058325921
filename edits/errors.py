"""The one error hierarchy of Lethe: errors a caller can fix, each with a `kind`.

`edits`, `retrieval` and `service` all raise subclasses of `LetheError`; the gRPC adapter maps
kinds to status codes in one table (`lethe.service.status`), the CLI prints the message without a
traceback. This module imports nothing, so every layer may use it.
"""

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pydantic import ValidationError

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


SHOWN_CHARS = 200
"""At most this many characters of a client's value are repeated in an error message: gRPC refuses
trailers over 16 KiB, so a message echoing a long value whole would reach the client as
RESOURCE_EXHAUSTED instead of its real status."""


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` cut to `limit` characters for a message (the cut says how long it was)."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`repr(value)` for a message, cut to about `limit` characters; NULs and lone surrogates come
    out escaped, so the message can always be encoded into a reply."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def problems(error: "ValidationError") -> list[tuple[str, str]]:
    """(dotted location, message) of each problem pydantic found, without its "Value error, ".
    The location holds the client's keys, which may be huge: it is cut to `SHOWN_CHARS`; messages
    (which echo values through `shown` already) only past 2,000 characters."""
    return [
        (
            shorten(".".join(str(part) for part in item["loc"])),
            shorten(item["msg"].removeprefix("Value error, "), 2_000),
        )
        for item in error.errors()
    ]


def explain(error: "ValidationError", *, top: str = "(top level)") -> str:
    """Every problem as `location: message`, joined by "; " (`top` names a problem of the whole)."""
    return "; ".join(f"{where or top}: {message}" for where, message in problems(error))


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
