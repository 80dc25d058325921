"""The transformers engine on a tiny model: batching, sampling, stop strings, cancellation."""

import asyncio

import pytest
import torch

from lethe.service.engines.base import GenerationRequest, Sampling
from lethe.service.engines.transformers_engine import TransformersEngine, TransformersOptions
from lethe.service.engines.weights import load_model
from lethe.service.errors import QueueFull

PROMPTS = ["Hello world", "The quick brown fox jumps", "a", "Lorem ipsum dolor sit amet, consec"]


@pytest.fixture(scope="module")
def loaded(tiny_model):
    return load_model(tiny_model)


def reference(model, tokenizer, prompt: str, n: int) -> str:
    ids = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=0)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


async def collect(engine, prompt, sampling, delay=0.0, rid="r"):
    await asyncio.sleep(delay)
    chunks = [c async for c in engine.generate(GenerationRequest(rid, prompt, sampling))]
    return "".join(c.text for c in chunks), chunks


class CountingModel(torch.nn.Module):
    """Wraps the model to count forward passes and the rows each one carried."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.calls = model, []
        self.config, self.generation_config = model.config, model.generation_config

    def forward(self, **kw):
        self.calls.append(kw["input_ids"].shape[0])
        return self.inner(**kw)


def test_concurrent_requests_share_forward_passes_and_match_sequential(loaded):
    model, tokenizer = loaded
    expected = [reference(model, tokenizer, p, 24) for p in PROMPTS]
    counting = CountingModel(model)
    engine = TransformersEngine(counting, tokenizer, TransformersOptions(max_batch_size=4))
    greedy = Sampling(max_tokens=24, temperature=0.0)

    async def run():
        # Staggered arrivals: later requests join a batch that is already decoding.
        results = await asyncio.gather(
            *(collect(engine, p, greedy, delay=0.02 * i) for i, p in enumerate(PROMPTS))
        )
        await engine.close()
        return results

    results = asyncio.run(run())
    assert [text for text, _ in results] == expected
    for _, chunks in results:
        assert chunks[-1].finish_reason == "length" and chunks[-1].completion_tokens == 24
    assert len(counting.calls) < 4 * 24, "requests were not batched"
    assert max(counting.calls) >= 2


def test_seed_reproduces_and_top_k_1_is_greedy(loaded):
    model, tokenizer = loaded
    engine = TransformersEngine(model, tokenizer)
    sampled = Sampling(max_tokens=16, temperature=1.5, top_p=0.9, seed=7)

    async def run():
        a, _ = await collect(engine, "Seeded", sampled)
        b, _ = await collect(engine, "Seeded", sampled)
        c, _ = await collect(engine, "Seeded", Sampling(max_tokens=16, temperature=1.5, seed=8))
        k1, _ = await collect(engine, "Seeded", Sampling(max_tokens=16, temperature=1.0, top_k=1))
        greedy, _ = await collect(engine, "Seeded", Sampling(max_tokens=16, temperature=0.0))
        await engine.close()
        return a, b, c, k1, greedy

    a, b, c, k1, greedy = asyncio.run(run())
    assert a == b
    assert a != c
    assert k1 == greedy


def test_stop_string_cuts_the_text_and_is_never_streamed(loaded):
    model, tokenizer = loaded
    engine = TransformersEngine(model, tokenizer)
    greedy = Sampling(max_tokens=40, temperature=0.0)

    async def run():
        full, _ = await collect(engine, "stop here", greedy)
        stop = full[10:13]
        cut, chunks = await collect(engine, "stop here", Sampling(40, 0.0, stop=(stop,)))
        await engine.close()
        return full, stop, cut, chunks

    full, stop, cut, chunks = asyncio.run(run())
    assert len(stop) == 3
    assert cut == full[: full.index(stop)]
    assert stop not in "".join(c.text for c in chunks)
    assert chunks[-1].finish_reason == "stop"


def test_cancellation_frees_the_row_and_the_queue_is_bounded(loaded):
    model, tokenizer = loaded
    engine = TransformersEngine(model, tokenizer, TransformersOptions(max_batch_size=1, max_queue=1))
    long = Sampling(max_tokens=3000, temperature=0.0)

    async def run():
        first = engine.generate(GenerationRequest("a", "long one", long))
        await first.__anext__()  # running, holding the only row
        waiting = asyncio.create_task(collect(engine, "queued", Sampling(4, 0.0)))
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull):
            await collect(engine, "refused", Sampling(4, 0.0))
        assert engine.stats().running == 1 and engine.stats().waiting == 1
        await first.aclose()  # the client goes away
        _text, chunks = await asyncio.wait_for(waiting, 30)
        assert chunks[-1].completion_tokens == 4
        _after, _ = await asyncio.wait_for(collect(engine, "after", Sampling(4, 0.0)), 30)
        stats = engine.stats()
        await engine.close()
        return stats

    stats = asyncio.run(run())
    assert stats.running == 0 and stats.waiting == 0


def test_prompt_longer_than_the_context_is_refused(tmp_path):
    from lethe.service.errors import InvalidRequest
    from tests.service.tiny import build_tiny_llama

    model, tokenizer = load_model(build_tiny_llama(tmp_path / "short", max_positions=16))
    engine = TransformersEngine(model, tokenizer)

    async def run():
        with pytest.raises(InvalidRequest, match="prompt"):
            await collect(engine, "x" * 40, Sampling(4, 0.0))
        _text, chunks = await collect(engine, "abc", Sampling(100, 0.0))
        await engine.close()
        return chunks

    chunks = asyncio.run(run())
    # The completion is cut where the context ends.
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].prompt_tokens + chunks[-1].completion_tokens == 16


def test_a_failing_step_fails_its_requests_only_and_the_engine_recovers(loaded):
    model, tokenizer = loaded
    engine = TransformersEngine(model, tokenizer)
    real = engine._forward
    calls = {"n": 0}

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return real(*args)

    engine._forward = flaky

    async def run():
        with pytest.raises(RuntimeError, match="boom"):
            await collect(engine, "first", Sampling(4, 0.0))
        _text, chunks = await collect(engine, "second", Sampling(4, 0.0))
        await engine.close()
        return chunks

    assert asyncio.run(run())[-1].completion_tokens == 4


def test_health_reports_a_dead_worker_and_not_a_closed_engine(loaded):
    from lethe.service.errors import EngineDead

    model, tokenizer = loaded

    async def run():
        healthy = TransformersEngine(model, tokenizer)
        await healthy.check_health()  # serving: no error
        await healthy.close()
        await healthy.check_health()  # closed on purpose: not dead

        dying = TransformersEngine(model, tokenizer)

        def crash() -> None:
            raise RuntimeError("worker bug")

        dying._drop_finished = crash  # the worker's own loop raises outside its per-step guard
        with pytest.raises(Exception):  # noqa: B017 - whichever error ends the request
            await collect(dying, "x", Sampling(max_tokens=2, temperature=0.0))
        dying._thread.join(5)
        with pytest.raises(EngineDead, match="worker thread has stopped"):
            await dying.check_health()

    asyncio.run(asyncio.wait_for(run(), 30))
