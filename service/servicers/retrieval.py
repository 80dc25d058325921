"""`lethe.v1.Retrieval` (search, stats: inference token) and `lethe.v1.RetrievalAdmin` (writes:
admin token) over the server's named indexes."""

import asyncio
import json
import threading
from typing import Any

from lethe.retrieval.documents import Document, parse_documents
from lethe.retrieval.store import MetadataFilter
from lethe.service.errors import InvalidRequest
from lethe.service.gen.lethe.v1 import retrieval_pb2, retrieval_pb2_grpc
from lethe.service.indexes import IndexRegistry
from lethe.service.servicers.convert import index_info_to_proto, passage_to_proto


class _Abandoned(Exception):
    """The client went away while its documents were being embedded."""


class RetrievalServicer(retrieval_pb2_grpc.RetrievalServicer):
    def __init__(self, indexes: IndexRegistry) -> None:
        self._indexes = indexes

    async def Search(self, request, context):
        where = parse_filter(request.filter_json)
        hits = await self._indexes.search(request.index, request.query, request.k, where)
        return retrieval_pb2.SearchResponse(index=request.index, passages=[passage_to_proto(h) for h in hits])

    async def IndexStats(self, request, context):
        info, max_k = self._indexes.info(_index_name(request.index))
        return index_info_to_proto(request.index, info, max_k)

    async def ListIndexes(self, request, context):
        return retrieval_pb2.ListIndexesResponse(
            indexes=[index_info_to_proto(name, info, max_k) for name, info, max_k in self._indexes.infos()]
        )


class RetrievalAdminServicer(retrieval_pb2_grpc.RetrievalAdminServicer):
    def __init__(self, indexes: IndexRegistry, max_documents: int) -> None:
        self._indexes = indexes
        self._max_documents = max_documents

    async def AddDocuments(self, request_iterator, context):
        name, replace, documents = await self._collect(request_iterator)
        self._indexes.get(name)  # unknown or unavailable: refused before any embedding
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        cancelled = threading.Event()

        def progress(done: int, total: int) -> None:
            # Runs in the embedding thread: a cancelled call stops here, before anything is written.
            if cancelled.is_set():
                raise _Abandoned
            loop.call_soon_threadsafe(updates.put_nowait, (done, total))

        task = asyncio.ensure_future(self._indexes.add(name, documents, replace=replace, progress=progress))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved if abandoned
        try:
            while not task.done():
                waiter = asyncio.ensure_future(updates.get())
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if waiter.done():
                    done, total = waiter.result()
                    yield retrieval_pb2.AddDocumentsResponse(passages_embedded=done, passages_total=total)
                else:
                    waiter.cancel()
            result = task.result()
        except BaseException:
            cancelled.set()
            raise
        info, max_k = self._indexes.info(name)
        yield retrieval_pb2.AddDocumentsResponse(
            passages_embedded=result.passages_added,
            passages_total=result.passages_added,
            done=True,
            documents_added=result.documents_added,
            passages_added=result.passages_added,
            documents_replaced=result.documents_deleted,
            passages_replaced=result.passages_deleted,
            stats=index_info_to_proto(name, info, max_k),
        )

    async def _collect(self, request_iterator) -> tuple[str, bool, list[Document]]:
        """Read the whole stream and validate every document before anything is embedded."""
        name, replace, records = "", False, []
        first = True
        async for message in request_iterator:
            if first:
                name, replace, first = _index_name(message.index), message.replace, False
            elif message.index and message.index != name:
                raise InvalidRequest("index", f"one call adds to one index: {name!r}, then {message.index!r}")
            for document in message.documents:
                if len(records) >= self._max_documents:
                    raise InvalidRequest(
                        "documents", f"more than {self._max_documents} in one call; split them up"
                    )
                records.append((f"documents[{len(records)}]", _document_record(document, len(records))))
        if first:
            raise InvalidRequest("index", "no request message received")
        if not records:
            raise InvalidRequest("documents", "no documents given")
        return name, replace, parse_documents(records)

    async def DeleteDocuments(self, request, context):
        if not request.ids:
            raise InvalidRequest("ids", "give at least one document id")
        if any(not i for i in request.ids):
            raise InvalidRequest("ids", "document ids must not be empty")
        name = _index_name(request.index)
        result = await self._indexes.delete(name, list(request.ids))
        info, max_k = self._indexes.info(name)
        return retrieval_pb2.DeleteDocumentsResponse(
            documents_deleted=result.documents_deleted,
            passages_deleted=result.passages_deleted,
            stats=index_info_to_proto(name, info, max_k),
        )


def _index_name(name: str) -> str:
    if not name:
        raise InvalidRequest("index", "must name an index")
    return name


def _document_record(document: retrieval_pb2.Document, number: int) -> dict[str, Any]:
    """A protobuf document as the dict `parse_documents` validates (empty optional fields dropped)."""
    record: dict[str, Any] = {"id": document.id, "text": document.text}
    if document.title:
        record["title"] = document.title
    if document.source:
        record["source"] = document.source
    if document.metadata_json:
        record["metadata"] = _json_object(document.metadata_json, f"documents[{number}].metadata_json")
    return record


def parse_filter(filter_json: str) -> MetadataFilter | None:
    """The search filter: a JSON object of keys to scalars or non-empty lists of scalars."""
    if not filter_json:
        return None
    where = _json_object(filter_json, "filter_json")
    for key, value in where.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str | int | float | bool) for v in values):
            raise InvalidRequest(
                "filter_json", f"{key!r} must be a string, number, boolean or a non-empty list of them"
            )
    return where


def _json_object(text: str, field: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidRequest(field, f"not valid JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise InvalidRequest(field, "must be a JSON object")
    return value
