"""Server interceptors: bearer-token auth per service, and the mapping of errors to statuses."""

import hmac
import logging
from collections.abc import Callable

import grpc

from lethe.service.status import status_for

log = logging.getLogger(__name__)


def _replace_behaviour(handler: grpc.RpcMethodHandler, wrap: Callable) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour wrapped; `streaming` tells `wrap` whether the behaviour
    yields responses. Every kind is wrapped: a kind left out would skip auth and error mapping."""
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
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    raise TypeError(f"unknown kind of RPC handler: {handler!r}")


def _map_errors(behaviour: Callable, *, streaming: bool) -> Callable:
    async def abort_with(error: Exception, context: grpc.aio.ServicerContext):
        code, message = status_for(error)
        if code == grpc.StatusCode.INTERNAL:
            log.exception("internal error in %s", behaviour.__qualname__, exc_info=error)
        await context.abort(code, message)

    if streaming:

        async def stream(request, context):
            try:
                async for item in behaviour(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await abort_with(error, context)

        return stream

    async def unary(request, context):
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await abort_with(error, context)

    return unary


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns any exception a servicer raises into its gRPC status (see `status.status_for`)."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _replace_behaviour(handler, _map_errors)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Requires `authorization: Bearer <token>` on the services that have a token configured.

    `tokens` maps a fully qualified service name (e.g. "lethe.v1.Admin") to its token; services
    without one (health, reflection, or a service left open) pass through.
    """

    def __init__(self, tokens: dict[str, str]) -> None:
        self._tokens = {service: token.encode() for service, token in tokens.items() if token}

    async def intercept_service(self, continuation, handler_call_details):
        service = handler_call_details.method.rsplit("/", 2)[-2]
        expected = self._tokens.get(service)
        handler = await continuation(handler_call_details)
        if expected is None or handler is None:
            return handler
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

        def deny(behaviour: Callable, *, streaming: bool) -> Callable:
            if streaming:

                async def deny_stream(request, context):
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
                    yield  # pragma: no cover - makes this an async generator

                return deny_stream

            async def deny_unary(request, context):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

            return deny_unary

        return _replace_behaviour(handler, deny)
