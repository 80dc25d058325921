"""Retrieval's errors: the shared hierarchy (`lethe.edits.errors`) plus two of its own."""

from lethe.edits.errors import AlreadyExists, FailedPrecondition, InvalidArgument, LetheError, NotFound

__all__ = [
    "AlreadyExists",
    "EmbedderMismatch",
    "IndexCorrupt",
    "InvalidArgument",
    "LetheError",
    "NotFound",
]


class EmbedderMismatch(FailedPrecondition):
    """The index was built with another embedder; its vectors are not comparable."""


class IndexCorrupt(FailedPrecondition):
    """The index directory exists but its files are unreadable or inconsistent."""
