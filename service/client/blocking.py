"""The blocking client of Lethe's gRPC API (`LetheClient`) and the plain types it returns.

Imported as `lethe.client`; it needs grpc and the generated messages only, never torch,
transformers, faiss or numpy.
"""

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from lethe.service.gen.lethe.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    inference_pb2,
    inference_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)


@dataclass(frozen=True)
class Completion:
    variant: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    request_id: str
    # Passages retrieved into the prompt (id, doc_id, score, index), best first.
    passages: tuple[inference_pb2.RetrievedPassage, ...] = field(default=())


@dataclass(frozen=True)
class VariantInfo:
    name: str
    status: str
    engine: str
    parent: str
    is_default: bool
    # The variant whose engine this alias serves, and the retrieval policy (None: no retrieval).
    alias_of: str = ""
    retrieval: common_pb2.RetrievalPolicy | None = None


def status_name(value: int) -> str:
    return common_pb2.VariantStatus.Name(value).removeprefix("VARIANT_STATUS_").lower()


class LetheClient:
    """Blocking client. Tokens go in `authorization: Bearer` metadata; TLS when `root_cert`."""

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        token: str | None = None,
        admin_token: str | None = None,
        root_cert: Path | None = None,
        timeout: float | None = None,
    ) -> None:
        if root_cert is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_cert.read_bytes())
            self._channel = grpc.secure_channel(target, credentials)
        else:
            self._channel = grpc.insecure_channel(target)
        self._inference = inference_pb2_grpc.InferenceStub(self._channel)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)
        self._retrieval = retrieval_pb2_grpc.RetrievalStub(self._channel)
        self._retrieval_admin = retrieval_pb2_grpc.RetrievalAdminStub(self._channel)
        self._token = token
        self._admin_token = admin_token if admin_token is not None else token
        self.timeout = timeout

    def __enter__(self) -> "LetheClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    @staticmethod
    def _metadata(token: str | None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"),) if token else ()

    @staticmethod
    def request(
        prompt: str,
        *,
        variant: str = "",
        max_tokens: int = 0,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int = 0,
        seed: int | None = None,
        stop: list[str] | tuple[str, ...] = (),
        request_id: str = "",
        retrieval: bool | None = None,
        retrieval_k: int = 0,
        retrieval_query: str = "",
    ) -> inference_pb2.GenerateRequest:
        """`retrieval` None follows the variant's policy; `retrieval_k` 0 keeps its k;
        `retrieval_query` empty searches for the end of the prompt."""
        sampling = inference_pb2.SamplingParams(max_tokens=max_tokens, top_k=top_k, stop=stop)
        if temperature is not None:
            sampling.temperature = temperature
        if top_p is not None:
            sampling.top_p = top_p
        if seed is not None:
            sampling.seed = seed
        request = inference_pb2.GenerateRequest(
            variant=variant,
            prompt=prompt,
            sampling=sampling,
            request_id=request_id,
            retrieval_k=retrieval_k,
            retrieval_query=retrieval_query,
        )
        if retrieval is not None:
            request.retrieval = retrieval
        return request

    def generate(self, prompt: str, **params) -> Completion:
        reply = self._inference.Generate(
            self.request(prompt, **params),
            timeout=self.timeout,
            metadata=self._metadata(self._token),
        )
        return Completion(
            variant=reply.variant,
            text=reply.text,
            finish_reason=reply.finish_reason,
            prompt_tokens=reply.usage.prompt_tokens,
            completion_tokens=reply.usage.completion_tokens,
            request_id=reply.request_id,
            passages=tuple(reply.passages),
        )

    def stream(self, prompt: str, **params) -> Iterator[inference_pb2.GenerateStreamResponse]:
        """Stream messages; each has a `text` delta, the last one `finish_reason` and `usage`."""
        return self._inference.GenerateStream(
            self.request(prompt, **params),
            timeout=self.timeout,
            metadata=self._metadata(self._token),
        )

    def list_variants(self) -> list[VariantInfo]:
        reply = self._inference.ListVariants(
            inference_pb2.ListVariantsRequest(),
            timeout=self.timeout,
            metadata=self._metadata(self._token),
        )
        return [
            VariantInfo(
                v.name,
                status_name(v.status),
                v.engine,
                v.parent,
                v.is_default,
                v.alias_of,
                v.retrieval if v.HasField("retrieval") else None,
            )
            for v in reply.variants
        ]

    def load_variant(
        self,
        name: str,
        *,
        checkpoint: str | Path | None = None,
        model: str | None = None,
        alias_of: str | None = None,
        engine: str = "",
        engine_options: dict[str, str] | None = None,
        wait: bool = True,
        retrieval: Mapping[str, Any] | None = None,
    ) -> admin_pb2.VariantDetails:
        """Load from a checkpoint or a model, or serve `alias_of`'s engine under `name`;
        `retrieval` is a policy ({"index": ..., "k": ..., ...})."""
        request = admin_pb2.LoadVariantRequest(
            name=name, engine=engine, engine_options=engine_options or {}, wait=wait
        )
        if checkpoint is not None:
            request.checkpoint = str(checkpoint)
        if model is not None:
            request.model = model
        if alias_of is not None:
            request.alias_of = alias_of
        if retrieval is not None:
            request.retrieval.CopyFrom(common_pb2.RetrievalPolicy(**retrieval))
        return self._admin.LoadVariant(
            request, timeout=self.timeout, metadata=self._metadata(self._admin_token)
        ).variant

    def unload_variant(self, name: str) -> None:
        self._admin.UnloadVariant(
            admin_pb2.UnloadVariantRequest(name=name),
            timeout=self.timeout,
            metadata=self._metadata(self._admin_token),
        )

    def get_variant(self, name: str) -> admin_pb2.VariantDetails:
        return self._admin.GetVariant(
            admin_pb2.GetVariantRequest(name=name),
            timeout=self.timeout,
            metadata=self._metadata(self._admin_token),
        )

    # -- retrieval ----------------------------------------------------------------------------
    def search(
        self, index: str, query: str, *, k: int = 5, where: Mapping[str, Any] | None = None
    ) -> list[retrieval_pb2.Passage]:
        """The k passages of `index` most similar to `query`; `where` filters on metadata."""
        request = retrieval_pb2.SearchRequest(
            index=index, query=query, k=k, filter_json=json.dumps(where) if where else ""
        )
        reply = self._retrieval.Search(request, timeout=self.timeout, metadata=self._metadata(self._token))
        return list(reply.passages)

    def index_stats(self, index: str) -> retrieval_pb2.IndexInfo:
        return self._retrieval.IndexStats(
            retrieval_pb2.IndexStatsRequest(index=index),
            timeout=self.timeout,
            metadata=self._metadata(self._token),
        )

    def list_indexes(self) -> list[retrieval_pb2.IndexInfo]:
        return list(
            self._retrieval.ListIndexes(
                retrieval_pb2.ListIndexesRequest(), timeout=self.timeout, metadata=self._metadata(self._token)
            ).indexes
        )

    def add_documents(
        self,
        index: str,
        documents: Iterable[Mapping[str, Any]],
        *,
        replace: bool = False,
        batch: int = 256,
        progress=None,
    ) -> retrieval_pb2.AddDocumentsResponse:
        """Index documents (dicts with `id`, `text`, optional `title`, `source`, `metadata`), sent
        `batch` per message; `progress(embedded, total)` is called while the server embeds.
        Returns the final message (counts and the index's new stats)."""

        def messages() -> Iterator[retrieval_pb2.AddDocumentsRequest]:
            pending: list[retrieval_pb2.Document] = []
            first = True
            for document in documents:
                pending.append(_document(document))
                if len(pending) >= batch:
                    yield retrieval_pb2.AddDocumentsRequest(index=index, documents=pending, replace=replace)
                    pending, first = [], False
            if pending or first:
                yield retrieval_pb2.AddDocumentsRequest(index=index, documents=pending, replace=replace)

        last = None
        for message in self._retrieval_admin.AddDocuments(
            messages(), timeout=self.timeout, metadata=self._metadata(self._admin_token)
        ):
            if message.done:
                last = message
            elif progress is not None:
                progress(message.passages_embedded, message.passages_total)
        assert last is not None, "the server closed the stream without a result"
        return last

    def delete_documents(self, index: str, ids: Iterable[str]) -> retrieval_pb2.DeleteDocumentsResponse:
        return self._retrieval_admin.DeleteDocuments(
            retrieval_pb2.DeleteDocumentsRequest(index=index, ids=list(ids)),
            timeout=self.timeout,
            metadata=self._metadata(self._admin_token),
        )


def _document(document: Mapping[str, Any]) -> retrieval_pb2.Document:
    metadata = document.get("metadata")
    return retrieval_pb2.Document(
        id=str(document.get("id", "")),
        text=str(document.get("text", "")),
        title=document.get("title") or "",
        source=document.get("source") or "",
        metadata_json=json.dumps(metadata) if metadata else "",
    )
