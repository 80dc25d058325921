"""The service's own errors, in the one hierarchy (`lethe.edits.errors.LetheError`).

No gRPC here: the adapters map each error's `kind` to a status in one table (`lethe.service.status`).
"""

from lethe.edits.errors import ErrorKind, LetheError


class ServiceError(LetheError):
    """Base class of the service's own errors; the message is shown to the client."""

    kind: ErrorKind = "internal"


class InvalidRequest(ServiceError):
    """A request field is wrong; the message names the field."""

    kind: ErrorKind = "invalid_argument"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class UnknownVariant(ServiceError):
    kind: ErrorKind = "not_found"


class VariantExists(ServiceError):
    kind: ErrorKind = "already_exists"


class VariantInUse(ServiceError):
    """The variant serves aliases (e.g. `pruned+rag`); they must go first."""

    kind: ErrorKind = "failed_precondition"


class UnknownIndex(ServiceError):
    kind: ErrorKind = "not_found"


class IndexOpenFailed(ServiceError):
    """A configured index could not be opened at start-up (missing, corrupt, other embedder)."""

    kind: ErrorKind = "failed_precondition"


class IndexUnavailable(ServiceError):
    """The index is still opening (or being built) at start-up, or the server is stopping."""

    kind: ErrorKind = "unavailable"


class VariantUnavailable(ServiceError):
    """The variant is loading, unloading or failed to load."""

    kind: ErrorKind = "unavailable"


class QueueFull(ServiceError):
    kind: ErrorKind = "resource_exhausted"


class ShuttingDown(ServiceError):
    kind: ErrorKind = "unavailable"


class EngineUnavailable(ServiceError):
    """An engine's optional dependency is missing (e.g. vLLM not installed)."""

    kind: ErrorKind = "failed_precondition"


class EngineDead(ServiceError):
    """An engine stopped working (its worker or engine process died); the variant must be reloaded."""

    kind: ErrorKind = "unavailable"


class VariantLoadFailed(ServiceError):
    """A checkpoint exists but cannot be loaded (broken config, missing or mismatched tensors)."""

    kind: ErrorKind = "failed_precondition"
