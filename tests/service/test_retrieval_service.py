"""`lethe.v1.Retrieval` and `RetrievalAdmin` over a real port: real FAISS, the real packaged
embedder, every error code, admin-only writes and the metrics labelled by index."""

import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from lethe.client import LetheClient
from lethe.service.config import AuthSettings, IndexSpec, TokenSettings, VariantSpec
from lethe.service.gen.lethe.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.service.conftest import ServerThread, settings_for
from tests.service.knowledge import FACTS, build_index


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("retrieval-service")
    indexes = [
        IndexSpec(name="facts", path=build_index(root / "facts")),
        IndexSpec(name="scratch", path=build_index(root / "scratch", FACTS[:2]), limits={"max_k": 10}),
    ]
    server = ServerThread(settings_for(indexes=indexes), [VariantSpec(name="base", model=str(tiny_model))])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server) -> Iterator[LetheClient]:
    with LetheClient(server.target, timeout=60) as client:
        yield client


def code_and_message(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code(), error.value.details()


def test_search_returns_scored_passages_with_their_document(client):
    passages = client.search("facts", "What is the capital of Ostra?", k=3)
    assert len(passages) == 3
    top = passages[0]
    assert (top.id, top.doc_id, top.title) == ("mirren#0", "mirren", "Mirren")
    assert top.text == FACTS[0].text and (top.start, top.end) == (0, len(FACTS[0].text))
    assert top.metadata_json == '{"kind": "city", "year": 1820}'
    scores = [p.score for p in passages]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1.0001
    assert scores[0] > scores[1] + 0.1, "the answering passage should stand out"


def test_search_filters_on_metadata(client):
    passages = client.search("facts", "capital city", k=5, where={"kind": ["object", "animal"]})
    assert {p.doc_id for p in passages} == {"kettle", "pelagic"}
    assert [p.doc_id for p in client.search("facts", "tea", k=5, where={"source": "household"})] == ["kettle"]
    assert client.search("facts", "tea", k=5, where={"kind": "nothing-like-it"}) == []


def test_index_stats_and_list(client):
    stats = client.index_stats("facts")
    assert (stats.name, stats.documents, stats.passages, stats.vectors) == ("facts", 4, 4, 4)
    assert (stats.embedder, stats.dimension, stats.index_type) == ("all-MiniLM-L6-v2", 384, "flat")
    assert stats.format_version >= 1 and stats.snapshot and stats.size_bytes > 0
    assert stats.max_k == 100
    listed = {i.name: i for i in client.list_indexes()}
    assert set(listed) == {"facts", "scratch"} and listed["scratch"].max_k == 10


INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_fields", "code", "starts"),
    [
        ({"index": "nope", "query": "x", "k": 1}, NOT_FOUND, "unknown index 'nope'"),
        ({"index": "", "query": "x", "k": 1}, INVALID, "index:"),
        ({"index": "facts", "query": "", "k": 1}, INVALID, "query:"),
        ({"index": "facts", "query": "   ", "k": 1}, INVALID, "query:"),
        ({"index": "facts", "query": "x" * 4001, "k": 1}, INVALID, "query:"),
        ({"index": "facts", "query": "x", "k": 0}, INVALID, "k:"),
        ({"index": "facts", "query": "x", "k": -2}, INVALID, "k:"),
        ({"index": "facts", "query": "x", "k": 101}, INVALID, "k:"),
        ({"index": "scratch", "query": "x", "k": 11}, INVALID, "k:"),
        ({"index": "facts", "query": "x", "k": 1, "filter_json": "{"}, INVALID, "filter_json:"),
        ({"index": "facts", "query": "x", "k": 1, "filter_json": "[1]"}, INVALID, "filter_json:"),
        ({"index": "facts", "query": "x", "k": 1, "filter_json": '{"a": {}}'}, INVALID, "filter_json:"),
    ],
)
def test_bad_searches_name_the_field(server, request_fields, code, starts):
    with grpc.insecure_channel(server.target) as channel:
        stub = retrieval_pb2_grpc.RetrievalStub(channel)
        got, message = code_and_message(lambda: stub.Search(retrieval_pb2.SearchRequest(**request_fields)))
    assert got == code and message.startswith(starts), message


def test_stats_of_an_unknown_index_is_not_found(client):
    code, message = code_and_message(lambda: client.index_stats("nope"))
    assert code == grpc.StatusCode.NOT_FOUND and "facts" in message


def test_add_search_delete_round_trip_with_progress(client, server):
    progress: list[tuple[int, int]] = []
    docs = [
        {"id": "quorra", "text": "Quorra is a glacier lake high in the Venn mountains.", "title": "Quorra"},
        {"id": "tamsin", "text": "Tamsin Roe wrote the novel Salt Orchard.", "metadata": {"year": 1962}},
    ]
    before = client.index_stats("scratch")
    added = client.add_documents("scratch", docs, batch=1, progress=lambda *p: progress.append(p))
    assert (added.documents_added, added.passages_added, added.documents_replaced) == (2, 2, 0)
    assert added.stats.passages == before.passages + 2 and added.stats.snapshot != before.snapshot
    assert progress and progress[-1] == (2, 2)
    hits = client.search("scratch", "Who wrote Salt Orchard?", k=1)
    assert hits[0].doc_id == "tamsin" and hits[0].metadata_json == '{"year": 1962}'

    replaced = client.add_documents(
        "scratch", [{"id": "tamsin", "text": "Tamsin Roe was a potter in Lisbon."}], replace=True
    )
    assert (replaced.documents_added, replaced.documents_replaced, replaced.passages_replaced) == (1, 1, 1)
    assert "potter" in client.search("scratch", "Tamsin Roe", k=1)[0].text

    deleted = client.delete_documents("scratch", ["quorra", "tamsin"])
    assert (deleted.documents_deleted, deleted.passages_deleted) == (2, 2)
    assert deleted.stats.passages == before.passages
    assert all(p.doc_id not in {"quorra", "tamsin"} for p in client.search("scratch", "Salt Orchard", k=5))
    gauge = server.server.metrics.registry.get_sample_value("lethe_index_passages", {"index": "scratch"})
    assert gauge == before.passages


@pytest.mark.parametrize(
    ("documents", "starts"),
    [
        ([{"id": "ok", "text": "fine"}, {"id": "bad", "text": ""}], "documents[1]: malformed document: text"),
        ([{"id": "", "text": "no id"}], "documents[0]: malformed document: id"),
        ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], "documents[1]: duplicate document id 'a'"),
        ([], "documents: no documents given"),
    ],
)
def test_malformed_documents_are_invalid_argument_and_change_nothing(client, documents, starts):
    before = client.index_stats("scratch")
    code, message = code_and_message(lambda: client.add_documents("scratch", documents))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith(starts), message
    after = client.index_stats("scratch")
    assert (after.snapshot, after.passages) == (before.snapshot, before.passages)


def test_bad_metadata_json_names_the_document_field(server, client):
    before = client.index_stats("scratch")
    with grpc.insecure_channel(server.target) as channel:
        stub = retrieval_pb2_grpc.RetrievalAdminStub(channel)
        for metadata, problem in (("{oops", "not valid JSON"), ("[1, 2]", "JSON object")):
            document = retrieval_pb2.Document(id="m", text="some text", metadata_json=metadata)
            request = retrieval_pb2.AddDocumentsRequest(index="scratch", documents=[document])
            code, message = code_and_message(lambda r=request: list(stub.AddDocuments(iter([r]))))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert message.startswith("documents[0].metadata_json:") and problem in message
        # One call, one index: a second message naming another index is refused.
        one = [retrieval_pb2.Document(id="x", text="t")]
        requests = [retrieval_pb2.AddDocumentsRequest(index=i, documents=one) for i in ("scratch", "facts")]
        code, message = code_and_message(lambda: list(stub.AddDocuments(iter(requests))))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("index:")
    assert client.index_stats("scratch").snapshot == before.snapshot


def test_write_errors_keep_what_is_indexed(client):
    before = client.index_stats("scratch")
    code, message = code_and_message(lambda: client.add_documents("scratch", [{"id": "mirren", "text": "x"}]))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "mirren" in message
    code, message = code_and_message(lambda: client.delete_documents("scratch", ["mirren", "ghost"]))
    assert code == grpc.StatusCode.NOT_FOUND and "ghost" in message
    code, message = code_and_message(lambda: client.delete_documents("scratch", []))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("ids:")
    code, _ = code_and_message(lambda: client.add_documents("nope", [{"id": "a", "text": "x"}]))
    assert code == grpc.StatusCode.NOT_FOUND
    after = client.index_stats("scratch")
    assert (after.snapshot, after.documents) == (before.snapshot, before.documents)
    assert client.search("scratch", "capital of Ostra", k=1)[0].doc_id == "mirren"


def test_too_many_documents_in_one_call(start_server, tmp_path):
    index = IndexSpec(name="small", path=build_index(tmp_path / "small", FACTS[:1]))
    server = start_server([], indexes=[index], max_documents_per_add=2)
    with LetheClient(server.target, timeout=60) as client:
        docs = [{"id": f"d{n}", "text": f"document {n}"} for n in range(3)]
        code, message = code_and_message(lambda: client.add_documents("small", docs))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("documents:")
        assert client.index_stats("small").documents == 1


def test_a_cancelled_add_writes_nothing(start_server, tmp_path):
    index = IndexSpec(name="small", path=build_index(tmp_path / "small", FACTS[:1]))
    server = start_server([], indexes=[index])
    docs = [{"id": f"d{n}", "text": f"Document number {n} is about the river {n}."} for n in range(640)]
    with LetheClient(server.target, timeout=120) as client:
        before = client.index_stats("small")
        with grpc.insecure_channel(server.target) as channel:
            stub = retrieval_pb2_grpc.RetrievalAdminStub(channel)
            request = retrieval_pb2.AddDocumentsRequest(
                index="small", documents=[retrieval_pb2.Document(id=d["id"], text=d["text"]) for d in docs]
            )
            stream = stub.AddDocuments(iter([request]))
            first = next(stream)
            assert not first.done and first.passages_total == 640
            stream.cancel()
        # The embedding thread stops at its next batch; the write lock is then free again.
        deadline = time.monotonic() + 60
        while True:
            try:
                result = client.add_documents("small", [{"id": "after", "text": "written after the cancel"}])
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert result.stats.documents == before.documents + 1, "the cancelled documents must not land"


def test_writes_need_the_admin_token(start_server, tmp_path, tiny_model):
    index = IndexSpec(name="guarded", path=build_index(tmp_path / "guarded", FACTS[:2]))
    auth = AuthSettings(inference=TokenSettings(token="infer"), admin=TokenSettings(token="admin"))
    server = start_server([], indexes=[index], auth=auth)
    doc = [{"id": "new", "text": "a new document"}]
    with LetheClient(server.target, token="infer", admin_token="infer", timeout=60) as reader:
        assert reader.search("guarded", "capital", k=1)[0].doc_id == "mirren"
        assert reader.index_stats("guarded").documents == 2
        writes = (
            lambda: reader.add_documents("guarded", doc),
            lambda: reader.delete_documents("guarded", ["mirren"]),
        )
        for call in writes:
            code, message = code_and_message(call)
            assert code == grpc.StatusCode.UNAUTHENTICATED and "RetrievalAdmin" in message, message
    with LetheClient(server.target, timeout=60) as anonymous:
        code, _ = code_and_message(lambda: anonymous.search("guarded", "capital", k=1))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        code, _ = code_and_message(lambda: anonymous.add_documents("guarded", doc))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    with LetheClient(server.target, token="infer", admin_token="admin", timeout=60) as admin:
        assert admin.index_stats("guarded").documents == 2, "refused writes changed nothing"
        assert admin.add_documents("guarded", doc).stats.documents == 3
        assert admin.delete_documents("guarded", ["new"]).stats.documents == 2


def test_a_slow_search_does_not_block_generation(server, client):
    """Searches run in a worker thread: while one is held, the event loop serves a Generate."""
    index = server.server.indexes.get("facts")
    gate, entered = threading.Event(), threading.Event()
    real = index.search

    def held(*args, **kwargs):
        entered.set()
        gate.wait(30)
        return real(*args, **kwargs)

    index.search = held
    try:
        result: list = []
        searching = threading.Thread(target=lambda: result.append(client.search("facts", "Ostra", k=1)))
        searching.start()
        assert entered.wait(30)
        assert client.generate("meanwhile", variant="base", max_tokens=2).completion_tokens == 2
        assert not result, "the search is still held"
        gate.set()
        searching.join(30)
        assert result[0][0].doc_id == "mirren"
    finally:
        gate.set()
        del index.search


def test_health_reflection_and_metrics_by_index(server, client):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("lethe.v1.Retrieval", "lethe.v1.RetrievalAdmin"):
            status = health.Check(health_pb2.HealthCheckRequest(service=name)).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        services = {s.name for reply in replies for s in reply.list_services_response.service}
        assert {"lethe.v1.Retrieval", "lethe.v1.RetrievalAdmin"} <= services
    metrics = server.server.metrics.registry

    def sample(name: str) -> float:
        return metrics.get_sample_value(name, {"index": "facts"}) or 0.0

    searches = sample("lethe_retrieval_latency_seconds_count")
    passages = sample("lethe_retrieval_passages_total")
    returned = len(client.search("facts", "bridge over the Quell", k=2))
    assert returned == 2
    assert sample("lethe_retrieval_latency_seconds_count") == searches + 1
    assert sample("lethe_retrieval_passages_total") == passages + 2
    assert sample("lethe_index_passages") == 4
