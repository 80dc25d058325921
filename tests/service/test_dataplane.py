"""The data plane on its own: a fake engine isolates it from models and transports."""

import asyncio
import threading

import pytest

from lethe.service.catalog import Catalog, Lifecycle, Variant
from lethe.service.config import ServeSettings, VariantSpec
from lethe.service.dataplane import DataPlane
from lethe.service.engines.base import Chunk, Engine, EngineStats, GenerationRequest, MemoryReport
from lethe.service.errors import InvalidRequest, UnknownVariant
from lethe.service.indexes import IndexRegistry
from lethe.service.metrics import UNROUTED, Metrics
from lethe.service.protocol import GenerateCall, SamplingInput


class CountingEngine(Engine):
    """One token per character; records where and how often it tokenized."""

    def __init__(self, context: int = 64) -> None:
        self.encodes: list[str] = []
        self.encode_threads: set[int] = set()
        self.requests: list[GenerationRequest] = []
        self._context = context

    async def check_health(self) -> None:
        return None

    def encode(self, text: str) -> list[int]:
        self.encodes.append(text)
        self.encode_threads.add(threading.get_ident())
        return [ord(c) for c in text]

    @property
    def context_length(self) -> int:
        return self._context

    def memory(self) -> MemoryReport:
        return MemoryReport(0)

    def stats(self) -> EngineStats:
        return EngineStats(running=2, waiting=5)

    async def generate(self, request: GenerationRequest):
        self.requests.append(request)
        yield Chunk(text="ab")
        yield Chunk(text="")  # deltas without text are not passed on
        yield Chunk(text="c", finish_reason="length", prompt_tokens=len(request.prompt_token_ids or ()),
                    completion_tokens=3)

    async def close(self) -> None:
        return None


def plane_with(engine: Engine) -> tuple[DataPlane, Metrics]:
    catalog = Catalog()
    variant = Variant(name="base", spec=VariantSpec(name="base", model="/m"), engine_name="fake")
    catalog.add(variant)
    variant.engine = engine
    catalog.set_lifecycle(variant, Lifecycle.READY)
    metrics = Metrics()
    settings = ServeSettings(metrics_port=None)
    return DataPlane(catalog, settings, metrics, IndexRegistry([], metrics)), metrics


async def collect(plane: DataPlane, call: GenerateCall):
    return [chunk async for chunk in plane.generate(call, method="Generate")]


def test_tokenizes_once_off_the_event_loop_and_passes_the_ids_on():
    engine = CountingEngine()
    plane, metrics = plane_with(engine)
    loop_thread = threading.get_ident()
    chunks = asyncio.run(collect(plane, GenerateCall(prompt="hello", request_id="r1")))
    assert engine.encodes == ["hello"]
    assert loop_thread not in engine.encode_threads
    assert engine.requests[0].prompt_token_ids == tuple(ord(c) for c in "hello")
    assert [(c.text, c.finish_reason) for c in chunks] == [("ab", None), ("c", "length")]
    assert {(c.variant, c.request_id) for c in chunks} == {("base", "r1")}
    assert chunks[-1].prompt_tokens == 5 and chunks[-1].completion_tokens == 3
    value = metrics.registry.get_sample_value
    assert value("lethe_requests_total", {"variant": "base", "method": "Generate", "code": "OK"}) == 1
    assert value("lethe_generation_tokens_total", {"variant": "base"}) == 3


def test_a_prompt_over_the_context_is_refused_by_field():
    plane, _ = plane_with(CountingEngine(context=4))
    with pytest.raises(InvalidRequest, match=r"^prompt: 5 tokens"):
        asyncio.run(collect(plane, GenerateCall(prompt="hello")))


def test_passages_are_fitted_with_few_tokenizations():
    from lethe.retrieval.augment import RetrievalPolicy
    from lethe.retrieval.passages import Hit, Passage
    from lethe.service.dataplane import _fit
    from lethe.service.rag import Retrieved

    passages = [Passage(id=f"d{i}#0", doc_id=f"d{i}", text="p" * 9, start=0, end=9) for i in range(100)]
    retrieved = Retrieved(RetrievalPolicy(index="i", k=100), tuple(Hit(p, 0.5) for p in passages))
    engine = CountingEngine(context=1_100)  # one token per character
    for prompt, most in (("q" * 10, 1), ("q" * 500, 9), ("q" * 1_090, 9)):
        engine.encodes.clear()
        text, ids, used = asyncio.run(_fit(prompt, retrieved, engine))
        # The most passages that fit, as when every count was tried from 100 down.
        assert used == max(u for u in range(101) if len(retrieved.prompt_with(prompt, u)) < 1_100)
        assert text == retrieved.prompt_with(prompt, used) and ids == [ord(c) for c in text]
        assert len(engine.encodes) <= most  # all; then the prompt alone and a bisection of 1..99
    engine.encodes.clear()
    with pytest.raises(InvalidRequest, match=r"^prompt:"):
        asyncio.run(_fit("q" * 1_100, retrieved, engine))
    assert len(engine.encodes) == 2  # too long alone: no count of passages is tried


def test_bad_sampling_is_refused_before_the_engine_runs():
    engine = CountingEngine()
    plane, metrics = plane_with(engine)
    with pytest.raises(InvalidRequest, match=r"^sampling\.top_p"):
        asyncio.run(collect(plane, GenerateCall(prompt="x", sampling=SamplingInput(top_p=2.0))))
    assert engine.requests == [] and engine.encodes == []
    code = {"variant": "base", "method": "Generate", "code": "INVALID_ARGUMENT"}
    assert metrics.registry.get_sample_value("lethe_requests_total", code) == 1


def test_unknown_variants_add_no_label_values():
    plane, metrics = plane_with(CountingEngine())
    for name in ("nope-1", "nope-2", "nope-3"):
        with pytest.raises(UnknownVariant):
            asyncio.run(collect(plane, GenerateCall(prompt="x", variant=name)))
    samples = [s for m in metrics.requests.collect() for s in m.samples if s.name == "lethe_requests_total"]
    assert {s.labels["variant"] for s in samples} == {UNROUTED}
    assert sum(s.value for s in samples) == 3


def test_running_and_waiting_gauges_come_from_the_engines():
    plane, metrics = plane_with(CountingEngine())
    metrics.watch_engines(lambda: [(v.name, v.engine.stats()) for v in plane.catalog.list()])
    value = metrics.registry.get_sample_value
    assert value("lethe_num_requests_running", {"variant": "base"}) == 2
    assert value("lethe_num_requests_waiting", {"variant": "base"}) == 5
