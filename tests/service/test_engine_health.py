"""Readiness follows engine health: a dead engine takes its variant (and aliases) out of service."""

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lethe.client import LetheClient
from lethe.service.config import VariantSpec
from lethe.service.errors import EngineDead


def variant_health(target: str, name: str) -> int:
    with grpc.insecure_channel(target) as channel:
        request = health_pb2.HealthCheckRequest(service=f"lethe.v1.Variant/{name}")
        return health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status


def test_a_dead_engine_makes_its_variant_not_serving(start_server, tiny_model):
    server = start_server(
        [VariantSpec(name="base", model=str(tiny_model)), VariantSpec(name="same", alias_of="base")],
        engine_health_interval_s=0.05,
    )
    assert variant_health(server.target, "base") == health_pb2.HealthCheckResponse.SERVING
    engine = server.server.catalog.get("base").engine

    async def dead() -> None:
        raise EngineDead("variant 'base': the engine's worker thread has stopped")

    engine.check_health = dead  # the worker's death itself is the engine's own test
    deadline = time.monotonic() + 10
    while variant_health(server.target, "base") != health_pb2.HealthCheckResponse.NOT_SERVING:
        assert time.monotonic() < deadline, "health never followed the engine"
        time.sleep(0.05)
    assert variant_health(server.target, "same") == health_pb2.HealthCheckResponse.NOT_SERVING
    with LetheClient(server.target, timeout=10) as client:
        with pytest.raises(grpc.RpcError) as refused:
            client.generate("x", variant="base", max_tokens=1)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "worker thread has stopped" in refused.value.details()
