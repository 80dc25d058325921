"""Run-time load/unload, bearer-token auth per service, TLS, and Prometheus metrics."""

import shutil
import subprocess
import urllib.request

import grpc
import pytest

from lethe.client import LetheClient
from lethe.service.config import AuthSettings, TlsSettings, TokenSettings, VariantSpec
from tests.service.tiny import build_edited_variant


def test_load_and_unload_at_run_time(start_server, tiny_model, tmp_path):
    server = start_server([VariantSpec(name="base", model=str(tiny_model))])
    other = build_edited_variant(tiny_model, tmp_path / "other", seed=5)
    with LetheClient(server.target, timeout=60) as client:
        details = client.load_variant("other", checkpoint=other)
        assert details.status == 2 and details.parent == "base"
        assert details.memory.own_bytes == 64 * 128 * 4
        assert {v.name for v in client.list_variants()} == {"base", "other"}
        prompt = "run time"
        loaded = client.generate(prompt, variant="other", max_tokens=8, temperature=0).text
        assert loaded != client.generate(prompt, variant="base", max_tokens=8, temperature=0).text
        client.unload_variant("other")
        assert {v.name for v in client.list_variants()} == {"base"}
        with pytest.raises(grpc.RpcError) as gone:
            client.generate(prompt, variant="other")
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        # The parent stays served; unloading it too leaves nothing and frees the shared weights.
        assert client.generate(prompt, variant="base", max_tokens=2).completion_tokens == 2
        client.unload_variant("base")
        assert client.list_variants() == []
        assert server.server.variants.weights.loaded() == []


def test_a_checkpoint_whose_untouched_tensors_differ_is_loaded_in_full(start_server, tiny_model, tmp_path):
    import json

    other = build_edited_variant(tiny_model, tmp_path / "lying", seed=3)
    manifest = json.loads((other / "lethe_edit.json").read_text())
    manifest["edited_tensors"] = ["model.layers.0.mlp.up_proj.weight"]  # not the one changed
    (other / "lethe_edit.json").write_text(json.dumps(manifest))
    server = start_server([VariantSpec(name="base", model=str(tiny_model))])
    with LetheClient(server.target, timeout=60) as client:
        details = client.load_variant("lying", checkpoint=other)
        assert details.status == 2
        assert details.memory.shared_bytes == 0
        assert details.parent == ""


def test_auth_is_separate_for_admin_and_inference(start_server, tiny_model, tmp_path):
    token_file = tmp_path / "admin-token"
    token_file.write_text("admin-secret\n")
    auth = AuthSettings(
        inference=TokenSettings(token="infer-secret"),
        admin=TokenSettings(token_file=token_file),
    )
    server = start_server([VariantSpec(name="base", model=str(tiny_model))], auth=auth)

    def code_of(call):
        with pytest.raises(grpc.RpcError) as error:
            call()
        return error.value.code(), error.value.details()

    with LetheClient(server.target, timeout=30) as anonymous:
        code, message = code_of(lambda: anonymous.generate("x", max_tokens=1))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in message
        code, _ = code_of(lambda: list(anonymous.stream("x", max_tokens=1)))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        code, _ = code_of(lambda: anonymous.get_variant("base"))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    with LetheClient(server.target, token="infer-secret", admin_token="wrong") as client:
        assert client.generate("x", max_tokens=1).completion_tokens == 1
        assert len(list(client.stream("x", max_tokens=3))) >= 1
        code, message = code_of(lambda: client.get_variant("base"))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "not valid" in message
    with LetheClient(server.target, token="admin-secret") as admin:
        assert admin.get_variant("base").name == "base"
        code, _ = code_of(lambda: admin.generate("x", max_tokens=1))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    # Health stays open for probes.
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_no_auth_when_no_token_is_configured(shared_server):
    with LetheClient(shared_server.target, token="anything") as client:
        assert client.get_variant("base").name == "base"
        assert client.generate("x", max_tokens=1).completion_tokens == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls(start_server, tiny_model, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    tls = TlsSettings(cert_file=cert, key_file=key)
    server = start_server([VariantSpec(name="base", model=str(tiny_model))], tls=tls)
    with LetheClient(f"localhost:{server.port}", root_cert=cert, timeout=30) as client:
        assert client.generate("secure", max_tokens=2).completion_tokens == 2
    with LetheClient(f"localhost:{server.port}", timeout=5) as plaintext:
        with pytest.raises(grpc.RpcError) as error:
            plaintext.generate("insecure", max_tokens=2)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_metrics_are_exposed_and_labelled_by_variant(shared_server):
    with LetheClient(shared_server.target, timeout=60) as client:
        client.generate("metric", variant="base", max_tokens=5)
        list(client.stream("metric", variant="pruned", max_tokens=5))
        with pytest.raises(grpc.RpcError):
            client.generate("", variant="pruned")
    url = f"http://127.0.0.1:{shared_server.server.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    for line in (
        'lethe_requests_total{code="OK",method="Generate",variant="base"}',
        'lethe_requests_total{code="OK",method="GenerateStream",variant="pruned"}',
        'lethe_requests_total{code="INVALID_ARGUMENT",method="Generate",variant="pruned"}',
        'lethe_variants{status="ready"} 2.0',
        'lethe_variant_status{status="ready",variant="pruned"} 1.0',
        'lethe_requests_in_flight{variant="pruned"} 0.0',
    ):
        assert line in text, line
    for family in (
        "lethe_time_to_first_token_seconds_count",
        "lethe_inter_token_latency_seconds_count",
        "lethe_e2e_request_latency_seconds_count",
        "lethe_request_queue_time_seconds_count",
        "lethe_prompt_tokens_total",
        "lethe_generation_tokens_total",
    ):
        assert f'{family}{{variant="pruned"}}' in text, family
    registry = shared_server.server.metrics.registry
    assert registry.get_sample_value("lethe_generation_tokens_total", {"variant": "pruned"}) >= 5
    # Lethe's metrics live on their own registry, not prometheus_client's global one.
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("lethe_prompt_tokens_total", {"variant": "base"}) is None
