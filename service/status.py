"""The one table from error kinds to gRPC status codes; nothing else maps errors."""

import grpc

from lethe.edits.errors import LetheError

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


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status a client gets for `error`. Unknown exceptions become INTERNAL."""
    if isinstance(error, LetheError):
        return STATUS_BY_KIND.get(error.kind, grpc.StatusCode.INTERNAL), str(error)
    if isinstance(error, NotImplementedError):
        # What a generated servicer's method raises when nothing implements it (grpc's asyncio
        # health servicer has no `List`): gRPC's own answer for such a method is UNIMPLEMENTED.
        return grpc.StatusCode.UNIMPLEMENTED, "this server does not implement the method"
    return grpc.StatusCode.INTERNAL, f"internal error ({type(error).__name__}); see server log"
