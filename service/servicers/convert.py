"""Registry, engine and index objects to protobuf messages, and the reverse for policies."""

import json
from collections.abc import Sequence

from pydantic import ValidationError

from lethe.retrieval.augment import RetrievalPolicy
from lethe.retrieval.index import IndexInfo
from lethe.retrieval.passages import Hit
from lethe.service.errors import InvalidRequest
from lethe.service.gen.lethe.v1 import admin_pb2, common_pb2, inference_pb2, retrieval_pb2
from lethe.service.registry import FAILED, LOADING, READY, UNLOADING, Variant, VariantRegistry

STATUS = {
    LOADING: common_pb2.VARIANT_STATUS_LOADING,
    READY: common_pb2.VARIANT_STATUS_READY,
    FAILED: common_pb2.VARIANT_STATUS_FAILED,
    UNLOADING: common_pb2.VARIANT_STATUS_UNLOADING,
}


def variant_summary(variant: Variant, registry: VariantRegistry) -> common_pb2.Variant:
    return common_pb2.Variant(
        name=variant.name,
        status=STATUS[variant.status],
        engine=variant.engine_name,
        parent=variant.parent,
        is_default=variant.name == registry.default_name,
        retrieval=policy_to_proto(variant.retrieval),
        alias_of=variant.alias_of,
    )


def variant_details(variant: Variant, registry: VariantRegistry) -> admin_pb2.VariantDetails:
    memory = variant.memory()
    return admin_pb2.VariantDetails(
        name=variant.name,
        status=STATUS[variant.status],
        engine=variant.engine_name,
        checkpoint=str(variant.source or ""),
        parent=variant.parent,
        edit_manifest_json=json.dumps(variant.manifest) if variant.manifest else "",
        memory=admin_pb2.MemoryUsage(
            parameter_bytes=memory.parameter_bytes,
            shared_bytes=memory.shared_bytes,
            own_bytes=memory.own_bytes,
        ),
        error=variant.error,
        is_default=variant.name == registry.default_name,
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
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidRequest(f"retrieval.{where}" if where else "retrieval", first["msg"]) from None


def retrieved_passages(index: str, hits: Sequence[Hit]) -> list[inference_pb2.RetrievedPassage]:
    return [
        inference_pb2.RetrievedPassage(id=h.passage.id, doc_id=h.passage.doc_id, score=h.score, index=index)
        for h in hits
    ]


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
