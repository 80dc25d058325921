"""`lethe index`: build, extend, prune and query a FAISS passage index.

The work is `lethe.retrieval.index_admin`'s; here are the options and the printing. Its heavy
imports (torch, transformers, faiss) happen inside the commands so `lethe --help` stays fast.
"""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

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


class _ProgressBar:
    """A tqdm bar on stderr, opened at the first report (so nothing shows before an early error)."""

    def __init__(self, description: str) -> None:
        self._description = description
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(desc=self._description, unit="passage", disable=None, file=sys.stderr)
        if self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def __enter__(self) -> "_ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


def _parse_filters(filters: list[str] | None) -> dict[str, Any] | None:
    """--filter KEY=VALUE items as a metadata filter: VALUE as JSON where it parses (numbers,
    booleans, lists), else as a string; a repeated key means any of its values."""
    from lethe.retrieval.errors import InvalidArgument

    if not filters:
        return None
    where: dict[str, Any] = {}
    for item in filters:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--filter {item!r}: expected KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if value is None or isinstance(value, dict):
            value = raw
        previous = where.get(key)
        if previous is None:
            where[key] = value
        else:
            where[key] = [*(previous if isinstance(previous, list) else [previous]), value]
    return where


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
    from lethe.retrieval.index_admin import build_index

    _set_threads(threads)
    with _ProgressBar("embedding") as progress:
        info = build_index(
            docs,
            out,
            embedder=embedder,
            index_type=index_type,
            hnsw_from=hnsw_from,
            chunk_tokens=chunk_tokens,
            chunk_overlap=chunk_overlap,
            batch_size=batch_size,
            progress=progress,
        )
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
    from lethe.retrieval.index_admin import add_to_index

    _set_threads(threads)
    with _ProgressBar("embedding") as progress:
        result = add_to_index(
            index, docs, replace=replace, embedder=embedder, batch_size=batch_size, progress=progress
        )
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
    from lethe.retrieval.index_admin import delete_from_index

    result = delete_from_index(index, [*ids, *(more_ids or [])], embedder=embedder)
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
    from lethe.retrieval.index_admin import search_index, search_queries_file

    if (query is None) == (queries is None):
        raise InvalidArgument("give either a query argument or --queries FILE, not both or neither")
    where = _parse_filters(filters)
    _set_threads(threads)
    if queries is not None:
        for query_id, found in search_queries_file(index, queries, k, where, embedder=embedder):
            typer.echo(json.dumps({"id": query_id, "hits": [h.to_json() for h in found]}))
        return
    assert query is not None
    hits = search_index(index, query, k, where, embedder=embedder)
    if as_json:
        typer.echo(json.dumps({"query": query, "hits": [h.to_json() for h in hits]}))
        return
    if not hits:
        typer.echo("no passages found")
    for rank, hit in enumerate(hits, start=1):
        text = " ".join(hit.passage.text.split())
        typer.echo(f"{rank}. [{hit.score:.3f}] {hit.passage.id}  {text[:200]}")


@app.command()
def info(
    index: IndexDir,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Describe an index: embedder, index type, counts, format version, snapshot."""
    from lethe.retrieval.index_admin import describe_index

    fields = describe_index(index)
    if as_json:
        typer.echo(json.dumps(fields))
        return
    for key, value in fields.items():
        typer.echo(f"{key:>22}: {value}")
