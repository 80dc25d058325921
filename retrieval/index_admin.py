"""Operations on an index directory, as `lethe index` runs them: build, add, delete, search, describe.

Each takes paths and plain settings and returns a result (or, for a file of queries, the hits
query by query); printing is the caller's. Heavy dependencies (torch, transformers, faiss) are
imported by the modules these call, so importing this one costs little.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lethe.edits.errors import explain
from lethe.retrieval.chunking import ChunkerConfig
from lethe.retrieval.documents import load_documents, read_jsonl
from lethe.retrieval.errors import InvalidArgument
from lethe.retrieval.index import (
    ChangeResult,
    IndexInfo,
    KnowledgeIndex,
    Progress,
    embedder_for,
    read_manifest,
)
from lethe.retrieval.passages import Hit
from lethe.retrieval.snapshots import SnapshotDir
from lethe.retrieval.store import MetadataFilter
from lethe.retrieval.vectors import IndexConfig


def open_index(index: Path, embedder: str | None = None) -> KnowledgeIndex:
    """Open `index` with `embedder`, or by default the embedder its manifest names."""
    return KnowledgeIndex.open(index, embedder_for(index, embedder))


def build_index(
    docs: Path,
    out: Path,
    *,
    embedder: str | None = None,
    index_type: str = "auto",
    hnsw_from: int = 1_000_000,
    chunk_tokens: int = 200,
    chunk_overlap: int = 40,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> IndexInfo:
    """Chunk, embed and index a documents JSONL into the new directory `out`.

    The settings are checked, and the documents read, before the embedder loads.
    """
    from lethe.retrieval.embedding import load_embedder

    try:
        chunker = ChunkerConfig(max_tokens=chunk_tokens, overlap_tokens=chunk_overlap)
        config = IndexConfig(kind=index_type, hnsw_from=hnsw_from)  # type: ignore[arg-type]
    except ValidationError as error:
        raise InvalidArgument(_pydantic_message(error)) from None
    documents = load_documents(docs)
    built = KnowledgeIndex.build(
        out,
        documents,
        load_embedder(embedder),
        chunker=chunker,
        index_config=config,
        batch_size=batch_size,
        progress=progress,
    )
    return built.info()


def add_to_index(
    index: Path,
    docs: Path,
    *,
    replace: bool = False,
    embedder: str | None = None,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> ChangeResult:
    """Add a documents JSONL to `index` (replacing documents of the same id if `replace`)."""
    documents = load_documents(docs)
    opened = open_index(index, embedder)
    return opened.add_documents(documents, replace=replace, batch_size=batch_size, progress=progress)


def delete_from_index(index: Path, ids: Sequence[str], *, embedder: str | None = None) -> ChangeResult:
    """Delete documents (all their passages) by id; unknown ids are refused and nothing changes."""
    return open_index(index, embedder).delete_documents(list(ids))


def search_index(
    index: Path, query: str, k: int, where: MetadataFilter | None = None, *, embedder: str | None = None
) -> list[Hit]:
    """The `k` passages of `index` most similar to `query`."""
    return open_index(index, embedder).search(query, k, where)


def search_queries_file(
    index: Path,
    queries: Path,
    k: int,
    where: MetadataFilter | None = None,
    *,
    embedder: str | None = None,
) -> Iterator[tuple[Any, list[Hit]]]:
    """(id, hits) for each query of a JSONL of {"id", "query"}, in file order.

    The whole file, `k` and the filter are checked before the first pair is yielded, so a caller
    that prints as it goes prints nothing before an error.
    """
    ids: list[Any] = []
    texts: list[str] = []
    for where_in_file, record in read_jsonl(queries):
        if not isinstance(record, dict) or "id" not in record or not isinstance(record.get("query"), str):
            raise InvalidArgument(f'{where_in_file}: each line needs an "id" and a string "query"')
        if not record["query"].strip():
            raise InvalidArgument(f"{where_in_file}: the query is empty")
        ids.append(record["id"])
        texts.append(record["query"])
    if not texts:
        raise InvalidArgument(f"{queries}: no queries found")
    opened = open_index(index, embedder)
    opened.search_many(texts[:1], k, where)  # checks k and the filter once, up front
    return _search_in_batches(opened, ids, texts, k, where)


def _search_in_batches(
    opened: KnowledgeIndex, ids: list[Any], texts: list[str], k: int, where: MetadataFilter | None
) -> Iterator[tuple[Any, list[Hit]]]:
    step = opened.limits.max_queries
    for start in range(0, len(texts), step):
        results = opened.search_many(texts[start : start + step], k, where)
        yield from zip(ids[start : start + step], results, strict=True)


def describe_index(index: Path) -> dict[str, Any]:
    """What `lethe index info` shows: the current snapshot's manifest and its size on disk."""
    directory = SnapshotDir(index)
    name = directory.current_name()
    manifest = read_manifest(index)
    path = directory.path_of(name)
    return {
        "path": str(index),
        "snapshot": name,
        "format_version": manifest.format_version,
        "embedder": manifest.embedder.name,
        "dimension": manifest.embedder.dimension,
        "index_kind": manifest.index_kind,
        "index_setting": manifest.index_config.kind,
        "ivf_nlist": manifest.ivf_nlist,
        "documents": manifest.documents,
        "passages": manifest.passages,
        "chunk_max_tokens": manifest.chunker.max_tokens,
        "chunk_overlap_tokens": manifest.chunker.overlap_tokens,
        "created_at": manifest.created_at,
        "size_bytes": sum(f.stat().st_size for f in path.iterdir() if f.is_file()),
    }


def _pydantic_message(error: ValidationError) -> str:
    return explain(error, top="value")
