"""The gRPC service over a real port on 127.0.0.1: generation, variants, health, reflection."""

import grpc
import pytest

from lethe.client import LetheClient
from lethe.service.gen.lethe.v1 import inference_pb2, inference_pb2_grpc


@pytest.fixture(scope="module")
def client(shared_server):
    with LetheClient(shared_server.target, timeout=60) as client:
        yield client


def test_unary_and_streaming_agree(client):
    unary = client.generate("Hello there", variant="base", max_tokens=12, temperature=0)
    assert unary.variant == "base"
    assert unary.finish_reason == "length"
    assert (unary.prompt_tokens, unary.completion_tokens) == (11, 12)
    assert unary.request_id
    messages = list(client.stream("Hello there", variant="base", max_tokens=12, temperature=0))
    assert len(messages) >= 2, "the stream should deliver several deltas"
    assert "".join(m.text for m in messages) == unary.text
    assert all(m.variant == "base" for m in messages)
    assert all(not m.finish_reason for m in messages[:-1])
    last = messages[-1]
    assert last.finish_reason == "length"
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (11, 12)


def test_request_id_is_echoed(client):
    reply = client.generate("ids", max_tokens=2, request_id="abc-123")
    assert reply.request_id == "abc-123"


def test_empty_variant_means_default(client):
    reply = client.generate("default", max_tokens=3, temperature=0)
    assert reply.variant == "base"


def test_two_variants_answer_differently(client):
    prompt = "The pruned model forgets"
    base = client.generate(prompt, variant="base", max_tokens=16, temperature=0)
    pruned = client.generate(prompt, variant="pruned", max_tokens=16, temperature=0)
    again = client.generate(prompt, variant="pruned", max_tokens=16, temperature=0)
    assert pruned.variant == "pruned"
    assert base.text != pruned.text
    assert pruned.text == again.text


def test_pruned_variant_shares_the_parent_tensors(shared_server, client):
    details = client.get_variant("pruned")
    base = client.get_variant("base")
    assert details.parent == "base"
    assert details.edited_tensors == ["model.layers.1.mlp.down_proj.weight"]
    assert '"lethe-edit/1"' in details.edit_manifest_json
    assert details.memory.parameter_bytes == base.memory.parameter_bytes
    edited = 64 * 128 * 4  # one float32 down_proj of the tiny model
    assert details.memory.own_bytes == edited
    assert details.memory.shared_bytes == base.memory.parameter_bytes - edited


def test_list_variants(client):
    variants = {v.name: v for v in client.list_variants()}
    assert set(variants) == {"base", "pruned"}
    assert variants["base"].status == "ready" and variants["base"].is_default
    assert variants["pruned"].parent == "base"
    assert variants["pruned"].engine == "transformers"


def test_concurrent_streams_are_all_served(shared_server, client):
    import concurrent.futures

    def run(i):
        return client.generate(f"stream {i}", variant="pruned", max_tokens=20, temperature=0).text

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        texts = list(pool.map(run, range(6)))
    sequential = [run(i) for i in range(6)]
    assert texts == sequential


def test_health_overall_and_per_variant(shared_server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(shared_server.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        assert stub.Check(health_pb2.HealthCheckRequest(service="")).status == serving
        assert stub.Check(health_pb2.HealthCheckRequest(service="lethe.v1.Inference")).status == (serving)
        for name in ("base", "pruned"):
            request = health_pb2.HealthCheckRequest(service=f"lethe.v1.Variant/{name}")
            assert stub.Check(request).status == serving
        with pytest.raises(grpc.RpcError) as missing:
            stub.Check(health_pb2.HealthCheckRequest(service="lethe.v1.Variant/nope"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_services(shared_server):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(shared_server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="lethe.v1.Inference"),
        ]
        listed, described = list(stub.ServerReflectionInfo(iter(requests)))
    names = {s.name for s in listed.list_services_response.service}
    assert {"lethe.v1.Inference", "lethe.v1.Admin", "grpc.health.v1.Health"} <= names
    assert described.file_descriptor_response.file_descriptor_proto


def test_variant_is_returned_in_trailers(shared_server):
    with grpc.insecure_channel(shared_server.target) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        _, call = stub.Generate.with_call(inference_pb2.GenerateRequest(variant="pruned", prompt="trailer"))
    assert ("lethe-variant", "pruned") in tuple(call.trailing_metadata())
