"""Every error case of the contract, with its status code, over a real port."""

import threading
import time

import grpc
import pytest

from lethe.client import LetheClient
from lethe.service.config import VariantSpec


@pytest.fixture(scope="module")
def client(shared_server):
    with LetheClient(shared_server.target, timeout=60) as client:
        yield client


def code_and_message(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code(), error.value.details()


def test_unknown_variant_is_not_found(client):
    code, message = code_and_message(lambda: client.generate("x", variant="nope"))
    assert code == grpc.StatusCode.NOT_FOUND
    assert "nope" in message and "base" in message
    code, _ = code_and_message(lambda: client.get_variant("nope"))
    assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("prompt", "params", "field"),
    [
        ("", {}, "prompt"),
        ("hi", {"max_tokens": -1}, "sampling.max_tokens"),
        ("hi", {"max_tokens": 4001}, "sampling.max_tokens"),
        ("hi", {"temperature": -0.5}, "sampling.temperature"),
        ("hi", {"top_p": 0.0}, "sampling.top_p"),
        ("hi", {"top_p": 1.5}, "sampling.top_p"),
        ("hi", {"top_k": -3}, "sampling.top_k"),
        ("x" * 5000, {}, "prompt"),
    ],
)
def test_bad_parameters_are_invalid_argument_naming_the_field(client, prompt, params, field):
    for call in (
        lambda: client.generate(prompt, variant="base", **params),
        lambda: list(client.stream(prompt, variant="base", **params)),
    ):
        code, message = code_and_message(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert message.startswith(field + ":"), message


def test_max_tokens_zero_means_the_default(client):
    reply = client.generate("default length", variant="base", max_tokens=0, temperature=0)
    assert reply.completion_tokens == 8  # settings_for(default_max_tokens=8)


def test_the_server_survives_bad_requests(client):
    for _ in range(3):
        code_and_message(lambda: client.generate("", variant="base"))
    assert client.generate("still fine", variant="base", max_tokens=2).completion_tokens == 2


def test_load_errors(client, tmp_path):
    code, message = code_and_message(lambda: client.load_variant("base", model="anything"))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    code, message = code_and_message(lambda: client.load_variant("bad name!", model="x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("name:")
    code, message = code_and_message(lambda: client.load_variant("nosource"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("source:")
    code, message = code_and_message(lambda: client.load_variant("eng", model="x", engine="onnx"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("engine:")
    # A checkpoint that does not exist is NOT_FOUND, and the name stays free.
    nowhere = tmp_path / "nothing-here"
    code, message = code_and_message(lambda: client.load_variant("missing", checkpoint=nowhere))
    assert code == grpc.StatusCode.NOT_FOUND and "nothing-here" in message
    # One that exists but cannot be loaded says what is wrong with it, without its resolved path.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    code, message = code_and_message(lambda: client.load_variant("missing", checkpoint=broken))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "cannot be loaded" in message
    assert str(broken.resolve()) not in message
    assert "missing" not in {v.name for v in client.list_variants()}


def test_variant_still_loading_is_unavailable(start_server, tiny_model, monkeypatch):
    from lethe.service import variants

    gate = threading.Event()
    real = variants.resolve_source

    def slow_resolve(spec):
        gate.wait(30)
        return real(spec)

    monkeypatch.setattr(variants, "resolve_source", slow_resolve)
    server = start_server([])
    with LetheClient(server.target, timeout=30) as client:
        details = client.load_variant("slow", model=str(tiny_model), wait=False)
        assert details.status == 1  # VARIANT_STATUS_LOADING
        code, message = code_and_message(lambda: client.generate("x", variant="slow"))
        assert code == grpc.StatusCode.UNAVAILABLE and "loading" in message
        gate.set()
        for _ in range(200):
            if client.get_variant("slow").status == 2:
                break
            time.sleep(0.05)
        assert client.generate("x", variant="slow", max_tokens=2).completion_tokens == 2


def test_queue_full_is_resource_exhausted_and_cancel_frees_the_slot(start_server, tiny_model):
    spec = VariantSpec(name="one", model=str(tiny_model), options={"max_batch_size": 1, "max_queue": 0})
    server = start_server([spec])
    with LetheClient(server.target, timeout=60) as client:
        stream = client.stream("long", max_tokens=3000, temperature=0)
        next(stream)  # running: the only row is taken, and the queue holds 0
        code, message = code_and_message(lambda: client.generate("refused", max_tokens=2))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_queue" in message
        stream.cancel()
        for _ in range(100):  # the cancelled row is freed at the engine's next step
            try:
                reply = client.generate("accepted", max_tokens=2)
                break
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                time.sleep(0.05)
        assert reply.completion_tokens == 2
        engine = server.server.catalog.get("one").engine
        assert engine.stats().running == 0


def test_deadline_stops_generation_and_frees_the_slot(start_server, tiny_model):
    spec = VariantSpec(name="one", model=str(tiny_model), options={"max_batch_size": 1, "max_queue": 0})
    server = start_server([spec])
    with LetheClient(server.target, timeout=0.5) as client:
        code, _ = code_and_message(lambda: client.generate("long", max_tokens=3000, temperature=0))
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        client.timeout = 30
        assert client.generate("next", max_tokens=2).completion_tokens == 2
    metrics = server.server.metrics.registry
    assert (
        metrics.get_sample_value(
            "lethe_requests_total", {"variant": "one", "method": "Generate", "code": "DEADLINE_EXCEEDED"}
        )
        == 1
    )


def test_shutdown_refuses_new_requests_and_finishes_in_flight(start_server, tiny_model):
    import asyncio
    import concurrent.futures

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server = start_server([VariantSpec(name="one", model=str(tiny_model))])
    with (
        LetheClient(server.target, timeout=60) as client,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        stream = client.stream("in flight", max_tokens=600, temperature=0)
        next(stream)
        rest = pool.submit(lambda: list(stream))
        stop_future = asyncio.run_coroutine_threadsafe(server.server.stop(30), server.loop)
        time.sleep(0.2)
        with grpc.insecure_channel(server.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = health.Check(health_pb2.HealthCheckRequest(service="")).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        code, message = code_and_message(lambda: client.generate("new", max_tokens=2))
        assert code == grpc.StatusCode.UNAVAILABLE and "shutting down" in message
        messages = rest.result(60)
        stop_future.result(60)
    assert messages[-1].finish_reason == "length"
    assert messages[-1].usage.completion_tokens == 600


def test_an_engine_failure_is_internal_and_the_server_keeps_serving(start_server, tiny_model):
    server = start_server([VariantSpec(name="one", model=str(tiny_model))])
    engine = server.server.catalog.get("one").engine
    real, calls = engine._forward, []

    def fail_once(*args):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("secret detail")
        return real(*args)

    engine._forward = fail_once
    with LetheClient(server.target, timeout=30) as client:
        code, message = code_and_message(lambda: client.generate("x", max_tokens=2))
        assert code == grpc.StatusCode.INTERNAL
        assert "RuntimeError" in message and "secret detail" not in message
        assert client.generate("y", max_tokens=2).completion_tokens == 2
