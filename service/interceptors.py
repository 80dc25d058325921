"""Server interceptors: bearer-token auth per service, and the mapping of errors to statuses."""

import hmac
import logging
from collections.abc import Callable

import grpc

from lethe.service.errors import InvalidRequest
from lethe.service.status import status_for

log = logging.getLogger(__name__)


def _replace_behaviour(
    handler: grpc.RpcMethodHandler, wrap: Callable, *, deserializer: Callable | None = None
) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour wrapped (and its request deserializer, when given);
    `streaming` tells `wrap` whether the behaviour yields responses. Every kind is wrapped: a kind
    left out would skip auth and error mapping."""
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
        ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
        ("stream_unary", grpc.stream_unary_rpc_method_handler, False),
        ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
    )
    for attribute, make, streaming in kinds:
        behaviour = getattr(handler, attribute)
        if behaviour is not None:
            return make(
                wrap(behaviour, streaming=streaming),
                request_deserializer=deserializer or handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    raise TypeError(f"unknown kind of RPC handler: {handler!r}")


class _Undecodable:
    """Stands in for a request whose bytes are not a valid message (a corrupt wire format, a
    string field that is not UTF-8). gRPC answers a deserializer that raises with UNKNOWN; this
    lets the behaviour refuse it with INVALID_ARGUMENT instead."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def refuse(self) -> InvalidRequest:
        return InvalidRequest("request", f"cannot be decoded: {self.error}")


def _tolerant(deserializer: Callable | None) -> Callable | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes):
        try:
            return deserializer(data)
        except Exception as error:  # protobuf's DecodeError
            return _Undecodable(error)

    return deserialize


def _decoded(request):
    """`request` once decoded; a stream of them (an async iterator) checked message by message."""
    if isinstance(request, _Undecodable):
        raise request.refuse()
    if not hasattr(request, "__aiter__"):
        return request

    async def messages():
        async for message in request:
            if isinstance(message, _Undecodable):
                raise message.refuse()
            yield message

    return messages()


def _map_errors(behaviour: Callable, *, streaming: bool) -> Callable:
    async def abort_with(error: Exception, context: grpc.aio.ServicerContext):
        code, message = status_for(error)
        if code == grpc.StatusCode.INTERNAL:
            log.exception("internal error in %s", behaviour.__qualname__, exc_info=error)
        await context.abort(code, message)

    if streaming:

        async def stream(request, context):
            try:
                async for item in behaviour(_decoded(request), context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await abort_with(error, context)

        return stream

    async def unary(request, context):
        try:
            return await behaviour(_decoded(request), context)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await abort_with(error, context)

    return unary


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns any exception a servicer raises into its gRPC status (see `status.status_for`), and
    request bytes that do not decode into INVALID_ARGUMENT."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _replace_behaviour(handler, _map_errors, deserializer=_tolerant(handler.request_deserializer))


def _refuse(code: grpc.StatusCode, message: str) -> Callable:
    """A behaviour wrapper that answers every call with `code`."""

    def wrap(behaviour: Callable, *, streaming: bool) -> Callable:
        if streaming:

            async def refuse_stream(request, context):
                await context.abort(code, message)
                yield  # pragma: no cover - makes this an async generator

            return refuse_stream

        async def refuse_unary(request, context):
            await context.abort(code, message)

        return refuse_unary

    return wrap


def is_loopback_peer(peer: str) -> bool:
    """Whether a gRPC peer string (`ipv4:127.0.0.1:5555`, `ipv6:[::1]:5555`, `unix:...`) is local."""
    if peer.startswith("unix:"):
        return True
    if peer.startswith("ipv4:"):
        return peer.removeprefix("ipv4:").startswith("127.")
    if peer.startswith("ipv6:"):
        host = peer.removeprefix("ipv6:").rsplit(":", 1)[0].strip("[]")
        return host == "::1" or host.startswith("::ffff:127.")
    return False


def _local_only(service: str) -> Callable:
    message = (
        f"{service} has no token configured, so it answers only clients on this machine; "
        "configure `auth.admin` to call it from elsewhere"
    )

    def wrap(behaviour: Callable, *, streaming: bool) -> Callable:
        if streaming:

            async def stream(request, context):
                if not is_loopback_peer(context.peer()):
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)
                async for item in behaviour(request, context):
                    yield item

            return stream

        async def unary(request, context):
            if not is_loopback_peer(context.peer()):
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)
            return await behaviour(request, context)

        return unary

    return wrap


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Requires `authorization: Bearer <token>` on the services that have a token configured.

    `tokens` maps a fully qualified service name (e.g. "lethe.v1.Admin") to its token; services
    without one pass through (health, reflection, an inference service left open), except those
    in `local_without_token` (the admin services), which then answer loopback clients only.
    """

    def __init__(self, tokens: dict[str, str], local_without_token: frozenset[str] = frozenset()) -> None:
        self._tokens = {service: token.encode() for service, token in tokens.items() if token}
        self._local = {service for service in local_without_token if service not in self._tokens}

    async def intercept_service(self, continuation, handler_call_details):
        service = handler_call_details.method.rsplit("/", 2)[-2]
        expected = self._tokens.get(service)
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if expected is None:
            return _replace_behaviour(handler, _local_only(service)) if service in self._local else handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        given = metadata.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected):
            return handler
        message = (
            f"{service} needs `authorization: Bearer <token>` metadata"
            if not given
            else f"the bearer token is not valid for {service}"
        )
        return _replace_behaviour(handler, _refuse(grpc.StatusCode.UNAUTHENTICATED, message))
