"""`lethe.v1.Retrieval` (search, stats: inference token) and `lethe.v1.RetrievalAdmin` (writes:
admin token) over the server's named indexes."""

import asyncio
import threading
from typing import Any

from lethe.edits.errors import shown
from lethe.retrieval.documents import Document, parse_documents, parse_metadata_json
from lethe.retrieval.filters import parse_filter_json
from lethe.retrieval.limits import DocumentLimits
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
        # The filter is read with the index's limits, so an unknown index is refused first.
        where = parse_filter_json(request.filter_json, self._indexes.limits(_index_name(request.index)))
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
    def __init__(
        self, indexes: IndexRegistry, max_documents: int, document_limits: DocumentLimits | None = None
    ) -> None:
        self._indexes = indexes
        self._max_documents = max_documents
        self._limits = document_limits or DocumentLimits()

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
                raise InvalidRequest(
                    "index", f"one call adds to one index: {shown(name)}, then {shown(message.index)}"
                )
            for document in message.documents:
                if len(records) >= self._max_documents:
                    raise InvalidRequest(
                        "documents", f"more than {self._max_documents} in one call; split them up"
                    )
                where = f"documents[{len(records)}]"
                records.append((where, _document_record(document, where, self._limits)))
        if first:
            raise InvalidRequest("index", "no request message received")
        if not records:
            raise InvalidRequest("documents", "no documents given")
        return name, replace, parse_documents(records, self._limits, field_paths=True)

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


def _document_record(document: retrieval_pb2.Document, where: str, limits: DocumentLimits) -> dict[str, Any]:
    """A protobuf document as the dict `parse_documents` validates (empty optional fields dropped)."""
    record: dict[str, Any] = {"id": document.id, "text": document.text}
    if document.title:
        record["title"] = document.title
    if document.source:
        record["source"] = document.source
    if document.metadata_json:
        record["metadata"] = parse_metadata_json(document.metadata_json, f"{where}.metadata_json", limits)
    return record
