"""The data plane: one generation request from routing to its last token, free of any transport.

route (the catalog) -> validate -> retrieve (a variant's retrieval policy) -> fit the context
(tokenize once, in a worker thread) -> engine -> record metrics. The gRPC servicer converts
messages to `GenerateCall` and `GenerateChunk`s back; every decision is made here.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from lethe.edits.errors import LetheError
from lethe.service.catalog import Catalog, Variant
from lethe.service.config import ServeSettings
from lethe.service.engines.base import Chunk, Engine, GenerationRequest
from lethe.service.errors import InvalidRequest
from lethe.service.indexes import IndexRegistry
from lethe.service.metrics import UNROUTED, Metrics
from lethe.service.protocol import GenerateCall, GenerateChunk, UsedPassage
from lethe.service.rag import Retrieved, retrieve
from lethe.service.validation import check_prompt, request_id, validate_sampling


class DataPlane:
    def __init__(
        self, catalog: Catalog, settings: ServeSettings, metrics: Metrics, indexes: IndexRegistry
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.metrics = metrics
        self.indexes = indexes
        # Requests between routing and their last chunk (the server drains on it at shutdown).
        self.in_flight = 0

    async def generate(
        self, call: GenerateCall, *, method: str, deadline_passed: Callable[[], bool] = lambda: False
    ) -> AsyncIterator[GenerateChunk]:
        """Stream the completion of `call`. Errors are `LetheError`s whose kind says the status;
        `method` and `deadline_passed` only label the request counter."""
        started = time.perf_counter()
        label, code = UNROUTED, "OK"
        try:
            variant = self.catalog.for_request(call.variant)
            label = variant.name
            engine = variant.engine
            assert engine is not None
            check_prompt(call.prompt, max_chars=self.settings.max_prompt_chars)
            rid = request_id(call.request_id, max_chars=self.settings.max_request_id_chars)
            sampling = validate_sampling(call.sampling, self.settings)
            retrieved = await retrieve(
                call.prompt,
                variant.name,
                variant.retrieval,
                self.indexes,
                wanted=call.retrieval,
                k=call.retrieval_k,
                query=call.retrieval_query,
            )
            prompt, token_ids, used = await _fit(call.prompt, retrieved, engine)
            passages = tuple(
                UsedPassage(h.passage.id, h.passage.doc_id, h.score, retrieved.policy.index)
                for h in retrieved.hits[:used]
                if retrieved.policy is not None
            )
            request = GenerationRequest(rid, prompt, sampling, prompt_token_ids=tuple(token_ids))
            async for chunk in self._run(variant, engine, request, started):
                finished = chunk.finish_reason is not None
                yield GenerateChunk(
                    variant=variant.name,
                    request_id=rid,
                    text=chunk.text,
                    finish_reason=chunk.finish_reason,
                    prompt_tokens=chunk.prompt_tokens,
                    completion_tokens=chunk.completion_tokens,
                    passages=passages if finished else (),
                )
        except (asyncio.CancelledError, GeneratorExit):
            code = "DEADLINE_EXCEEDED" if deadline_passed() else "CANCELLED"
            raise
        except LetheError as error:
            code = error.kind.upper()
            raise
        except BaseException:
            code = "INTERNAL"
            raise
        finally:
            self.metrics.requests.labels(label, method, code).inc()

    async def _run(
        self, variant: Variant, engine: Engine, request: GenerationRequest, started: float
    ) -> AsyncIterator[Chunk]:
        """The engine's stream, timed: TTFT, inter-token latency, and at the end e2e and tokens."""
        name, metrics = variant.name, self.metrics
        self.in_flight += 1
        metrics.in_flight.labels(name).inc()
        first = previous = None
        try:
            stream = engine.generate(request)
            async with contextlib.aclosing(stream):
                async for chunk in stream:
                    now = time.perf_counter()
                    if chunk.text:
                        if first is None:
                            first = now
                            metrics.ttft.labels(name).observe(now - started)
                        elif previous is not None:
                            metrics.itl.labels(name).observe(now - previous)
                        previous = now
                    if chunk.finish_reason is not None:
                        metrics.record_finish(name, chunk, time.perf_counter() - started)
                    if chunk.text or chunk.finish_reason is not None:
                        yield chunk
        finally:
            self.in_flight -= 1
            metrics.in_flight.labels(name).dec()


async def _fit(prompt: str, retrieved: Retrieved, engine: Engine) -> tuple[str, list[int], int]:
    """The prompt with as many of the best passages as fit the context, its tokens, and how many
    passages it holds. Tokenizing runs in a worker thread: a long prompt never blocks the loop.

    All passages usually fit: one tokenization. Otherwise the prompt alone is tried (if it does
    not fit, no number of passages will) and the number that fits is found by bisection, so a
    long prompt costs 2 + log2(k) tokenizations, not k + 1."""
    context = engine.context_length
    hits = len(retrieved.hits)

    async def tokens(used: int) -> tuple[str, list[int]]:
        text = retrieved.prompt_with(prompt, used)
        return text, await asyncio.to_thread(engine.encode, text)

    if hits:
        text, ids = await tokens(hits)
        if len(ids) < context:
            return text, ids, hits
    text, ids = await tokens(0)
    if len(ids) >= context:
        raise InvalidRequest("prompt", f"{len(ids)} tokens do not fit the context of {context}")
    best, low, high = (text, ids, 0), 1, hits - 1
    while low <= high:  # more passages, more tokens: the largest count that fits
        used = (low + high) // 2
        text, ids = await tokens(used)
        if len(ids) < context:
            best, low = (text, ids, used), used + 1
        else:
            high = used - 1
    return best
