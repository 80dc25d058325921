"""Issue 11's core items over a real port: secure defaults, confined loads, no request stalls or
fails the others, bounded fields, honest status counting."""

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lethe.client import LetheClient
from lethe.service.config import VariantSpec, load_settings
from lethe.service.interceptors import is_loopback_peer


def code_and_message(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code(), error.value.details()


@pytest.fixture(scope="module")
def client(shared_server):
    with LetheClient(shared_server.target, timeout=60) as client:
        yield client


# -- secure defaults ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.3.4.5:1", True),
        ("ipv6:[::1]:5000", True),
        ("ipv6:[::ffff:127.0.0.1]:5000", True),
        ("unix:/run/lethe.sock", True),
        ("ipv4:10.0.0.7:5000", False),
        ("ipv4:128.0.0.1:5000", False),
        ("ipv6:[fe80::1]:5000", False),
        ("ipv6:[2001:db8::1]:5000", False),
    ],
)
def test_only_loopback_peers_count_as_local(peer, local):
    assert is_loopback_peer(peer) is local


def test_admin_without_a_token_refuses_a_remote_peer():
    """The interceptor on its own: the only way to be a non-loopback peer here is a fake context."""
    import asyncio

    from lethe.service.interceptors import AuthInterceptor

    class Details:
        method = "/lethe.v1.Admin/GetVariant"
        invocation_metadata = ()

    class Context:
        def __init__(self, peer: str) -> None:
            self._peer, self.aborted = peer, None

        def peer(self) -> str:
            return self._peer

        async def abort(self, code, message):
            self.aborted = (code, message)
            raise grpc.aio.AbortError()

    async def behaviour(request, context):
        return "answered"

    async def run(peer: str):
        async def continuation(details):
            return grpc.unary_unary_rpc_method_handler(behaviour)

        interceptor = AuthInterceptor({"lethe.v1.Admin": ""}, frozenset({"lethe.v1.Admin"}))
        handler = await interceptor.intercept_service(continuation, Details())
        context = Context(peer)
        try:
            return await handler.unary_unary(None, context), context.aborted
        except grpc.aio.AbortError:
            return None, context.aborted

    assert asyncio.run(run("ipv4:127.0.0.1:1")) == ("answered", None)
    answer, aborted = asyncio.run(run("ipv4:192.0.2.10:1"))
    assert answer is None and aborted[0] == grpc.StatusCode.PERMISSION_DENIED
    assert "auth.admin" in aborted[1]


def test_metrics_follow_the_host_unless_metrics_host_is_set(start_server, tiny_model):
    server = start_server([VariantSpec(name="base", model=str(tiny_model))], metrics_host=None)
    assert server.server._metrics_server.server_address[0] == "127.0.0.1"
    assert load_settings(None, host="10.1.2.3").metrics_bind_host == "10.1.2.3"
    assert load_settings(None, host="10.1.2.3", metrics_host="0.0.0.0").metrics_bind_host == "0.0.0.0"


# -- confined loads -----------------------------------------------------------------------------
def test_admin_loads_only_under_the_roots_and_reveals_nothing_outside(shared_server, client):
    pruned = shared_server.pruned_path  # under the tests' root; a detour through `..` is resolved
    detour = pruned.parent / ".." / pruned.parent.name / pruned.name
    assert client.load_variant("inside", checkpoint=detour).status == 2
    client.unload_variant("inside")
    answers = {
        path: code_and_message(lambda path=path: client.load_variant("x", checkpoint=path))
        for path in ("/etc", "/nonexistent/at/all", "/proc/self")
    }
    assert {code for code, _ in answers.values()} == {grpc.StatusCode.INVALID_ARGUMENT}
    # The same words whether the path exists or not: nothing to learn about the filesystem.
    assert len({message.split("'")[2] for _, message in answers.values()}) == 1
    assert all("outside the directories" in message for _, message in answers.values())
    code, message = code_and_message(lambda: client.load_variant("x", checkpoint="../../../../etc"))
    assert code == grpc.StatusCode.NOT_FOUND and "/etc'" not in message.replace("../", "")
    code, message = code_and_message(lambda: client.load_variant("x", model="/usr"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("model:")
    assert "x" not in {v.name for v in client.list_variants()}


def test_admin_never_downloads_a_model(client, monkeypatch, tmp_path):
    import lethe.edits.models.prepare as prepare

    def no_downloads(*args, **kwargs):
        raise AssertionError("Admin asked for a download")

    monkeypatch.setattr(prepare, "prepare_model", no_downloads)
    monkeypatch.setenv("LETHE_HOME", str(tmp_path))  # nothing is prepared there
    code, message = code_and_message(lambda: client.load_variant("g", model="smollm2-135m"))
    assert code == grpc.StatusCode.NOT_FOUND and "lethe models prepare smollm2-135m" in message


def test_an_admin_chosen_vllm_engine_gets_the_configured_memory():
    settings = load_settings(None, vllm_cpu_kvcache_space_gib=3, vllm_gpu_memory_utilization=0.4)
    options = settings.engine_options(VariantSpec(name="v", model="/m", engine="vllm"))
    assert (options.cpu_kvcache_space_gib, options.gpu_memory_utilization) == (3, 0.4)


# -- bounded fields, echoed values ------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"stop": ["s"] * 17}, "sampling.stop"),
        ({"stop": ["x" * 257]}, "sampling.stop"),
        ({"request_id": "r" * 129}, "request_id"),
    ],
)
def test_request_fields_are_bounded(client, params, field):
    code, message = code_and_message(lambda: client.generate("hi", variant="base", **params))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith(field + ":")


def test_a_huge_variant_name_is_not_found_with_a_short_message(client):
    code, message = code_and_message(lambda: client.generate("hi", variant="v" * 100_000))
    assert code == grpc.StatusCode.NOT_FOUND and len(message) < 1_000


def test_long_admin_values_are_refused_or_not_found_with_short_messages(client, shared_server):
    answers = [
        (lambda: client.load_variant("x", alias_of="base", engine="é" * 100_000), "engine:"),
        (lambda: client.load_variant("v" * 129, alias_of="base"), "name:"),
        (lambda: client.load_variant("x", alias_of="a" * 100_000), "alias_of:"),
        (lambda: client.unload_variant("u" * 100_000), "unknown variant"),
    ]
    for call, start in answers:
        code, message = code_and_message(call)
        assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), message
        assert message.startswith(start) and len(message) < 1_000, message[:300]
    assert {v.name for v in client.list_variants()} == {"base", "pruned"}


def test_paths_the_filesystem_cannot_name_are_not_found(client, shared_server):
    too_long = shared_server.pruned_path.parent / ("a" * 300)  # a name over the filesystem's limit
    for path in (str(too_long), "~nosuchuser/x"):
        code, message = code_and_message(lambda path=path: client.load_variant("x", checkpoint=path))
        assert code == grpc.StatusCode.NOT_FOUND and message.startswith("checkpoint: no checkpoint"), message


def test_request_bytes_that_do_not_decode_are_invalid_argument(shared_server):
    not_utf8 = b"\x12\x02\xc3\x28"  # field 2 (a string) holding bytes that are not UTF-8
    with grpc.insecure_channel(shared_server.target) as channel:
        calls = [
            lambda: channel.unary_unary("/lethe.v1.Inference/Generate")(not_utf8, timeout=10),
            lambda: list(channel.unary_stream("/lethe.v1.Inference/GenerateStream")(b"\xff\xff", timeout=10)),
            lambda: list(
                channel.stream_stream("/lethe.v1.RetrievalAdmin/AddDocuments")(iter([not_utf8]), timeout=10)
            ),
        ]
        for call in calls:
            code, message = code_and_message(call)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, message
            assert message.startswith("request: cannot be decoded"), message
        # grpc's asyncio health servicer has no List: the standard answer, not INTERNAL.
        health_list = channel.unary_unary("/grpc.health.v1.Health/List")
        assert code_and_message(lambda: health_list(b"", timeout=10))[0] == grpc.StatusCode.UNIMPLEMENTED


def test_a_tiny_temperature_is_greedy_not_an_error(client):
    tiny = client.generate("same", variant="base", max_tokens=6, temperature=1e-39)
    greedy = client.generate("same", variant="base", max_tokens=6, temperature=0)
    assert tiny.text == greedy.text and tiny.completion_tokens == 6


# -- no request may stall or fail the others --------------------------------------------------
def test_health_answers_while_maximal_prompts_are_refused(client, shared_server):
    """A prompt at the character limit is tokenized (off the loop) and refused for the context; one
    far over it (15 MB) is refused before any work. Health answers within 100 ms throughout."""
    outcome: list[grpc.StatusCode] = []

    def send() -> None:
        with LetheClient(shared_server.target, timeout=120) as sender:
            for prompt in ("x" * 200_000, "y" * 15_000_000, "z" * 200_000):
                outcome.append(code_and_message(lambda p=prompt: sender.generate(p, variant="base"))[0])

    sender = threading.Thread(target=send)
    latencies = []
    with grpc.insecure_channel(shared_server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        sender.start()
        while sender.is_alive():
            started = time.perf_counter()
            health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.005)
    sender.join()
    assert outcome == [grpc.StatusCode.INVALID_ARGUMENT] * 3
    assert len(latencies) >= 3, "the refusals were too quick to overlap any health check"
    assert max(latencies) < 0.1, f"health stalled {max(latencies):.3f} s"


def test_a_prompt_over_the_character_limit_is_refused_before_tokenizing(client):
    code, message = code_and_message(lambda: client.generate("x" * 200_001, variant="base"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "limit of 200000" in message


def test_one_failing_row_ends_alone(shared_server, monkeypatch):
    import lethe.service.engines.transformers_engine as engine_module

    real = engine_module.choose_token

    def poisoned(logits, sampling, generator):
        if sampling.seed == 666:
            raise FloatingPointError("poisoned row")
        return real(logits, sampling, generator)

    monkeypatch.setattr(engine_module, "choose_token", poisoned)
    results: dict[int, object] = {}

    def run(seed: int) -> None:
        with LetheClient(shared_server.target, timeout=60) as client:
            try:
                reply = client.generate("rows", variant="base", max_tokens=24, seed=seed)
                results[seed] = reply.completion_tokens
            except grpc.RpcError as error:
                results[seed] = error.code()

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2, 666, 3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results.pop(666) == grpc.StatusCode.INTERNAL
    assert results == {1: 24, 2: 24, 3: 24, 4: 24}


# -- honest counting --------------------------------------------------------------------------
def test_deadline_expirations_count_as_deadline_exceeded(shared_server):
    metrics = shared_server.server.metrics.registry
    labels = {"variant": "base", "method": "Generate", "code": "DEADLINE_EXCEEDED"}
    before = metrics.get_sample_value("lethe_requests_total", labels) or 0
    with LetheClient(shared_server.target, timeout=0.3) as client:
        for _ in range(4):
            slow = lambda: client.generate("slow", variant="base", max_tokens=4000, temperature=0)  # noqa: E731
            code, _ = code_and_message(slow)
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 5
    while (metrics.get_sample_value("lethe_requests_total", labels) or 0) < before + 4:
        assert time.monotonic() < deadline, "deadline expirations were not counted as such"
        time.sleep(0.05)
