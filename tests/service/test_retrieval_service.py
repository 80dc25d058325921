"""`lethe.v1.Retrieval` and `RetrievalAdmin` over a real port: real FAISS, the real packaged
embedder, every error code, admin-only writes and the metrics labelled by index."""

import json
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from lethe.client import LetheClient
from lethe.retrieval.augment import RetrievalPolicy
from lethe.service.config import AuthSettings, IndexSpec, TokenSettings, VariantSpec
from lethe.service.errors import InvalidRequest
from lethe.service.gen.lethe.v1 import retrieval_pb2, retrieval_pb2_grpc
from lethe.service.rag import retrieve
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
        ([{"id": "ok", "text": "fine"}, {"id": "bad", "text": ""}], "documents[1].text: String should have"),
        ([{"id": "", "text": "no id"}], "documents[0].id: String should have"),
        ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], "documents[1].id: duplicate document id 'a'"),
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


# -- hostile input (issue 11): each was INTERNAL; each is INVALID_ARGUMENT naming the field -----


def still_serving(client: LetheClient) -> None:
    """After a refused call, the server answers a normal Search as before."""
    assert client.search("facts", "What is the capital of Ostra?", k=1)[0].doc_id == "mirren"


@pytest.mark.parametrize(
    ("filter_json", "starts"),
    [
        ('{"kind": ' * 1000 + '"city"' + "}" * 1000, "filter_json: nested deeper than 2 levels"),
        ("[" * 10_000, "filter_json: nested deeper than 2 levels"),
        (json.dumps({"kind\x00": "city"}), "filter_json: key 'kind\\x00' contains a NUL character"),
        (json.dumps({f"k{n}": n for n in range(2000)}), "filter_json: 27780 characters; the limit is 16384"),
        (json.dumps({f"k{n}": n for n in range(33)}), "filter_json: 33 keys; the limit is 32"),
        ('{"kind": "\\ud800"}', "filter_json: 'kind': contains a lone surrogate (U+D800)"),
        ('{"\\udfff": 1}', "filter_json: key '\\udfff' contains a lone surrogate (U+DFFF)"),
        (json.dumps({"kind": "x" * 100_000}), "filter_json: 100012 characters; the limit is 16384"),
        (json.dumps({"kind": "x" * 2000}), "filter_json: 'kind' has a value of 2000 characters"),
        (json.dumps({"k" * 300: 1}), "filter_json: key 'kkk"),
        (json.dumps({"kind": list(range(300))}), "filter_json: more than 256 values in all"),
        ('{"year": NaN}', "filter_json: NaN is not allowed"),
        ('{"year": 1e999}', "filter_json: 'year': numbers must be finite"),
        ('{"year": 99999999999999999999}', "filter_json: 'year': integers must fit in 64 bits"),
        ('{"year": ' + "9" * 5000 + "}", "filter_json: a number with too many digits"),
    ],
)
def test_hostile_filters_are_invalid_argument_and_the_server_keeps_serving(
    server, client, filter_json, starts
):
    with grpc.insecure_channel(server.target) as channel:
        stub = retrieval_pb2_grpc.RetrievalStub(channel)
        request = retrieval_pb2.SearchRequest(index="facts", query="capital", k=1, filter_json=filter_json)
        code, message = code_and_message(lambda: stub.Search(request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith(starts), message
    assert len(message) < 400, "the client's value is not repeated back in full"
    still_serving(client)


def test_a_filter_key_of_100_kb_is_not_echoed(start_server, tmp_path):
    limits = {"max_filter_chars": 200_000, "max_filter_key_chars": 200_000}
    index = IndexSpec(name="wide", path=build_index(tmp_path / "wide", FACTS[:1]), limits=limits)
    server = start_server([], indexes=[index])
    key = "k" * 100_000 + "\x00"
    with LetheClient(server.target, timeout=60) as client:
        code, message = code_and_message(lambda: client.search("wide", "capital", k=1, where={key: 1}))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("filter_json: key 'kkk")
        assert "(100001 characters) contains a NUL character" in message and len(message) < 400
        assert client.search("wide", "capital", k=1, where={"kind": "city"})[0].doc_id == "mirren"


def _document(**fields) -> retrieval_pb2.Document:
    return retrieval_pb2.Document(**{"id": "new", "text": "A new document.", **fields})


@pytest.mark.parametrize(
    ("document", "starts"),
    [
        (
            _document(metadata_json='{"k": ' * 1000 + "1" + "}" * 1000),
            "documents[1].metadata_json: nested deeper than 2 levels",
        ),
        (_document(metadata_json='{"k": [[1]]}'), "documents[1].metadata_json: nested deeper than 2 levels"),
        (
            _document(metadata_json=json.dumps({"k": "v" * 100_000})),
            "documents[1].metadata_json: 100009 characters; the limit is 65536",
        ),
        (
            _document(metadata_json=json.dumps({f"k{n}": n for n in range(200)})),
            "documents[1].metadata_json: 200 keys; the limit is 128",
        ),
        (
            _document(metadata_json='{"k": "\\ud800"}'),
            "documents[1].metadata_json: 'k': contains a lone surrogate",
        ),
        (
            _document(metadata_json='{"\\ud800": 1}'),
            "documents[1].metadata_json: key '\\ud800' contains a lone",
        ),
        (
            _document(metadata_json='{"k\\u0000": 1}'),
            "documents[1].metadata_json: key 'k\\x00' contains a NUL",
        ),
        (_document(metadata_json='{"k": NaN}'), "documents[1].metadata_json: NaN is not allowed"),
        (_document(metadata_json='{"k": 1e999}'), "documents[1].metadata_json: 'k': numbers must be finite"),
        (_document(id="a\x00b"), "documents[1].id: contains a NUL character"),
        (_document(text="body\x00"), "documents[1].text: contains a NUL character"),
        (_document(title="title\x00"), "documents[1].title: contains a NUL character"),
        (_document(source="source\x00"), "documents[1].source: contains a NUL character"),
        (_document(id="i" * 513), "documents[1].id: String should have at most 512 characters"),
        (_document(title="t" * 1001), "documents[1].title: 1001 characters; the limit is 1000"),
        (_document(source="s" * 2001), "documents[1].source: 2001 characters; the limit is 2000"),
        (_document(text="x" * 1_000_001), "documents[1].text: 1000001 characters; the limit is 1000000"),
    ],
)
def test_hostile_documents_name_the_document_and_field_and_change_nothing(server, client, document, starts):
    before = client.index_stats("scratch")
    request = retrieval_pb2.AddDocumentsRequest(
        index="scratch", documents=[retrieval_pb2.Document(id="fine", text="A fine document."), document]
    )
    with grpc.insecure_channel(server.target) as channel:
        stub = retrieval_pb2_grpc.RetrievalAdminStub(channel)
        code, message = code_and_message(lambda: list(stub.AddDocuments(iter([request]))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith(starts), message
    assert len(message) < 400, "the client's value is not repeated back in full"
    assert client.index_stats("scratch").snapshot == before.snapshot
    still_serving(client)


def test_queries_that_are_not_unicode_text_are_invalid_argument(server, client):
    """A lone surrogate cannot cross the wire in a protobuf string, but the registry and the RAG
    path refuse one by field name for in-process callers too, rather than failing in the embedder."""
    indexes = server.server.indexes
    with pytest.raises(InvalidRequest, match=r"^query: contains a lone surrogate \(U\+D800\)"):
        server.call(indexes.search("facts", "capital \ud800", 1))
    policy = RetrievalPolicy(index="facts")
    with pytest.raises(InvalidRequest, match=r"^retrieval_query: contains a lone surrogate"):
        server.call(retrieve("Q?", "base+rag", policy, indexes, wanted=None, k=0, query="\udfff"))
    with pytest.raises(InvalidRequest, match=r"^prompt: contains a lone surrogate"):
        server.call(retrieve("Q? \ud800", "base+rag", policy, indexes, wanted=None, k=0))
    still_serving(client)


def test_an_indexed_id_is_refused_before_any_document_is_embedded(server, client):
    """`AddDocuments` (and `lethe index add`) of an id already indexed used to embed the whole
    call first (42.7 s for 2,000 documents) and only then answer ALREADY_EXISTS."""
    index = server.server.indexes.get("scratch")
    embedded: list[int] = []
    real_embed = index.embedder.embed

    def counting(texts, **kwargs):
        embedded.append(len(texts))
        return real_embed(texts, **kwargs)

    index.embedder.embed = counting  # type: ignore[method-assign]
    try:
        documents = [
            retrieval_pb2.Document(id=f"fresh-{n}", text=f"Fresh document {n} is about the river {n}.")
            for n in range(100)
        ]
        documents.append(retrieval_pb2.Document(id="mirren", text="Mirren, again."))
        request = retrieval_pb2.AddDocumentsRequest(index="scratch", documents=documents)
        received: list[retrieval_pb2.AddDocumentsResponse] = []
        with grpc.insecure_channel(server.target) as channel:
            stub = retrieval_pb2_grpc.RetrievalAdminStub(channel)
            code, message = code_and_message(lambda: received.extend(stub.AddDocuments(iter([request]))))
        assert code == grpc.StatusCode.ALREADY_EXISTS and "'mirren'" in message, message
        assert embedded == [] and received == [], "refused before any embedding or progress"
    finally:
        del index.embedder.embed
    still_serving(client)


@pytest.mark.parametrize(
    ("policy", "starts"),
    [
        ({"template": "{context}{prompt}{x}"}, "retrieval.template: "),
        ({"template": "{0}"}, "retrieval.template: "),
        ({"template": "{}"}, "retrieval.template: "),
        ({"template": "{context!r:>{x}}{prompt}"}, "retrieval.template: "),
        ({"template": "{context}{prompt"}, "retrieval.template: "),
        ({"template": "{context}}{prompt}"}, "retrieval.template: "),
        ({"passage_format": "{nope}"}, "retrieval.passage_format: "),
        ({"passage_format": "{title!r}"}, "retrieval.passage_format: "),
    ],
)
def test_templates_that_cannot_be_filled_are_refused_at_load(server, client, policy, starts):
    code, message = code_and_message(
        lambda: client.load_variant("bad+rag", alias_of="base", retrieval={"index": "facts", **policy})
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith(starts), message
    assert "bad+rag" not in {v.name for v in client.list_variants()}
    assert client.generate("hello", variant="base", max_tokens=1).completion_tokens == 1
    still_serving(client)


def test_a_template_that_passes_serves_generate(client):
    policy = {
        "index": "facts",
        "k": 1,
        "template": "{{notes}}\n{context}\n{prompt}",
        "passage_format": "{text}",
    }
    client.load_variant("fine+rag", alias_of="base", retrieval=policy)
    try:
        reply = client.generate("Question: What is the capital of Ostra?", variant="fine+rag", max_tokens=1)
        assert [p.doc_id for p in reply.passages] == ["mirren"]
        prompt = "{notes}\n" + FACTS[0].text + "\nQuestion: What is the capital of Ostra?"
        assert reply.prompt_tokens == len(prompt.encode())  # the tiny model: one token per byte
    finally:
        client.unload_variant("fine+rag")
