"""The knowledge index end to end: real FAISS, real SQLite, the real packaged embedder."""

import json
import threading
from pathlib import Path

import pytest

from lethe.retrieval.documents import Document
from lethe.retrieval.embedding import TransformerEmbedder
from lethe.retrieval.errors import AlreadyExists, EmbedderMismatch, IndexCorrupt, InvalidArgument, NotFound
from lethe.retrieval.index import KnowledgeIndex, SearchLimits
from lethe.retrieval.manifest import FORMAT_VERSION, Manifest
from lethe.retrieval.snapshots import CURRENT
from lethe.retrieval.vectors import IndexConfig, VectorIndex
from tests.retrieval.conftest import CITY_DOCS, NEW_DOC


def top_doc(index: KnowledgeIndex, query: str, **kwargs: object) -> str:
    return index.search(query, 1, **kwargs)[0].passage.doc_id  # type: ignore[arg-type]


def test_build_and_search_finds_the_right_passage(city_index: KnowledgeIndex) -> None:
    hits = city_index.search("Which city is the capital of Australia?", k=4)
    assert next(h.passage.doc_id for h in hits) == "canberra"
    assert len(hits) == 4 and hits[0].score > hits[1].score
    assert top_doc(city_index, "When was the Eiffel Tower finished?") == "paris"
    assert top_doc(city_index, "highest peak in Africa") == "kilimanjaro"
    passage = hits[0].passage
    assert passage.id == "canberra#0" and passage.title == "Canberra"
    assert passage.metadata["tags"] == ["oceania", "capital"]


def test_k_larger_than_the_index_returns_everything(city_index: KnowledgeIndex) -> None:
    assert len(city_index.search("anything", k=50)) == len(CITY_DOCS)


def test_index_directory_is_self_describing(city_index: KnowledgeIndex) -> None:
    info = city_index.info()
    assert (info.embedder, info.dimension, info.index_kind) == ("all-MiniLM-L6-v2", 384, "flat")
    assert (info.documents, info.passages, info.vectors) == (4, 4, 4)
    assert info.format_version == FORMAT_VERSION
    manifest = json.loads((city_index.path / "snapshots" / info.snapshot / "manifest.json").read_text())
    assert manifest["embedder"] == {"name": "all-MiniLM-L6-v2", "dimension": 384, "source": None}
    assert manifest["documents"] == 4 and manifest["format_version"] == FORMAT_VERSION


def test_add_delete_and_reopen(city_index: KnowledgeIndex, embedder: TransformerEmbedder) -> None:
    result = city_index.add_documents([NEW_DOC])
    assert (result.documents_added, result.passages_added) == (1, 1)
    assert top_doc(city_index, "What is the capital of Canada?") == "ottawa"
    deleted = city_index.delete_documents(["paris", "potassium"])
    assert (deleted.documents_deleted, deleted.passages_deleted) == (2, 2)
    assert all(h.passage.doc_id not in {"paris", "potassium"} for h in city_index.search("Eiffel Tower", 10))

    reopened = KnowledgeIndex.open(city_index.path, embedder)
    assert reopened.document_ids() == ["canberra", "kilimanjaro", "ottawa"]
    assert reopened.info().vectors == 3
    assert top_doc(reopened, "What is the capital of Canada?") == "ottawa"
    # Passage ids of surviving documents did not move.
    assert reopened.search("capital of Australia", 1)[0].passage.id == "canberra#0"


def test_adding_an_existing_id_needs_replace(city_index: KnowledgeIndex) -> None:
    changed = Document(id="paris", text="Paris hosted the Summer Olympics in 2024.", title="Paris")
    before = city_index.info().snapshot
    with pytest.raises(AlreadyExists, match="'paris'"):
        city_index.add_documents([changed])
    assert city_index.info().snapshot == before
    result = city_index.add_documents([changed], replace=True)
    assert (result.documents_added, result.documents_deleted) == (1, 1)
    [hit] = city_index.search("Olympic Games", 1, where={"doc_id": "paris"})
    assert "Olympics" in hit.passage.text
    assert city_index.info().passages == 4


def test_metadata_filters(city_index: KnowledgeIndex) -> None:
    def ids(where: dict[str, object]) -> set[str]:
        return {h.passage.doc_id for h in city_index.search("capital city", 10, where)}  # type: ignore[arg-type]

    assert ids({"kind": "city"}) == {"paris", "canberra"}
    assert ids({"lang": "de"}) == {"kilimanjaro"}
    assert ids({"tags": "oceania"}) == {"canberra"}  # a list entry matches any element
    assert ids({"year": [2020, 2021]}) == {"potassium", "kilimanjaro"}
    assert ids({"kind": "city", "tags": "europe"}) == {"paris"}
    assert ids({"title": "Paris"}) == {"paris"}
    assert ids({"kind": "volcano"}) == set()
    with pytest.raises(InvalidArgument, match="filter"):
        city_index.search("x", 3, {"kind": {"nested": 1}})  # type: ignore[dict-item]


def test_bad_search_requests_are_refused(city_index: KnowledgeIndex) -> None:
    for query in ["", "   \n"]:
        with pytest.raises(InvalidArgument, match="empty"):
            city_index.search(query, 3)
    for k in [0, -1, 101]:
        with pytest.raises(InvalidArgument, match="k must be"):
            city_index.search("capital", k)
    with pytest.raises(InvalidArgument, match="characters"):
        city_index.search("x" * 5000, 3)


def test_search_limits_are_configurable(tmp_path: Path, embedder: TransformerEmbedder) -> None:
    KnowledgeIndex.build(tmp_path / "i", CITY_DOCS[:1], embedder)
    narrow = KnowledgeIndex.open(tmp_path / "i", embedder, limits=SearchLimits(max_k=2))
    assert len(narrow.search("Paris", 2)) == 1
    with pytest.raises(InvalidArgument, match="from 1 to 2"):
        narrow.search("Paris", 3)


def test_unknown_index_and_unknown_ids(
    tmp_path: Path, city_index: KnowledgeIndex, embedder: TransformerEmbedder
) -> None:
    with pytest.raises(NotFound):
        KnowledgeIndex.open(tmp_path / "missing", embedder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFound, match="no index"):
        KnowledgeIndex.open(tmp_path / "empty", embedder)
    before = city_index.info()
    with pytest.raises(NotFound, match="'ghost'"):
        city_index.delete_documents(["paris", "ghost"])
    assert city_index.info() == before  # paris was not deleted either
    assert top_doc(city_index, "Eiffel Tower") == "paris"


def test_build_refuses_an_existing_index(city_index: KnowledgeIndex, embedder: TransformerEmbedder) -> None:
    with pytest.raises(AlreadyExists):
        KnowledgeIndex.build(city_index.path, [NEW_DOC], embedder)
    assert city_index.info().documents == 4


class OtherEmbedder:
    """Stands in for a different model: same tokenizer, different name and dimension."""

    def __init__(self, real: TransformerEmbedder, name: str, dimension: int):
        self.name, self.dimension, self._real = name, dimension, real

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self._real.token_spans(text)

    def embed(self, texts, *, batch_size=32, progress=None):  # type: ignore[no-untyped-def]
        return self._real.embed(texts)[:, : self.dimension]


@pytest.mark.parametrize(("name", "dimension"), [("other-model", 384), ("all-MiniLM-L6-v2", 128)])
def test_mismatched_embedder_is_refused(
    city_index: KnowledgeIndex, embedder: TransformerEmbedder, name: str, dimension: int
) -> None:
    with pytest.raises(EmbedderMismatch, match="built with embedder 'all-MiniLM-L6-v2'") as error:
        KnowledgeIndex.open(city_index.path, OtherEmbedder(embedder, name, dimension))  # type: ignore[arg-type]
    assert error.value.kind == "failed_precondition"


def test_malformed_documents_leave_the_index_untouched(city_index: KnowledgeIndex) -> None:
    before = city_index.info()
    with pytest.raises(InvalidArgument, match="duplicate"):
        city_index.add_documents([NEW_DOC, NEW_DOC])
    with pytest.raises(InvalidArgument, match="no indexable text"):
        city_index.add_documents([Document(id="blank", text="\u200b")])
    assert city_index.info() == before


def test_a_failed_write_keeps_the_previous_snapshot(
    city_index: KnowledgeIndex, embedder: TransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = city_index.info()

    def crash(self: Manifest, directory: Path) -> None:
        (directory / "manifest.json").write_text("{half")
        raise OSError("disk full")

    monkeypatch.setattr(Manifest, "write", crash)
    with pytest.raises(OSError, match="disk full"):
        city_index.add_documents([NEW_DOC])
    monkeypatch.undo()
    assert (city_index.path / CURRENT).read_text().strip() == before.snapshot
    assert not list((city_index.path / "snapshots").glob(".tmp-*"))
    reopened = KnowledgeIndex.open(city_index.path, embedder)
    assert reopened.info().passages == before.passages
    assert "ottawa" not in reopened.document_ids()
    reopened.add_documents([NEW_DOC])  # and the index still takes writes
    assert top_doc(reopened, "capital of Canada") == "ottawa"


def test_a_failed_build_can_be_retried(
    tmp_path: Path, embedder: TransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(self: VectorIndex, path: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(VectorIndex, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        KnowledgeIndex.build(tmp_path / "i", CITY_DOCS, embedder)
    monkeypatch.undo()
    with pytest.raises(NotFound):
        KnowledgeIndex.open(tmp_path / "i", embedder)
    index = KnowledgeIndex.build(tmp_path / "i", CITY_DOCS, embedder)
    assert index.info().snapshot == "000001" and index.info().documents == 4
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not ours")
    with pytest.raises(AlreadyExists):
        KnowledgeIndex.build(tmp_path / "other", CITY_DOCS, embedder)


def test_readers_keep_the_old_snapshot_until_the_new_one_is_published(
    city_index: KnowledgeIndex, embedder: TransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = KnowledgeIndex.open(city_index.path, embedder)
    writing, release = threading.Event(), threading.Event()
    original_save = VectorIndex.save

    def slow_save(self: VectorIndex, path: Path) -> None:
        original_save(self, path)
        writing.set()
        assert release.wait(60)

    monkeypatch.setattr(VectorIndex, "save", slow_save)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            city_index.add_documents([NEW_DOC])
        except BaseException as error:
            errors.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert writing.wait(60)
        # Mid-write: the vectors of the new snapshot are on disk, but nobody can see them.
        for view in (reader, city_index, KnowledgeIndex.open(city_index.path, embedder)):
            assert view.info().passages == 4
            assert "ottawa" not in {h.passage.doc_id for h in view.search("capital of Canada", 10)}
        assert reader.refresh() is False
    finally:
        release.set()
        writer.join(60)
    assert not errors
    # The writer switched itself; the other reader stays on its snapshot until it refreshes.
    assert top_doc(city_index, "capital of Canada") == "ottawa"
    assert reader.info().passages == 4
    assert reader.refresh() is True
    assert top_doc(reader, "capital of Canada") == "ottawa"


def test_concurrent_searches_during_real_adds_always_see_a_whole_snapshot(
    tmp_path: Path, embedder: TransformerEmbedder
) -> None:
    # Keeping a single snapshot makes writers delete the one a reader is about to open.
    city_index = KnowledgeIndex.build(tmp_path / "busy", CITY_DOCS, embedder, keep_snapshots=1)
    extra = [
        Document(id=f"extra-{n}", text=f"Filler passage {n} about harbours and ships.") for n in range(8)
    ]
    done = threading.Event()
    seen: list[tuple[int, int, int]] = []
    problems: list[BaseException] = []

    def watch() -> None:
        try:
            while not done.is_set():
                view = KnowledgeIndex.open(city_index.path, embedder)
                info = view.info()
                hits = view.search("ships in a harbour", 50)
                seen.append((info.passages, info.vectors, len(hits)))
        except BaseException as error:
            problems.append(error)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for start in range(0, 8, 2):
            city_index.add_documents(extra[start : start + 2])
    finally:
        done.set()
        watcher.join(60)
    assert not problems
    assert seen, "the watcher never ran"
    for passages, vectors, hits in seen:
        assert passages == vectors == hits and passages in {4, 6, 8, 10, 12}


def test_hnsw_and_ivf_indexes_work_through_the_store(tmp_path: Path, embedder: TransformerEmbedder) -> None:
    for kind in ("hnsw", "ivf"):
        index = KnowledgeIndex.build(
            tmp_path / kind, CITY_DOCS, embedder, index_config=IndexConfig(kind=kind)
        )
        assert index.info().index_kind == kind
        assert top_doc(index, "capital of Australia") == "canberra"
        index.add_documents([NEW_DOC])
        index.delete_documents(["canberra"])
        reopened = KnowledgeIndex.open(tmp_path / kind, embedder)
        assert top_doc(reopened, "capital of Canada") == "ottawa"
        assert "canberra" not in {h.passage.doc_id for h in reopened.search("Australia", 10)}
        assert top_doc(reopened, "capital", where={"kind": "city", "title": "Paris"}) == "paris"


def test_auto_index_grows_into_hnsw(tmp_path: Path, embedder: TransformerEmbedder) -> None:
    config = IndexConfig(kind="auto", hnsw_from=6)
    index = KnowledgeIndex.build(tmp_path / "auto", CITY_DOCS, embedder, index_config=config)
    assert index.info().index_kind == "flat"
    index.add_documents([NEW_DOC, Document(id="lima", text="Lima is the capital of Peru.")])
    assert index.info().index_kind == "hnsw"
    assert top_doc(KnowledgeIndex.open(tmp_path / "auto", embedder), "capital of Peru") == "lima"


def test_old_snapshots_are_swept(tmp_path: Path, embedder: TransformerEmbedder) -> None:
    index = KnowledgeIndex.build(tmp_path / "i", CITY_DOCS[:1], embedder, keep_snapshots=2)
    for doc in CITY_DOCS[1:]:
        index.add_documents([doc])
    names = sorted(p.name for p in (tmp_path / "i" / "snapshots").iterdir())
    assert names == ["000003", "000004"]
    assert top_doc(KnowledgeIndex.open(tmp_path / "i", embedder), "capital of Australia") == "canberra"


def test_damaged_or_foreign_format_indexes_are_refused(
    city_index: KnowledgeIndex, embedder: TransformerEmbedder
) -> None:
    snapshot = city_index.path / "snapshots" / city_index.info().snapshot
    manifest = json.loads((snapshot / "manifest.json").read_text())
    (snapshot / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(IndexCorrupt, match="format version 99"):
        KnowledgeIndex.open(city_index.path, embedder)
    (city_index.path / CURRENT).write_text("000042\n")
    with pytest.raises(IndexCorrupt, match="000042"):
        KnowledgeIndex.open(city_index.path, embedder)


def test_opening_retries_when_a_writer_sweeps_the_snapshot_away(
    tmp_path: Path, embedder: TransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lethe.retrieval.index as index_module

    writer = KnowledgeIndex.build(tmp_path / "i", CITY_DOCS[:2], embedder, keep_snapshots=1)
    load = index_module._load_snapshot
    calls: list[str] = []

    def racing(directory: object, name: str) -> object:
        calls.append(name)
        if len(calls) == 1:  # between reading CURRENT and opening the files, a write lands
            writer.add_documents([NEW_DOC])
        return load(directory, name)  # type: ignore[arg-type]

    monkeypatch.setattr(index_module, "_load_snapshot", racing)
    reader = KnowledgeIndex.open(tmp_path / "i", embedder)
    assert calls == ["000001", "000002"]
    assert reader.info().snapshot == "000002" and "ottawa" in reader.document_ids()


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, real: TransformerEmbedder):
        self.name, self.dimension, self._real = real.name, real.dimension, real
        self.embedded = 0

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self._real.token_spans(text)

    def embed(self, texts, *, batch_size=32, progress=None):  # type: ignore[no-untyped-def]
        self.embedded += len(texts)
        return self._real.embed(texts, batch_size=batch_size, progress=progress)


def test_an_existing_id_is_refused_before_anything_is_embedded(
    city_index: KnowledgeIndex, embedder: TransformerEmbedder
) -> None:
    counting = CountingEmbedder(embedder)
    index = KnowledgeIndex.open(city_index.path, counting)  # type: ignore[arg-type]
    before = index.info().snapshot
    fresh = [Document(id=f"new-{n}", text=f"Fresh document number {n}.") for n in range(50)]
    progress: list[tuple[int, int]] = []
    with pytest.raises(AlreadyExists, match=r"1 document\(s\) already indexed: 'paris'"):
        index.add_documents(
            [*fresh, Document(id="paris", text="again")], progress=lambda *p: progress.append(p)
        )
    assert counting.embedded == 0 and progress == [], "refused before the embedder ran"
    assert index.info().snapshot == before
    # With replace the same call embeds and writes; without an existing id, too.
    index.add_documents([Document(id="paris", text="Paris again.")], replace=True)
    index.add_documents([NEW_DOC])
    assert counting.embedded == 2


def test_a_write_that_lands_after_the_early_check_is_still_refused(
    city_index: KnowledgeIndex, embedder: TransformerEmbedder
) -> None:
    """Another process adds the same id while this one embeds: the check under the lock holds."""
    other = KnowledgeIndex.open(city_index.path, embedder)
    racing = CountingEmbedder(embedder)
    index = KnowledgeIndex.open(city_index.path, racing)  # type: ignore[arg-type]
    real_embed = racing.embed

    def embed_while_another_writes(texts, **kwargs):  # type: ignore[no-untyped-def]
        other.add_documents([NEW_DOC])
        return real_embed(texts, **kwargs)

    racing.embed = embed_while_another_writes  # type: ignore[method-assign]
    with pytest.raises(AlreadyExists, match="'ottawa'"):
        index.add_documents([NEW_DOC])
    assert index.info().documents == 5  # the other process's write, not this one


def test_queries_and_filters_that_would_break_sqlite_or_the_embedder_are_refused(
    city_index: KnowledgeIndex,
) -> None:
    with pytest.raises(InvalidArgument, match=r"^query contains a lone surrogate \(U\+D800\)"):
        city_index.search("capital \ud800", 3)
    with pytest.raises(InvalidArgument, match=r"^query 1 contains a lone surrogate"):
        city_index.search_many(["fine", "\udfff"], 3)
    bad_filters: list[tuple[dict[str, object], str]] = [
        ({f"k{n}": n for n in range(2000)}, "2000 keys; the limit is 32"),
        ({"kind\x00": "city"}, "key 'kind\\x00' contains a NUL"),
        ({"kind": "\ud800"}, "'kind': contains a lone surrogate"),
        ({"year": 2**64}, "'year': integers must fit in 64 bits"),
        ({"year": float("nan")}, "'year': numbers must be finite"),
        ({"kind": list(range(1000))}, "more than 256 values"),
    ]
    for where, says in bad_filters:
        with pytest.raises(InvalidArgument) as error:
            city_index.search("capital", 3, where)  # type: ignore[arg-type]
        assert str(error.value).startswith("filter: ") and says in str(error.value), str(error.value)
    assert top_doc(city_index, "Eiffel Tower", where={"kind": "city"}) == "paris"


def test_metadata_sqlite_cannot_filter_is_refused_at_the_door(city_index: KnowledgeIndex) -> None:
    """A NaN in one document's metadata made SQLite's json_each fail every filtered search."""
    for metadata in ({"score": float("nan")}, {"big": 2**70}):
        with pytest.raises(ValueError, match="metadata"):
            Document(id="bad", text="some text", metadata=metadata)  # type: ignore[arg-type]
    assert top_doc(city_index, "capital", where={"lang": "en"}) in {"paris", "canberra"}
