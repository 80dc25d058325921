"""`lethe.v1.Inference`: protobuf in, engine stream out, metrics on the way.

A variant with a retrieval policy (or a request that asks) gets its prompt augmented first
(`service.rag`); the passages used go back with the response.
"""

import contextlib
import time
from collections.abc import AsyncIterator

import grpc

from lethe.service.config import ServeSettings
from lethe.service.engines.base import Chunk, GenerationRequest
from lethe.service.errors import InvalidRequest
from lethe.service.gen.lethe.v1 import inference_pb2, inference_pb2_grpc
from lethe.service.indexes import IndexRegistry
from lethe.service.metrics import Metrics
from lethe.service.rag import augment
from lethe.service.registry import VariantRegistry
from lethe.service.servicers.convert import retrieved_passages, variant_summary
from lethe.service.status import status_for
from lethe.service.validation import check_prompt, request_id, sampling_from_proto


class InferenceServicer(inference_pb2_grpc.InferenceServicer):
    def __init__(
        self,
        registry: VariantRegistry,
        settings: ServeSettings,
        metrics: Metrics,
        indexes: IndexRegistry | None = None,
    ):
        self._registry = registry
        self._settings = settings
        self._metrics = metrics
        self._indexes = indexes or IndexRegistry([], metrics)

    async def Generate(self, request, context):
        text, last, answered = [], None, ("", "", [])
        async for variant, rid, chunk, passages in self._run(request, context, "Generate"):
            text.append(chunk.text)
            last, answered = chunk, (variant, rid, passages)
        assert last is not None
        variant, rid, passages = answered
        return inference_pb2.GenerateResponse(
            variant=variant,
            text="".join(text),
            finish_reason=last.finish_reason or "",
            usage=_usage(last),
            request_id=rid,
            passages=passages,
        )

    async def GenerateStream(self, request, context):
        async for variant, rid, chunk, passages in self._run(request, context, "GenerateStream"):
            if not chunk.text and chunk.finish_reason is None:
                continue
            message = inference_pb2.GenerateStreamResponse(variant=variant, text=chunk.text, request_id=rid)
            if chunk.finish_reason is not None:
                message.finish_reason = chunk.finish_reason
                message.usage.CopyFrom(_usage(chunk))
                message.passages.extend(passages)
            yield message

    async def ListVariants(self, request, context):
        return inference_pb2.ListVariantsResponse(
            variants=[variant_summary(v, self._registry) for v in self._registry.list()],
            default_variant=self._registry.default_name or "",
        )

    async def _run(
        self, request: inference_pb2.GenerateRequest, context, method: str
    ) -> AsyncIterator[tuple[str, str, Chunk, list[inference_pb2.RetrievedPassage]]]:
        """Validate, retrieve, run on the engine and record metrics; yields (variant, request id,
        chunk, passages in the prompt)."""
        started = time.perf_counter()
        label = request.variant or self._registry.default_name or ""
        code = grpc.StatusCode.OK
        in_flight = None
        try:
            variant = self._registry.for_request(request.variant)
            label = variant.name
            check_prompt(request.prompt)
            sampling = sampling_from_proto(
                request.sampling,
                default_max_tokens=self._settings.default_max_tokens,
                max_tokens_limit=self._settings.max_tokens_limit,
            )
            engine = variant.engine
            assert engine is not None
            augmented = await augment(
                request.prompt,
                variant.name,
                variant.retrieval,
                self._indexes,
                wanted=request.retrieval if request.HasField("retrieval") else None,
                k=request.retrieval_k,
                query=request.retrieval_query,
                fits=lambda text: engine.count_tokens(text) < engine.context_length,
            )
            passages = retrieved_passages(augmented.index, augmented.hits)
            prompt_tokens = engine.count_tokens(augmented.prompt)
            if prompt_tokens >= engine.context_length:
                raise InvalidRequest(
                    "prompt",
                    f"{prompt_tokens} tokens do not fit the context of {engine.context_length}",
                )
            rid = request_id(request)
            context.set_trailing_metadata((("lethe-variant", variant.name),))
            in_flight = self._metrics.in_flight.labels(variant.name)
            in_flight.inc()
            first = previous = None
            stream = engine.generate(GenerationRequest(rid, augmented.prompt, sampling))
            async with contextlib.aclosing(stream):
                async for chunk in stream:
                    now = time.perf_counter()
                    if chunk.text:
                        if first is None:
                            first = now
                            self._metrics.ttft.labels(variant.name).observe(now - started)
                        elif previous is not None:
                            self._metrics.itl.labels(variant.name).observe(now - previous)
                        previous = now
                    if chunk.finish_reason is not None:
                        self._record_finish(variant.name, chunk, started)
                    yield variant.name, rid, chunk, passages
        except BaseException as error:
            code = _code_of(error, context)
            raise
        finally:
            if in_flight is not None:
                in_flight.dec()
            self._metrics.requests.labels(label, method, code.name).inc()

    def _record_finish(self, variant: str, chunk: Chunk, started: float) -> None:
        self._metrics.e2e.labels(variant).observe(time.perf_counter() - started)
        if chunk.queue_seconds is not None:
            self._metrics.queue.labels(variant).observe(chunk.queue_seconds)
        self._metrics.prompt_tokens.labels(variant).inc(chunk.prompt_tokens)
        self._metrics.generation_tokens.labels(variant).inc(chunk.completion_tokens)


def _usage(chunk: Chunk) -> inference_pb2.Usage:
    return inference_pb2.Usage(prompt_tokens=chunk.prompt_tokens, completion_tokens=chunk.completion_tokens)


def _code_of(error: BaseException, context) -> grpc.StatusCode:
    import asyncio

    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    if isinstance(error, Exception):
        return status_for(error)[0]
    return grpc.StatusCode.UNKNOWN
