"""Property-based fuzzing of every request message of every service, against a real server.

A tiny base model, a pruned variant of it, a small index and a `pruned+rag` alias, served on
127.0.0.1 with no admin token (Admin then answers loopback clients, which this test is). Hypothesis
draws requests that mix valid and hostile values (`fuzz_requests.py`); every answer must carry a
status from the documented table (docs/service.md, "Errors"): never INTERNAL or UNKNOWN,
DEADLINE_EXCEEDED only for a call given a short deadline, CANCELLED only for one the test cancels.
After every batch the server must still be SERVING and answer a normal Generate. Runs are
reproducible (derandomized, no example database); the last test checks the totals and prints the
status histogram.
"""

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lethe.service.config import IndexSpec, VariantSpec
from lethe.service.gen.lethe.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    inference_pb2,
    inference_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from tests.service import fuzz_requests as fuzz
from tests.service.conftest import ServerThread, settings_for
from tests.service.knowledge import build_index
from tests.service.tiny import build_edited_variant

pytestmark = pytest.mark.slow

Code = grpc.StatusCode
# The documented statuses a request may get; DEADLINE_EXCEEDED and CANCELLED are added for the
# calls that ask for them. RESOURCE_EXHAUSTED is documented for a full queue, which calls made one
# at a time never meet: here it means a message or trailer grew past gRPC's limits (a client's
# value echoed whole), so it fails.
DOCUMENTED = frozenset(
    {
        Code.OK,
        Code.INVALID_ARGUMENT,
        Code.NOT_FOUND,
        Code.ALREADY_EXISTS,
        Code.FAILED_PRECONDITION,
        Code.UNAVAILABLE,
        Code.UNAUTHENTICATED,
        Code.PERMISSION_DENIED,
    }
)
MIN_CASES = 1_000
# A call without a short deadline that takes longer than this is a stall, and fails.
CALL_TIMEOUT_S = 30.0
# The server's health and a normal Generate are checked after this many calls, and after each test.
BATCH = 100
MESSAGE_BYTES = 64 * 1024 * 1024


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


class Campaign:
    """Stubs over one channel to the fuzzed server, and the status of every call made."""

    def __init__(self, target: str, sources: fuzz.Sources) -> None:
        self.sources = sources
        self.channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", MESSAGE_BYTES),
                ("grpc.max_send_message_length", MESSAGE_BYTES),
            ],
        )
        self.inference = inference_pb2_grpc.InferenceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)
        self.retrieval = retrieval_pb2_grpc.RetrievalStub(self.channel)
        self.retrieval_admin = retrieval_pb2_grpc.RetrievalAdminStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.reflection = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        self.histogram: Counter[tuple[str, str]] = Counter()
        self.health_checks = 0
        # Ids of documents the fuzz added, so that some deletes name documents that exist.
        self.added: set[str] = set()
        self._since_check = 0

    @property
    def cases(self) -> int:
        return sum(self.histogram.values())

    def expect(
        self, rpc: str, method: Callable, case: fuzz.Case, *, stream_in: bool = False, also=frozenset()
    ) -> tuple[Code, Any]:
        """Call `method` with the case's request (an iterator of them when `stream_in`); the
        status must be a documented one (or in `also`). Returns it with the response (a list for
        streams)."""
        code, details, response = _call(method, case, stream_in=stream_in)
        self.histogram[(rpc, code.name)] += 1
        allowed = set(DOCUMENTED | also)
        if case.timeout is not None:
            allowed.add(Code.DEADLINE_EXCEEDED)
        if case.cancel:
            allowed.add(Code.CANCELLED)
        assert code in allowed, f"{rpc} answered {code.name}: {details[:500]!r}"
        self._since_check += 1
        if self._since_check >= BATCH:
            self.check_healthy()
        return code, response

    def free(self, name: str) -> None:
        """Unload variant `name` if it is loaded (not a fuzzed call: it is not counted)."""
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            try:
                self.admin.UnloadVariant(admin_pb2.UnloadVariantRequest(name=name), timeout=CALL_TIMEOUT_S)
                return
            except grpc.RpcError as error:
                if error.code() is Code.NOT_FOUND:
                    return
                # UNAVAILABLE: an unload a timed-out call asked for is still under way.
                assert error.code() is Code.UNAVAILABLE and time.monotonic() < deadline, error
                time.sleep(0.05)

    def settled(self, name: str) -> int:
        """The status of variant `name` once it has stopped loading."""
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            status = self.admin.GetVariant(
                admin_pb2.GetVariantRequest(name=name), timeout=CALL_TIMEOUT_S
            ).status
            if status != common_pb2.VARIANT_STATUS_LOADING or time.monotonic() > deadline:
                return status
            time.sleep(0.05)

    def check_healthy(self) -> None:
        """The server reports SERVING and answers a normal Generate."""
        self._since_check = 0
        self.health_checks += 1
        answer = self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT_S)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reply = self.inference.Generate(fuzz.normal_generate(), timeout=CALL_TIMEOUT_S)
        assert (reply.usage.completion_tokens, reply.finish_reason) == (2, "length")


def _call(method: Callable, case: fuzz.Case, *, stream_in: bool) -> tuple[Code, str, Any]:
    timeout = case.timeout if case.timeout is not None else CALL_TIMEOUT_S
    request = iter(case.request) if stream_in else case.request
    try:
        if isinstance(method, grpc.UnaryUnaryMultiCallable | grpc.StreamUnaryMultiCallable):
            if not case.cancel:
                return Code.OK, "", method(request, timeout=timeout)
            future = method.future(request, timeout=timeout)
            time.sleep(0.005)
            future.cancel()
            try:
                return Code.OK, "", future.result()
            except grpc.FutureCancelledError:
                return Code.CANCELLED, "cancelled by the test", None
        responses = method(request, timeout=timeout)
        received = []
        for message in responses:
            received.append(message)
            if case.cancel:
                responses.cancel()
        return Code.OK, "", received
    except grpc.RpcError as error:
        return error.code(), error.details() or "", None


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, tiny_model, tiny_variant) -> Iterator[Campaign]:
    root = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as patch:
        # Admin loads from LETHE_HOME/checkpoints and /models (and the tests' tmp root): a
        # LETHE_HOME of its own, so a known model name is never found prepared (nor downloaded).
        home = root / "home"
        patch.setenv("LETHE_HOME", str(home))
        build_edited_variant(tiny_model, home / "checkpoints" / "forget-x")
        broken = root / "broken"
        broken.mkdir()
        (broken / "config.json").write_text("{not json")
        no_weights = root / "no-weights"
        no_weights.mkdir()
        (no_weights / "config.json").write_text((tiny_model / "config.json").read_text())
        index = build_index(root / "facts")
        sources = fuzz.path_sources(
            root,
            loadable=[tiny_variant, tiny_model],
            relative=["forget-x", "../checkpoints/forget-x"],
            failing=[broken, no_weights],
            not_checkpoints=[index, root],
        )
        variants = [
            VariantSpec(name="base", model=str(tiny_model)),
            VariantSpec(name="pruned", checkpoint=tiny_variant),
            VariantSpec(name="pruned+rag", alias_of="pruned", retrieval={"index": fuzz.INDEX, "k": 2}),
        ]
        server = ServerThread(settings_for(indexes=[IndexSpec(name=fuzz.INDEX, path=index)]), variants)
        campaign = Campaign(server.target, sources)
        campaign.check_healthy()
        yield campaign
        campaign.channel.close()
        server.stop()


# -- Admin (first: the variants it leaves loaded are fuzzed by the Inference tests) --------------
@fuzz_settings(200)
@given(data=st.data())
def test_load_variant(campaign, data):
    case = data.draw(fuzz.load_variant_requests(campaign.sources), label="case")
    load_and_serve(campaign, case, unload=data.draw(UNLOAD, label="unload"))


@fuzz_settings(120)
@given(data=st.data())
def test_load_variant_sources(campaign, data):
    case = data.draw(fuzz.load_source_requests(campaign.sources), label="case")
    campaign.free(case.request.name)  # so the source decides the answer, not a name still taken
    load_and_serve(campaign, case, unload=data.draw(UNLOAD, label="unload"))


UNLOAD = st.sampled_from((True, True, True, False))


def load_and_serve(campaign: Campaign, case: fuzz.Case, *, unload: bool) -> None:
    """LoadVariant; a variant it accepted answers a normal Generate once READY (a policy Admin
    took must format), UNAVAILABLE if it failed to load; then it is unloaded unless kept."""
    code, _ = campaign.expect("LoadVariant", campaign.admin.LoadVariant, case)
    name = case.request.name
    if code is not Code.OK or name not in fuzz.FUZZ_NAMES:
        return
    ready = campaign.settled(name) == common_pb2.VARIANT_STATUS_READY
    follow = fuzz.Case(fuzz.normal_generate(name))
    code, _ = campaign.expect("Generate (loaded variant)", campaign.inference.Generate, follow)
    assert code is (Code.OK if ready else Code.UNAVAILABLE)
    if unload:
        code, _ = campaign.expect(
            "UnloadVariant",
            campaign.admin.UnloadVariant,
            fuzz.Case(admin_pb2.UnloadVariantRequest(name=name)),
        )
        assert code is Code.OK


@fuzz_settings(40)
@given(case=fuzz.get_variant_requests())
def test_get_variant(campaign, case):
    campaign.expect("GetVariant", campaign.admin.GetVariant, case)


# -- Inference ----------------------------------------------------------------------------------
@fuzz_settings(450)
@given(case=fuzz.generate_requests())
def test_generate(campaign, case):
    code, reply = campaign.expect("Generate", campaign.inference.Generate, case)
    if code is Code.OK:
        assert reply.finish_reason in ("stop", "length")
        assert reply.usage.completion_tokens <= (case.request.sampling.max_tokens or 8)
        assert not case.request.request_id or reply.request_id == case.request.request_id


@fuzz_settings(200)
@given(case=fuzz.generate_requests())
def test_generate_stream(campaign, case):
    code, messages = campaign.expect("GenerateStream", campaign.inference.GenerateStream, case)
    if code is Code.OK:
        assert messages and messages[-1].finish_reason in ("stop", "length")
        assert all(not m.finish_reason for m in messages[:-1])


@fuzz_settings(10)
@given(case=fuzz.empty_requests(inference_pb2.ListVariantsRequest))
def test_list_variants(campaign, case):
    code, reply = campaign.expect("ListVariants", campaign.inference.ListVariants, case)
    if code is Code.OK:
        assert {"base", "pruned", "pruned+rag"} <= {v.name for v in reply.variants}


# -- Retrieval ----------------------------------------------------------------------------------
@fuzz_settings(300)
@given(case=fuzz.search_requests())
def test_search(campaign, case):
    code, reply = campaign.expect("Search", campaign.retrieval.Search, case)
    if code is Code.OK:
        assert len(reply.passages) <= case.request.k
        assert [p.score for p in reply.passages] == sorted((p.score for p in reply.passages), reverse=True)


@fuzz_settings(30)
@given(case=fuzz.index_stats_requests())
def test_index_stats(campaign, case):
    campaign.expect("IndexStats", campaign.retrieval.IndexStats, case)


@fuzz_settings(10)
@given(case=fuzz.empty_requests(retrieval_pb2.ListIndexesRequest))
def test_list_indexes(campaign, case):
    campaign.expect("ListIndexes", campaign.retrieval.ListIndexes, case)


@fuzz_settings(120)
@given(case=fuzz.add_documents_streams())
def test_add_documents(campaign, case):
    code, messages = campaign.expect(
        "AddDocuments", campaign.retrieval_admin.AddDocuments, case, stream_in=True
    )
    if code is Code.OK:
        assert messages[-1].done and messages[-1].documents_added >= 1
        campaign.added.update(d.id for m in case.request for d in m.documents)


@fuzz_settings(60)
@given(case=fuzz.delete_documents_requests(), picks=st.lists(st.integers(0, 10**6), max_size=3))
def test_delete_documents(campaign, case, picks):
    request = case.request
    ours = sorted(campaign.added)
    if picks and ours and all(i.startswith("fz-") for i in request.ids):
        request = retrieval_pb2.DeleteDocumentsRequest(
            index=request.index, ids=[ours[p % len(ours)] for p in picks]
        )
        case = fuzz.Case(request, case.timeout)
    code, _ = campaign.expect("DeleteDocuments", campaign.retrieval_admin.DeleteDocuments, case)
    if code is Code.OK:
        campaign.added.difference_update(request.ids)


# -- health, reflection, and unloading last -----------------------------------------------------
@fuzz_settings(30)
@given(case=fuzz.health_requests())
def test_health_check(campaign, case):
    campaign.expect("Health.Check", campaign.health.Check, case)


@fuzz_settings(30)
@given(case=fuzz.reflection_streams())
def test_reflection(campaign, case):
    campaign.expect("ServerReflectionInfo", campaign.reflection.ServerReflectionInfo, case, stream_in=True)


@fuzz_settings(200)
@given(
    method=st.sampled_from(fuzz.wire_methods()),
    payloads=st.lists(fuzz.WIRE_PAYLOADS, min_size=1, max_size=2),
)
def test_bytes_that_are_no_message(campaign, method, payloads):
    """Every method, sent bytes that do not decode (or decode to anything): never UNKNOWN. A few
    decode to a valid request; the short deadline bounds one that would generate long."""
    channel = campaign.channel
    make = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(method.client_streaming, method.server_streaming)]
    request = tuple(payloads) if method.client_streaming else payloads[0]
    call = make(method.path)  # no serializers: the bytes go as they are
    # grpc's asyncio health servicer does not implement the newer Health.List.
    also = frozenset({Code.UNIMPLEMENTED}) if method.path == "/grpc.health.v1.Health/List" else frozenset()
    rpc = "bytes " + method.path.rsplit("/", 1)[1]
    campaign.expect(rpc, call, fuzz.Case(request, 2.0), stream_in=method.client_streaming, also=also)


@fuzz_settings(40)
@given(case=fuzz.unload_variant_requests())
def test_unload_variant(campaign, case):
    campaign.expect("UnloadVariant", campaign.admin.UnloadVariant, case)


@pytest.fixture(autouse=True)
def _healthy_after_each_batch(request):
    yield
    if "campaign" in request.fixturenames:
        request.getfixturevalue("campaign").check_healthy()


def test_campaign_totals(campaign, capsys):
    """Enough cases, none INTERNAL or UNKNOWN; the histogram goes to the terminal."""
    by_code: Counter[str] = Counter()
    for (_, code), count in campaign.histogram.items():
        by_code[code] += count
    lines = [
        f"fuzz: {campaign.cases} cases, INTERNAL {by_code['INTERNAL']}, UNKNOWN {by_code['UNKNOWN']}, "
        f"{campaign.health_checks} health checks",
        "  by status: " + ", ".join(f"{code} {count}" for code, count in by_code.most_common()),
    ]
    lines += [f"  {rpc:28} {code:22} {count}" for (rpc, code), count in sorted(campaign.histogram.items())]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert by_code["INTERNAL"] == 0 and by_code["UNKNOWN"] == 0
    assert campaign.cases >= MIN_CASES
