"""`lethe index`: build, extend, prune and query a FAISS passage index.

Heavy imports (torch, transformers, faiss) happen inside the commands so `lethe --help` stays fast.
"""

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from lethe.retrieval.index import KnowledgeIndex, Progress

app = typer.Typer(
    help="Build and query retrieval indexes (FAISS vectors + SQLite passages).",
    no_args_is_help=True,
)

IndexDir = Annotated[Path, typer.Option("--index", help="Index directory (made by `lethe index build`).")]
EmbedderOption = Annotated[
    str | None,
    typer.Option(
        "--embedder",
        help="Embedder: 'all-MiniLM-L6-v2' (packaged) or a model directory. "
        "Default: the one the index was built with (for build: all-MiniLM-L6-v2).",
    ),
]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Passages embedded per forward pass.")]
Threads = Annotated[
    int | None,
    typer.Option("--threads", min=1, help="torch threads for embedding (default: torch's choice)."),
]
QueryThreads = Annotated[
    int,
    typer.Option(
        "--threads",
        min=1,
        help="torch threads for embedding queries; 1 is fastest for short queries on a busy host.",
    ),
]


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _progress_bar(description: str) -> tuple["Progress", Any]:
    from tqdm import tqdm

    bar = tqdm(desc=description, unit="passage", disable=None, file=sys.stderr)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return update, bar


def _parse_filters(filters: list[str] | None) -> dict[str, Any] | None:
    from lethe.retrieval.errors import InvalidArgument

    if not filters:
        return None
    where: dict[str, Any] = {}
    for item in filters:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--filter {item!r}: expected KEY=VALUE")
        try:
            value = json.loads(raw)  # numbers, booleans and lists as JSON; anything else a string
        except json.JSONDecodeError:
            value = raw
        if value is None or isinstance(value, dict):
            value = raw
        previous = where.get(key)
        if previous is None:
            where[key] = value
        else:  # repeating a key means any of the values
            where[key] = [*(previous if isinstance(previous, list) else [previous]), value]
    return where


def _open(index: Path, embedder: str | None) -> "KnowledgeIndex":
    from lethe.retrieval.index import KnowledgeIndex, embedder_for

    return KnowledgeIndex.open(index, embedder_for(index, embedder))


@app.command()
def build(
    docs: Annotated[
        Path, typer.Option("--docs", help="Documents JSONL: id, text, [title, source, metadata].")
    ],
    out: Annotated[Path, typer.Option("--out", help="New index directory (must not exist or be empty).")],
    embedder: EmbedderOption = None,
    index_type: Annotated[
        str,
        typer.Option(
            "--index-type",
            help="flat (exact), hnsw, ivf, or auto (flat until --hnsw-from vectors, then HNSW).",
        ),
    ] = "auto",
    hnsw_from: Annotated[
        int, typer.Option("--hnsw-from", min=1, help="With --index-type auto: switch to HNSW here.")
    ] = 1_000_000,
    chunk_tokens: Annotated[
        int, typer.Option("--chunk-tokens", min=1, help="Most embedder tokens per passage.")
    ] = 200,
    chunk_overlap: Annotated[
        int, typer.Option("--chunk-overlap", min=0, help="Tokens shared by consecutive passages.")
    ] = 40,
    batch_size: BatchSize = 32,
    threads: Threads = None,
) -> None:
    """Chunk, embed and index a documents file into a new index directory."""
    from pydantic import ValidationError

    from lethe.retrieval.chunking import ChunkerConfig
    from lethe.retrieval.documents import load_documents
    from lethe.retrieval.embedding import load_embedder
    from lethe.retrieval.errors import InvalidArgument
    from lethe.retrieval.index import KnowledgeIndex
    from lethe.retrieval.vectors import IndexConfig

    try:
        chunker = ChunkerConfig(max_tokens=chunk_tokens, overlap_tokens=chunk_overlap)
        config = IndexConfig(kind=index_type, hnsw_from=hnsw_from)  # type: ignore[arg-type]
    except ValidationError as error:
        raise InvalidArgument(_pydantic_message(error)) from None
    documents = load_documents(docs)
    _set_threads(threads)
    model = load_embedder(embedder)
    update, bar = _progress_bar("embedding")
    try:
        built = KnowledgeIndex.build(
            out,
            documents,
            model,
            chunker=chunker,
            index_config=config,
            batch_size=batch_size,
            progress=update,
        )
    finally:
        bar.close()
    info = built.info()
    typer.echo(
        f"built {out}: {info.documents} documents, {info.passages} passages, "
        f"{info.index_kind} index, snapshot {info.snapshot}"
    )


@app.command()
def add(
    index: IndexDir,
    docs: Annotated[Path, typer.Option("--docs", help="Documents JSONL to add.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace documents whose id is already indexed.")
    ] = False,
    embedder: EmbedderOption = None,
    batch_size: BatchSize = 32,
    threads: Threads = None,
) -> None:
    """Add documents to an index; readers keep the old snapshot until the new one is complete."""
    from lethe.retrieval.documents import load_documents

    documents = load_documents(docs)
    _set_threads(threads)
    opened = _open(index, embedder)
    update, bar = _progress_bar("embedding")
    try:
        result = opened.add_documents(documents, replace=replace, batch_size=batch_size, progress=update)
    finally:
        bar.close()
    typer.echo(
        f"added {result.documents_added} documents ({result.passages_added} passages)"
        + (f", replaced {result.documents_deleted}" if result.documents_deleted else "")
        + f"; snapshot {result.snapshot}"
    )


@app.command()
def delete(
    index: IndexDir,
    ids: Annotated[
        list[str], typer.Option("--ids", help="Document ids to delete: --ids A B C or --ids A --ids B.")
    ],
    more_ids: Annotated[
        list[str] | None, typer.Argument(help="Further document ids (after --ids).", show_default=False)
    ] = None,
    embedder: EmbedderOption = None,
) -> None:
    """Delete documents (all their passages). Unknown ids are refused and nothing changes."""
    result = _open(index, embedder).delete_documents([*ids, *(more_ids or [])])
    typer.echo(
        f"deleted {result.documents_deleted} documents ({result.passages_deleted} passages); "
        f"snapshot {result.snapshot}"
    )


@app.command()
def search(
    index: IndexDir,
    query: Annotated[str | None, typer.Argument(help="Text to search for (or use --queries).")] = None,
    queries: Annotated[
        Path | None,
        typer.Option("--queries", help='JSONL of {"id", "query"}; one JSON line out per query.'),
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Passages to return per query.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of text.")] = False,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="KEY=VALUE metadata filter (doc_id, source, title or a metadata key); "
            "repeat a key for any-of.",
        ),
    ] = None,
    embedder: EmbedderOption = None,
    threads: QueryThreads = 1,
) -> None:
    """Find the passages most similar to a query, or to each query of a JSONL file."""
    from lethe.retrieval.errors import InvalidArgument

    if (query is None) == (queries is None):
        raise InvalidArgument("give either a query argument or --queries FILE, not both or neither")
    where = _parse_filters(filters)
    _set_threads(threads)
    if queries is not None:
        _search_file(index, queries, k, where, embedder)
        return
    assert query is not None
    opened = _open(index, embedder)
    hits = opened.search(query, k, where)
    if as_json:
        typer.echo(json.dumps({"query": query, "hits": [h.to_json() for h in hits]}))
        return
    if not hits:
        typer.echo("no passages found")
    for rank, hit in enumerate(hits, start=1):
        text = " ".join(hit.passage.text.split())
        typer.echo(f"{rank}. [{hit.score:.3f}] {hit.passage.id}  {text[:200]}")


def _search_file(
    index: Path, queries: Path, k: int, where: dict[str, Any] | None, embedder: str | None
) -> None:
    from lethe.retrieval.documents import read_jsonl
    from lethe.retrieval.errors import InvalidArgument

    records = read_jsonl(queries)
    ids: list[Any] = []
    texts: list[str] = []
    for where_in_file, record in records:
        if not isinstance(record, dict) or "id" not in record or not isinstance(record.get("query"), str):
            raise InvalidArgument(f'{where_in_file}: each line needs an "id" and a string "query"')
        if not record["query"].strip():
            raise InvalidArgument(f"{where_in_file}: the query is empty")
        ids.append(record["id"])
        texts.append(record["query"])
    if not texts:
        raise InvalidArgument(f"{queries}: no queries found")
    opened = _open(index, embedder)
    # Validate k and the queries once up front, so no partial output precedes an error.
    opened.search_many(texts[:1], k, where)
    step = opened.limits.max_queries
    for start in range(0, len(texts), step):
        results = opened.search_many(texts[start : start + step], k, where)
        for query_id, hits in zip(ids[start : start + step], results, strict=True):
            typer.echo(json.dumps({"id": query_id, "hits": [h.to_json() for h in hits]}))


@app.command()
def info(
    index: IndexDir,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Describe an index: embedder, index type, counts, format version, snapshot."""
    from lethe.retrieval.index import read_manifest
    from lethe.retrieval.snapshots import SnapshotDir

    directory = SnapshotDir(index)
    name = directory.current_name()
    manifest = read_manifest(index)
    path = directory.path_of(name)
    fields = {
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
    if as_json:
        typer.echo(json.dumps(fields))
        return
    for key, value in fields.items():
        typer.echo(f"{key:>22}: {value}")


def _pydantic_message(error: Any) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'value'}: {item['msg']}" for item in error.errors()
    )
