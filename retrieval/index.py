"""The knowledge index: documents in, passages with scores out.

`KnowledgeIndex` ties the chunker, the embedder, the FAISS vectors and the SQLite passage store
to one snapshot directory (see `retrieval.snapshots`). Reads use the snapshot loaded last and
never see a half-written one; writes publish a new snapshot and switch to it.
"""

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lethe.edits.errors import shown
from lethe.retrieval.chunking import ChunkerConfig, chunk_documents
from lethe.retrieval.documents import Document
from lethe.retrieval.embedding import DEFAULT_EMBEDDER, Embedder, load_embedder
from lethe.retrieval.errors import (
    AlreadyExists,
    EmbedderMismatch,
    IndexCorrupt,
    InvalidArgument,
    NotFound,
)
from lethe.retrieval.filters import check_filter
from lethe.retrieval.inputs import text_problem
from lethe.retrieval.limits import SearchLimits
from lethe.retrieval.manifest import PASSAGES, VECTORS, EmbedderInfo, Manifest
from lethe.retrieval.passages import Hit, Passage
from lethe.retrieval.snapshots import LOCK, SNAPSHOTS, SnapshotDir
from lethe.retrieval.store import MetadataFilter, PassageReader, PassageWriter, create_database
from lethe.retrieval.vectors import IndexConfig, VectorIndex

Progress = Callable[[int, int], None]

__all__ = ["ChangeResult", "IndexInfo", "KnowledgeIndex", "Progress", "SearchLimits"]


@dataclass(frozen=True)
class IndexInfo:
    path: str
    snapshot: str
    format_version: int
    embedder: str
    dimension: int
    index_kind: str
    documents: int
    passages: int
    vectors: int
    ivf_nlist: int | None
    chunk_max_tokens: int
    chunk_overlap_tokens: int
    created_at: str
    size_bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChangeResult:
    """What a write did, and the snapshot it published."""

    snapshot: str
    documents_added: int = 0
    passages_added: int = 0
    documents_deleted: int = 0
    passages_deleted: int = 0


@dataclass(frozen=True)
class _Snapshot:
    name: str
    path: Path
    manifest: Manifest
    vectors: VectorIndex
    store: PassageReader


def _load_snapshot(directory: SnapshotDir, name: str) -> _Snapshot:
    path = directory.path_of(name)
    manifest = Manifest.read(path)
    vectors = VectorIndex.load(
        path / VECTORS, manifest.index_kind, manifest.embedder.dimension, manifest.index_config
    )
    store = PassageReader(path / PASSAGES)
    if vectors.count != manifest.passages:
        raise IndexCorrupt(f"snapshot {path} holds {vectors.count} vectors but {manifest.passages} passages")
    return _Snapshot(name, path, manifest, vectors, store)


def _load_current(directory: SnapshotDir) -> _Snapshot:
    """Load the live snapshot. If writers publish and sweep it between reading CURRENT and
    opening its files, read CURRENT again rather than fail."""
    for _ in range(5):
        name = directory.current_name()
        try:
            return _load_snapshot(directory, name)
        except (IndexCorrupt, OSError):
            if directory.current_name() == name:
                raise
    return _load_snapshot(directory, directory.current_name())


def read_manifest(root: Path) -> Manifest:
    """The live snapshot's manifest, without loading the index."""
    directory = SnapshotDir(Path(root))
    return Manifest.read(directory.path_of(directory.current_name()))


def embedder_for(root: Path, spec: str | None = None) -> Embedder:
    """The embedder to open `root` with: `spec` if given, else the one the index names."""
    if spec is not None:
        return load_embedder(spec)
    info = read_manifest(root).embedder
    if info.name == DEFAULT_EMBEDDER or not info.source:
        return load_embedder(None if info.name == DEFAULT_EMBEDDER else info.name)
    return load_embedder(info.source)


def _embedder_info(embedder: Embedder) -> EmbedderInfo:
    model_dir = getattr(embedder, "model_dir", None)
    source = None if embedder.name == DEFAULT_EMBEDDER or model_dir is None else str(model_dir)
    return EmbedderInfo(name=embedder.name, dimension=embedder.dimension, source=source)


class KnowledgeIndex:
    """A searchable, updatable passage index in one directory. Thread-safe: searches run against
    the snapshot current when they start; writes are serialised (also across processes)."""

    def __init__(
        self,
        directory: SnapshotDir,
        embedder: Embedder,
        snapshot: _Snapshot,
        limits: SearchLimits,
        keep_snapshots: int,
    ):
        self._directory = directory
        self._embedder = embedder
        self._snapshot = snapshot
        self._limits = limits
        self._keep = keep_snapshots
        self._write_lock = threading.Lock()

    # --- opening -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        root: Path,
        embedder: Embedder,
        *,
        limits: SearchLimits | None = None,
        keep_snapshots: int = 3,
    ) -> "KnowledgeIndex":
        """Open an existing index; refuses an embedder other than the one it was built with."""
        directory = SnapshotDir(Path(root))
        if not Path(root).is_dir():
            raise NotFound(f"no index at {root}: the directory does not exist")
        snapshot = _load_current(directory)
        _check_embedder(snapshot.manifest.embedder, embedder, Path(root))
        return cls(directory, embedder, snapshot, limits or SearchLimits(), keep_snapshots)

    @classmethod
    def build(
        cls,
        root: Path,
        documents: Sequence[Document],
        embedder: Embedder,
        *,
        chunker: ChunkerConfig | None = None,
        index_config: IndexConfig | None = None,
        limits: SearchLimits | None = None,
        keep_snapshots: int = 3,
        batch_size: int = 32,
        progress: Progress | None = None,
    ) -> "KnowledgeIndex":
        """Create a new index at `root` (which must not hold an index or other files)."""
        root = Path(root)
        if root.exists() and not _is_empty_or_abandoned(root):
            raise AlreadyExists(
                f"{root} already exists and is not empty; use `lethe index add` to extend an "
                "index, or choose a new directory"
            )
        chunker = chunker or ChunkerConfig()
        index_config = index_config or IndexConfig()
        directory = SnapshotDir(root)
        passages, vectors = _prepare(documents, embedder, chunker, batch_size, progress)
        with directory.write_lock(), directory.staging() as staged:
            if directory.exists():
                raise AlreadyExists(f"{root} already holds an index")
            create_database(staged / PASSAGES)
            writer = PassageWriter(staged / PASSAGES)
            try:
                keys = writer.insert(documents, passages)
                counts = writer.counts()
                writer.commit()
            except BaseException:
                writer.abort()
                raise
            index = VectorIndex.create(embedder.dimension, index_config, training=vectors)
            index.add(keys, vectors)
            manifest = Manifest(
                embedder=_embedder_info(embedder),
                index_kind=index.kind,
                index_config=index_config,
                chunker=chunker,
                documents=counts[0],
                passages=counts[1],
                ivf_nlist=index.nlist,
            )
            index.save(staged / VECTORS)
            manifest.write(staged)
            name = directory.publish(staged)
        snapshot = _Snapshot(
            name, directory.path_of(name), manifest, index, PassageReader(directory.path_of(name) / PASSAGES)
        )
        return cls(directory, embedder, snapshot, limits or SearchLimits(), keep_snapshots)

    # --- reading -----------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    @property
    def path(self) -> Path:
        return self._directory.root

    @property
    def limits(self) -> SearchLimits:
        return self._limits

    def refresh(self) -> bool:
        """Switch to the newest published snapshot (written by another process); True if it
        changed. Searches already running finish on the snapshot they started with."""
        if self._directory.current_name() == self._snapshot.name:
            return False
        snapshot = _load_current(self._directory)
        _check_embedder(snapshot.manifest.embedder, self._embedder, self.path)
        self._snapshot = snapshot
        return True

    def info(self) -> IndexInfo:
        snapshot = self._snapshot
        manifest = snapshot.manifest
        size = sum(f.stat().st_size for f in snapshot.path.iterdir() if f.is_file())
        return IndexInfo(
            path=str(self.path),
            snapshot=snapshot.name,
            format_version=manifest.format_version,
            embedder=manifest.embedder.name,
            dimension=manifest.embedder.dimension,
            index_kind=manifest.index_kind,
            documents=manifest.documents,
            passages=manifest.passages,
            vectors=snapshot.vectors.count,
            ivf_nlist=manifest.ivf_nlist,
            chunk_max_tokens=manifest.chunker.max_tokens,
            chunk_overlap_tokens=manifest.chunker.overlap_tokens,
            created_at=manifest.created_at,
            size_bytes=size,
        )

    def document_ids(self) -> list[str]:
        return self._snapshot.store.document_ids()

    def search(self, query: str, k: int = 5, where: MetadataFilter | None = None) -> list[Hit]:
        """The k passages most similar to `query` (cosine), optionally filtered by metadata."""
        return self.search_many([query], k, where)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 5, where: MetadataFilter | None = None
    ) -> list[list[Hit]]:
        self._check_search(queries, k)
        if where is not None:
            check_filter(where, self._limits)
        snapshot = self._snapshot  # one snapshot for the whole call, even if a write lands
        allowed = None
        if where:
            allowed = np.asarray(snapshot.store.keys_matching(where), dtype=np.int64)
        available = snapshot.vectors.count if allowed is None else len(allowed)
        if available == 0:
            return [[] for _ in queries]
        vectors = self._embedder.embed(list(queries))
        scores, keys = snapshot.vectors.search(vectors, min(k, available), allowed)
        wanted = sorted({int(key) for key in keys.ravel() if key >= 0})
        passages = snapshot.store.passages(wanted)
        return [
            [
                Hit(passage=passages[int(key)], score=float(score))
                for score, key in zip(row_scores, row_keys, strict=True)
                if key >= 0 and int(key) in passages
            ]
            for row_scores, row_keys in zip(scores, keys, strict=True)
        ]

    def _check_search(self, queries: Sequence[str], k: int) -> None:
        limits = self._limits
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limits.max_k:
            raise InvalidArgument(f"k must be an integer from 1 to {limits.max_k}, got {k!r}")
        if not queries:
            raise InvalidArgument("no queries given")
        if len(queries) > limits.max_queries:
            raise InvalidArgument(f"{len(queries)} queries in one call; the limit is {limits.max_queries}")
        for number, query in enumerate(queries):
            label = "query" if len(queries) == 1 else f"query {number}"
            if not isinstance(query, str) or not query.strip():
                raise InvalidArgument(f"{label} is empty; give some text to search for")
            if len(query) > limits.max_query_chars:
                raise InvalidArgument(
                    f"{label} has {len(query)} characters; the limit is {limits.max_query_chars}"
                )
            problem = text_problem(query, allow_nul=True)
            if problem:
                raise InvalidArgument(f"{label} {problem}")

    # --- writing -----------------------------------------------------------------------------

    def add_documents(
        self,
        documents: Sequence[Document],
        *,
        replace: bool = False,
        batch_size: int = 32,
        progress: Progress | None = None,
    ) -> ChangeResult:
        """Index more documents. A document id already present is refused unless `replace`,
        which swaps the old passages for the new ones in the same snapshot."""
        if not documents:
            raise InvalidArgument("no documents to add")
        _check_unique(documents)
        new_ids = [d.id for d in documents]
        if not replace:
            # Refused before the slow part (embedding 2,000 documents only to refuse them took
            # 42.7 s), on the snapshot held; checked again under the lock, on the newest one.
            _refuse_existing(self._snapshot.store.existing_documents(new_ids))
        manifest = self._snapshot.manifest
        passages, vectors = _prepare(documents, self._embedder, manifest.chunker, batch_size, progress)
        with self._write_lock, self._directory.write_lock():
            base = self._latest()
            with self._directory.staging() as staged:
                writer = self._copy_store(base, staged)
                try:
                    existing = writer.existing_documents(new_ids)
                    if not replace:
                        _refuse_existing(existing)
                    removed = writer.delete_documents(existing)
                    keys = writer.insert(documents, passages)
                    counts = writer.counts()
                    writer.commit()
                except BaseException:
                    writer.abort()
                    raise
                index = base.vectors.copy()
                index.remove(removed)
                index.add(keys, vectors)
                name = self._publish(base, staged, index, counts)
        return ChangeResult(
            snapshot=name,
            documents_added=len(documents),
            passages_added=len(passages),
            documents_deleted=len(existing),
            passages_deleted=len(removed),
        )

    def delete_documents(self, doc_ids: Sequence[str]) -> ChangeResult:
        """Remove documents and all their passages. Unknown ids are refused (nothing changes)."""
        unique = list(dict.fromkeys(doc_ids))
        if not unique:
            raise InvalidArgument("no document ids to delete")
        with self._write_lock, self._directory.write_lock():
            base = self._latest()
            with self._directory.staging() as staged:
                writer = self._copy_store(base, staged)
                try:
                    existing = set(writer.existing_documents(unique))
                    missing = [i for i in unique if i not in existing]
                    if missing:
                        raise NotFound(f"{len(missing)} document id(s) not in the index: {_sample(missing)}")
                    removed = writer.delete_documents(unique)
                    counts = writer.counts()
                    writer.commit()
                except BaseException:
                    writer.abort()
                    raise
                index = base.vectors.copy()
                index.remove(removed)
                name = self._publish(base, staged, index, counts)
        return ChangeResult(snapshot=name, documents_deleted=len(unique), passages_deleted=len(removed))

    def _latest(self) -> _Snapshot:
        """The newest published snapshot (another process may have written since we loaded)."""
        self.refresh()
        return self._snapshot

    def _copy_store(self, base: _Snapshot, staged: Path) -> PassageWriter:
        import shutil

        shutil.copyfile(base.path / PASSAGES, staged / PASSAGES)
        return PassageWriter(staged / PASSAGES)

    def _publish(self, base: _Snapshot, staged: Path, index: VectorIndex, counts: tuple[int, int]) -> str:
        config = base.manifest.index_config
        if config.kind == "auto" and config.kind_for(index.count) != index.kind:
            index = index.rebuilt_as(config)
        manifest = base.manifest.model_copy(
            update={
                "index_kind": index.kind,
                "documents": counts[0],
                "passages": counts[1],
                "ivf_nlist": index.nlist,
                "created_at": Manifest.model_fields["created_at"].default_factory(),  # type: ignore[misc]
            }
        )
        index.save(staged / VECTORS)
        manifest.write(staged)
        name = self._directory.publish(staged)
        path = self._directory.path_of(name)
        self._snapshot = _Snapshot(name, path, manifest, index, PassageReader(path / PASSAGES))
        self._directory.sweep(self._keep)
        return name


def _prepare(
    documents: Sequence[Document],
    embedder: Embedder,
    chunker: ChunkerConfig,
    batch_size: int,
    progress: Progress | None,
) -> tuple[list[Passage], np.ndarray]:
    """Chunk and embed, before any lock is taken: the slow part changes nothing on disk."""
    _check_unique(documents)
    passages = chunk_documents(documents, embedder, chunker)
    chunked = {p.doc_id for p in passages}
    empty = [d.id for d in documents if d.id not in chunked]
    if empty:
        raise InvalidArgument(f"document(s) with no indexable text: {_sample(empty)}")
    vectors = embedder.embed([p.embedding_text() for p in passages], batch_size=batch_size, progress=progress)
    return passages, vectors


def _is_empty_or_abandoned(root: Path) -> bool:
    """An empty directory, or what a build that failed before publishing leaves behind."""
    if not root.is_dir():
        return False
    entries = {p.name for p in root.iterdir()}
    if not entries <= {LOCK, SNAPSHOTS}:
        return False
    snapshots = root / SNAPSHOTS
    return not snapshots.exists() or not any(p.name.isdigit() for p in snapshots.iterdir())


def _check_unique(documents: Sequence[Document]) -> None:
    seen: set[str] = set()
    duplicates = [d.id for d in documents if d.id in seen or seen.add(d.id)]  # type: ignore[func-returns-value]
    if duplicates:
        raise InvalidArgument(f"duplicate document id(s) in one request: {_sample(duplicates)}")


def _refuse_existing(existing: Sequence[str]) -> None:
    if existing:
        raise AlreadyExists(
            f"{len(existing)} document(s) already indexed: {_sample(existing)}; "
            "delete them first or pass replace"
        )


def _check_embedder(stored: EmbedderInfo, embedder: Embedder, root: Path) -> None:
    if stored.name != embedder.name or stored.dimension != embedder.dimension:
        raise EmbedderMismatch(
            f"index {root} was built with embedder {stored.name!r} ({stored.dimension}-d), not "
            f"{embedder.name!r} ({embedder.dimension}-d); open it with --embedder {stored.name} "
            "or rebuild it"
        )


def _sample(items: Sequence[str], count: int = 5) -> str:
    """The first `count` ids for a message, each cut to a readable length."""
    text = ", ".join(shown(i, 100) for i in items[:count])
    return text + (f" and {len(items) - count} more" if len(items) > count else "")
