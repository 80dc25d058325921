"""Service errors and the one mapping from error kinds to gRPC status codes.

Domain errors (`edits.errors.EditError`, `retrieval.errors.RetrievalError` and the classes below)
carry a `kind`; `status_for` turns any exception into the (code, message) pair the client sees.
Nothing else maps errors.
"""

import grpc

from lethe.edits.errors import EditError
from lethe.retrieval.errors import RetrievalError

STATUS_BY_KIND: dict[str, grpc.StatusCode] = {
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "already_exists": grpc.StatusCode.ALREADY_EXISTS,
    "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "resource_exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "deadline_exceeded": grpc.StatusCode.DEADLINE_EXCEEDED,
    "internal": grpc.StatusCode.INTERNAL,
}


class ServiceError(Exception):
    """Base class of the service's own errors; the message is shown to the client."""

    kind: str = "internal"


class InvalidRequest(ServiceError):
    """A request field is wrong; the message names the field."""

    kind = "invalid_argument"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class UnknownVariant(ServiceError):
    kind = "not_found"


class VariantExists(ServiceError):
    kind = "already_exists"


class VariantInUse(ServiceError):
    """The variant serves aliases (e.g. `pruned+rag`); they must go first."""

    kind = "failed_precondition"


class UnknownIndex(ServiceError):
    kind = "not_found"


class IndexOpenFailed(ServiceError):
    """A configured index could not be opened at start-up (missing, corrupt, other embedder)."""

    kind = "failed_precondition"


class IndexUnavailable(ServiceError):
    """The index is still opening (or being built) at start-up, or the server is stopping."""

    kind = "unavailable"


class VariantUnavailable(ServiceError):
    """The variant is loading, unloading or failed to load."""

    kind = "unavailable"


class QueueFull(ServiceError):
    kind = "resource_exhausted"


class ShuttingDown(ServiceError):
    kind = "unavailable"


class EngineUnavailable(ServiceError):
    """An engine's optional dependency is missing (e.g. vLLM not installed)."""

    kind = "failed_precondition"


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status a client gets for `error`. Unknown exceptions become INTERNAL."""
    if isinstance(error, ServiceError | EditError | RetrievalError):
        return STATUS_BY_KIND.get(error.kind, grpc.StatusCode.INTERNAL), str(error)
    kind = getattr(error, "kind", None)
    if isinstance(kind, str) and kind in STATUS_BY_KIND:
        return STATUS_BY_KIND[kind], str(error)
    return grpc.StatusCode.INTERNAL, f"internal error ({type(error).__name__}); see server log"
