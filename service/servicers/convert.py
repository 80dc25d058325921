"""Protobuf to the core's types and back: the only place that touches messages' fields."""

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from lethe.edits.errors import problems, shorten
from lethe.retrieval.augment import RetrievalPolicy
from lethe.retrieval.index import IndexInfo
from lethe.retrieval.passages import Hit
from lethe.service.catalog import Catalog, Lifecycle, Variant
from lethe.service.config import VariantSpec
from lethe.service.engines.options import ENGINE_NAMES
from lethe.service.errors import InvalidRequest
from lethe.service.gen.lethe.v1 import admin_pb2, common_pb2, inference_pb2, retrieval_pb2
from lethe.service.protocol import GenerateCall, GenerateChunk, SamplingInput, UsedPassage

STATUS = {
    Lifecycle.LOADING: common_pb2.VARIANT_STATUS_LOADING,
    Lifecycle.READY: common_pb2.VARIANT_STATUS_READY,
    Lifecycle.FAILED: common_pb2.VARIANT_STATUS_FAILED,
    Lifecycle.UNLOADING: common_pb2.VARIANT_STATUS_UNLOADING,
}


def generate_call_from_proto(request: inference_pb2.GenerateRequest) -> GenerateCall:
    params = request.sampling
    return GenerateCall(
        prompt=request.prompt,
        variant=request.variant,
        sampling=SamplingInput(
            max_tokens=params.max_tokens,
            temperature=params.temperature if params.HasField("temperature") else None,
            top_p=params.top_p if params.HasField("top_p") else None,
            top_k=params.top_k,
            seed=params.seed if params.HasField("seed") else None,
            stop=tuple(params.stop),
        ),
        request_id=request.request_id,
        retrieval=request.retrieval if request.HasField("retrieval") else None,
        retrieval_k=request.retrieval_k,
        retrieval_query=request.retrieval_query,
    )


# gRPC cancels a call at its deadline a little before our clock reaches it.
_DEADLINE_SLACK_S = 0.05


def deadline_passed(context) -> Callable[[], bool]:
    """Whether the call's deadline has expired (tells DEADLINE_EXCEEDED from CANCELLED)."""
    remaining = context.time_remaining()
    if remaining is None:
        return lambda: False
    deadline = time.monotonic() + remaining
    return lambda: time.monotonic() >= deadline - _DEADLINE_SLACK_S


def variant_spec_from_proto(request: admin_pb2.LoadVariantRequest) -> VariantSpec:
    source = request.WhichOneof("source")
    if source is None:
        raise InvalidRequest(
            "source", "give `checkpoint` (a directory), `model` (a name) or `alias_of` (a variant)"
        )
    if request.engine and request.engine not in ENGINE_NAMES:
        raise InvalidRequest("engine", f"{shorten(request.engine)!r}: use {' or '.join(ENGINE_NAMES)}")
    retrieval = policy_from_proto(request.retrieval) if request.HasField("retrieval") else None
    try:
        return VariantSpec(
            name=request.name,
            checkpoint=Path(request.checkpoint) if source == "checkpoint" else None,
            model=request.model if source == "model" else None,
            alias_of=request.alias_of if source == "alias_of" else None,
            engine=request.engine or None,
            options=dict(request.engine_options),
            retrieval=retrieval,
        )
    except ValidationError as error:
        where, message = problems(error)[0]
        raise InvalidRequest(where or "name", message) from None


def usage_to_proto(chunk: GenerateChunk) -> inference_pb2.Usage:
    return inference_pb2.Usage(prompt_tokens=chunk.prompt_tokens, completion_tokens=chunk.completion_tokens)


def passages_to_proto(passages: Sequence[UsedPassage]) -> list[inference_pb2.RetrievedPassage]:
    return [
        inference_pb2.RetrievedPassage(id=p.id, doc_id=p.doc_id, score=p.score, index=p.index)
        for p in passages
    ]


def _parent(variant: Variant) -> str:
    """`parent` in the API: an alias's target, else the served variant whose tensors it shares."""
    return variant.alias_of or variant.weights_from


def variant_summary(variant: Variant, catalog: Catalog) -> common_pb2.Variant:
    return common_pb2.Variant(
        name=variant.name,
        status=STATUS[variant.lifecycle],
        engine=variant.engine_name,
        parent=_parent(variant),
        is_default=variant.name == catalog.default_name,
        retrieval=policy_to_proto(variant.retrieval),
        alias_of=variant.alias_of,
    )


def variant_details(variant: Variant, catalog: Catalog) -> admin_pb2.VariantDetails:
    memory = variant.memory()
    return admin_pb2.VariantDetails(
        name=variant.name,
        status=STATUS[variant.lifecycle],
        engine=variant.engine_name,
        checkpoint=str(variant.source or ""),
        parent=_parent(variant),
        edit_manifest_json=variant.manifest.model_dump_json() if variant.manifest else "",
        memory=admin_pb2.MemoryUsage(
            parameter_bytes=memory.parameter_bytes,
            shared_bytes=memory.shared_bytes,
            own_bytes=memory.own_bytes,
        ),
        error=variant.error,
        is_default=variant.name == catalog.default_name,
        edited_tensors=variant.edited_tensors,
        retrieval=policy_to_proto(variant.retrieval),
        alias_of=variant.alias_of,
    )


def policy_to_proto(policy: RetrievalPolicy | None) -> common_pb2.RetrievalPolicy | None:
    if policy is None:
        return None
    return common_pb2.RetrievalPolicy(
        index=policy.index,
        k=policy.k,
        min_score=policy.min_score,
        template=policy.template,
        passage_format=policy.passage_format,
    )


def policy_from_proto(message: common_pb2.RetrievalPolicy) -> RetrievalPolicy:
    """Zero fields take the policy's defaults; a bad field is refused by name (`retrieval.k`)."""
    if not message.index:
        raise InvalidRequest("retrieval.index", "must name an index")
    fields = {"index": message.index, "min_score": message.min_score}
    if message.k:
        fields["k"] = message.k
    if message.template:
        fields["template"] = message.template
    if message.passage_format:
        fields["passage_format"] = message.passage_format
    try:
        return RetrievalPolicy(**fields)
    except ValidationError as error:
        where, message = problems(error)[0]
        raise InvalidRequest(f"retrieval.{where}" if where else "retrieval", message) from None


def passage_to_proto(hit: Hit) -> retrieval_pb2.Passage:
    p = hit.passage
    return retrieval_pb2.Passage(
        id=p.id,
        doc_id=p.doc_id,
        score=hit.score,
        text=p.text,
        title=p.title or "",
        source=p.source or "",
        metadata_json=json.dumps(p.metadata) if p.metadata else "",
        start=p.start,
        end=p.end,
    )


def index_info_to_proto(name: str, info: IndexInfo, max_k: int) -> retrieval_pb2.IndexInfo:
    return retrieval_pb2.IndexInfo(
        name=name,
        path=info.path,
        snapshot=info.snapshot,
        format_version=info.format_version,
        embedder=info.embedder,
        dimension=info.dimension,
        index_type=info.index_kind,
        documents=info.documents,
        passages=info.passages,
        vectors=info.vectors,
        size_bytes=info.size_bytes,
        created_at=info.created_at,
        max_k=max_k,
    )
