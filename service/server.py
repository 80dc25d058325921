"""The gRPC server: Inference, Admin, Retrieval, RetrievalAdmin, health (overall and per
variant), reflection, metrics.

`LetheServer` is started and stopped from async code (tests, benchmarks); `serve` runs it until
SIGTERM/SIGINT, then drains: health goes NOT_SERVING, new requests get UNAVAILABLE, and requests
in flight get `grace_seconds` to finish.
"""

import asyncio
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lethe.service.catalog import Catalog, Lifecycle
from lethe.service.config import IndexSpec, ServeSettings, VariantSpec
from lethe.service.dataplane import DataPlane
from lethe.service.errors import EngineDead, InvalidRequest
from lethe.service.gen.lethe.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from lethe.service.indexes import IndexRegistry
from lethe.service.interceptors import AuthInterceptor, ErrorInterceptor
from lethe.service.metrics import Metrics, start_metrics_server
from lethe.service.servicers.admin import AdminServicer
from lethe.service.servicers.inference import InferenceServicer
from lethe.service.servicers.retrieval import RetrievalAdminServicer, RetrievalServicer
from lethe.service.store import Store, default_database_url
from lethe.service.variants import VariantManager

log = logging.getLogger(__name__)

INFERENCE = inference_pb2.DESCRIPTOR.services_by_name["Inference"].full_name
ADMIN = admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name
RETRIEVAL = retrieval_pb2.DESCRIPTOR.services_by_name["Retrieval"].full_name
RETRIEVAL_ADMIN = retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalAdmin"].full_name
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def variant_health_name(variant: str) -> str:
    """The health-check service name that reports one variant."""
    return f"lethe.v1.Variant/{variant}"


class LetheServer:
    def __init__(
        self,
        settings: ServeSettings,
        variants: list[VariantSpec],
        indexes: list[IndexSpec] | None = None,
    ) -> None:
        self.settings = settings
        self.initial_variants = variants
        self.metrics = Metrics()
        self.indexes = IndexRegistry(settings.indexes if indexes is None else indexes, self.metrics)
        self.catalog = Catalog(settings.default_variant)
        self.variants = VariantManager(settings, self.catalog, self.indexes)
        self.plane = DataPlane(self.catalog, settings, self.metrics, self.indexes)
        self.health = health.aio.HealthServicer()
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._metrics_server = None
        self._server: grpc.aio.Server | None = None
        self._health_tasks: set[asyncio.Future] = set()
        self._watchdog: asyncio.Task | None = None
        # Edit jobs, experiments and exposures (opened, and migrated, at start).
        self.store: Store | None = None
        self.catalog.add_listener(self._on_variant_status)
        self.metrics.watch_engines(self._engine_stats)

    async def start(self) -> int:
        """Bind, start serving, open the indexes, then begin loading the initial variants;
        returns the gRPC port. A misconfigured index or variant stops the server and raises."""
        settings = self.settings
        if settings.torch_threads is not None:
            import torch

            torch.set_num_threads(settings.torch_threads)
        inference_token = settings.auth.inference.value() or ""
        admin_token = settings.auth.admin.value() or ""
        tokens = {
            INFERENCE: inference_token,
            RETRIEVAL: inference_token,
            ADMIN: admin_token,
            RETRIEVAL_ADMIN: admin_token,
        }
        server = grpc.aio.server(
            interceptors=[AuthInterceptor(tokens, frozenset({ADMIN, RETRIEVAL_ADMIN})), ErrorInterceptor()],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.max_ping_strikes", 0),
            ],
        )
        inference = InferenceServicer(self.plane, self.catalog)
        inference_pb2_grpc.add_InferenceServicer_to_server(inference, server)
        admin_pb2_grpc.add_AdminServicer_to_server(AdminServicer(self.variants, self.catalog), server)
        retrieval_pb2_grpc.add_RetrievalServicer_to_server(RetrievalServicer(self.indexes), server)
        retrieval_pb2_grpc.add_RetrievalAdminServicer_to_server(
            RetrievalAdminServicer(self.indexes, settings.max_documents_per_add, settings.document_limits),
            server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (
                INFERENCE,
                ADMIN,
                RETRIEVAL,
                RETRIEVAL_ADMIN,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        address = f"{settings.host}:{settings.port}"
        if settings.tls.enabled:
            port = server.add_secure_port(address, _server_credentials(settings))
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise InvalidRequest("port", f"cannot bind {address}")
        self._server, self.port = server, port
        await self._set_overall(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._set_retrieval(health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.start()
        if settings.metrics_port is not None:
            self._metrics_server, self.metrics_port = start_metrics_server(
                self.metrics, settings.metrics_bind_host, settings.metrics_port
            )
        try:
            self.store = await asyncio.to_thread(open_store, settings)
            # Indexes first: importing transformers from two threads at once (the embedder here,
            # a model loading in the background) can fail inside its lazy module.
            await self.indexes.open_all()
            for spec in self.initial_variants:
                await self.variants.load(spec, wait=False)
        except BaseException:
            await self.stop(0)
            raise
        await self._set_retrieval(health_pb2.HealthCheckResponse.SERVING)
        self._watchdog = asyncio.create_task(self._watch_engine_health(), name="engine-health")
        log.info("serving on %s (metrics port %s)", address.rsplit(":", 1)[0] + f":{port}", self.metrics_port)
        return port

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Until every initial variant has finished loading (ready or failed)."""

        async def settled():
            for variant in self.catalog.list():
                await variant.settled.wait()

        await asyncio.wait_for(settled(), timeout)

    async def stop(self, grace: float | None = None) -> None:
        """Drain: refuse new requests, let in-flight ones finish within `grace`, free engines."""
        if self._server is None:
            return
        grace = self.settings.grace_seconds if grace is None else grace
        self.catalog.closing = True
        self.indexes.closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        await self.health.enter_graceful_shutdown()
        await self._wait_in_flight(grace)
        await self._server.stop(grace=0.5)
        await self.variants.close()
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        self._server = None

    async def wait_for_termination(self) -> None:
        assert self._server is not None
        await self._server.wait_for_termination()

    async def _wait_in_flight(self, grace: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and self.plane.in_flight > 0:
            await asyncio.sleep(0.05)

    def _engine_stats(self):
        return [(v.name, v.engine.stats()) for v in self.catalog.list() if v.serving and not v.alias_of]

    async def _watch_engine_health(self) -> None:
        """Readiness follows engine health: a variant whose engine died is FAILED (health
        NOT_SERVING, requests UNAVAILABLE) until it is reloaded."""
        while True:
            await asyncio.sleep(self.settings.engine_health_interval_s)
            for variant in self.catalog.list():
                if not variant.serving or variant.alias_of:
                    continue
                assert variant.engine is not None
                try:
                    await variant.engine.check_health()
                except EngineDead as error:
                    log.error("variant %s: %s", variant.name, error)
                    aliases = [self.catalog.get(name) for name in self.catalog.aliases_of(variant.name)]
                    for served in (variant, *aliases):
                        served.error = str(error)
                        self.catalog.set_lifecycle(served, Lifecycle.FAILED)

    def _on_variant_status(self, name: str, lifecycle: Lifecycle | None) -> None:
        self.metrics.set_variant_status({v.name: v.lifecycle.value for v in self.catalog.list()})
        if lifecycle is None:
            serving = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        elif lifecycle is Lifecycle.READY:
            serving = health_pb2.HealthCheckResponse.SERVING
        else:
            serving = health_pb2.HealthCheckResponse.NOT_SERVING
        task = asyncio.ensure_future(self._update_health(name, serving))
        self._health_tasks.add(task)
        task.add_done_callback(self._health_tasks.discard)

    async def _update_health(self, name: str, serving) -> None:
        await self.health.set(variant_health_name(name), serving)
        ready = any(v.lifecycle is Lifecycle.READY for v in self.catalog.list())
        overall = (
            health_pb2.HealthCheckResponse.SERVING
            if ready and not self.catalog.closing
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._set_overall(overall)

    async def _set_overall(self, status) -> None:
        for name in ("", INFERENCE):
            await self.health.set(name, status)
        await self.health.set(ADMIN, health_pb2.HealthCheckResponse.SERVING)

    async def _set_retrieval(self, status) -> None:
        for name in (RETRIEVAL, RETRIEVAL_ADMIN):
            await self.health.set(name, status)


def open_store(settings: ServeSettings) -> Store:
    """The store at `database_url`, or the SQLite file under LETHE_HOME; migrated to head."""
    from lethe.edits.home import lethe_home

    return Store.open(settings.database_url or default_database_url(lethe_home()))


def _server_credentials(settings: ServeSettings) -> grpc.ServerCredentials:
    key, cert, ca = settings.tls.read()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


async def serve(
    settings: ServeSettings, variants: list[VariantSpec], indexes: list[IndexSpec] | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    server = LetheServer(settings, variants, indexes)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received: draining for up to %.1f s", settings.grace_seconds)
    await server.stop()
