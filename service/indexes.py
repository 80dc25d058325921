"""The named knowledge indexes a server holds: opened at start-up, searched and changed in threads.

Each configured name maps to one `KnowledgeIndex` (docs/retrieval.md). Embedding a query or a
batch of documents runs in a worker thread, so it never blocks the event loop that serves other
requests; the index keeps every search on one whole snapshot while a write publishes the next.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from lethe.edits.errors import LetheError, shown
from lethe.retrieval.documents import Document
from lethe.retrieval.errors import NotFound
from lethe.retrieval.index import ChangeResult, IndexInfo, KnowledgeIndex
from lethe.retrieval.inputs import text_problem
from lethe.retrieval.limits import SearchLimits
from lethe.retrieval.passages import Hit
from lethe.retrieval.store import MetadataFilter
from lethe.service.config import IndexSpec
from lethe.service.errors import IndexOpenFailed, IndexUnavailable, InvalidRequest, UnknownIndex
from lethe.service.metrics import Metrics

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def open_index(spec: IndexSpec) -> KnowledgeIndex:
    """Open the index at `spec.path` with its search limits; a demo spec builds the shipped fact
    corpus there first if the directory holds no index yet."""
    from lethe.retrieval.index import embedder_for

    path = spec.path.expanduser()
    if spec.demo:
        from lethe.retrieval.demo import open_or_build_demo_index
        from lethe.retrieval.embedding import load_embedder

        embedder = load_embedder(spec.embedder)
        open_or_build_demo_index(path, embedder, progress=_log_progress(spec.name))
    else:
        if not path.is_dir():
            raise NotFound(f"no index directory at {path}; build one with `lethe index build --out {path}`")
        embedder = embedder_for(path, spec.embedder)
    return KnowledgeIndex.open(path, embedder, limits=spec.limits)


def _log_progress(name: str) -> Progress:
    reported = [0]

    def progress(done: int, total: int) -> None:
        step = max(total // 10, 1)
        if done >= total or done - reported[0] >= step:
            reported[0] = done
            log.info("building index %s: %d/%d passages embedded", name, done, total)

    return progress


class IndexRegistry:
    """Configured indexes by name. Unknown names are NOT_FOUND; an index that is still opening
    (the demo corpus is embedded on first start) is UNAVAILABLE until it is ready."""

    def __init__(self, specs: Sequence[IndexSpec], metrics: Metrics) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._open: dict[str, KnowledgeIndex] = {}
        self._metrics = metrics
        self.closing = False

    @property
    def names(self) -> list[str]:
        return list(self._specs)

    def spec(self, name: str) -> IndexSpec:
        spec = self._specs.get(name)
        if spec is None:
            configured = ", ".join(self._specs) or "none"
            raise UnknownIndex(f"unknown index {shown(name)} (configured: {configured})")
        return spec

    async def open_all(self) -> None:
        """Open every configured index, one after another; the first failure is raised."""
        for spec in self._specs.values():
            started = time.perf_counter()
            try:
                index = await asyncio.to_thread(open_index, spec)
            except (LetheError, OSError) as error:
                raise IndexOpenFailed(f"index {spec.name!r}: {error}") from error
            self._open[spec.name] = index
            self._record_size(spec.name, index)
            info = index.info()
            log.info(
                "index %s ready: %d passages, %s, %s (%.1f s)",
                spec.name,
                info.passages,
                info.index_kind,
                info.embedder,
                time.perf_counter() - started,
            )

    @property
    def ready(self) -> bool:
        return len(self._open) == len(self._specs)

    def get(self, name: str) -> KnowledgeIndex:
        if self.closing:
            raise IndexUnavailable("the server is shutting down; retry on another replica")
        self.spec(name)
        index = self._open.get(name)
        if index is None:
            raise IndexUnavailable(f"index {name!r} is still opening; retry shortly")
        return index

    def limits(self, name: str) -> SearchLimits:
        """The search limits of the index `name` (NOT_FOUND or UNAVAILABLE as `get`)."""
        return self.get(name).limits

    # -- reading ------------------------------------------------------------------------------
    async def search(
        self,
        name: str,
        query: str,
        k: int,
        where: MetadataFilter | None = None,
        *,
        k_field: str = "k",
        query_field: str = "query",
    ) -> list[Hit]:
        """The top-k passages for `query` (embedded in a worker thread). Bad input is refused with
        the request field it came from (`k_field`, `query_field`)."""
        if not name:
            raise InvalidRequest("index", "must name an index")
        index = self.get(name)
        limits = index.limits
        if not query.strip():
            raise InvalidRequest(query_field, "must not be empty")
        if len(query) > limits.max_query_chars:
            raise InvalidRequest(
                query_field, f"{len(query)} characters; the limit is {limits.max_query_chars}"
            )
        problem = text_problem(query, allow_nul=True)
        if problem:
            raise InvalidRequest(query_field, problem)
        if not 1 <= k <= limits.max_k:
            raise InvalidRequest(k_field, f"must be from 1 to {limits.max_k}, got {k}")
        started = time.perf_counter()
        hits = await asyncio.to_thread(index.search, query, k, where or None)
        self._metrics.retrieval_latency.labels(name).observe(time.perf_counter() - started)
        self._metrics.passages_returned.labels(name).inc(len(hits))
        return hits

    def info(self, name: str) -> tuple[IndexInfo, int]:
        """The index's description and its largest k."""
        index = self.get(name)
        return index.info(), index.limits.max_k

    def infos(self) -> list[tuple[str, IndexInfo, int]]:
        return [(name, index.info(), index.limits.max_k) for name, index in self._open.items()]

    # -- writing ------------------------------------------------------------------------------
    async def add(
        self,
        name: str,
        documents: Sequence[Document],
        *,
        replace: bool = False,
        progress: Progress | None = None,
    ) -> ChangeResult:
        index = self.get(name)
        result = await asyncio.to_thread(
            lambda: index.add_documents(documents, replace=replace, progress=progress)
        )
        self._record_size(name, index)
        return result

    async def delete(self, name: str, doc_ids: Sequence[str]) -> ChangeResult:
        index = self.get(name)
        result = await asyncio.to_thread(index.delete_documents, list(doc_ids))
        self._record_size(name, index)
        return result

    def _record_size(self, name: str, index: KnowledgeIndex) -> None:
        self._metrics.index_passages.labels(name).set(index.info().passages)
