"""Retrieval-augmented Generate over a real port: the passages a variant's policy retrieves reach
the prompt and come back with the response; a `+rag` alias serves its target's engine."""

import json
from collections.abc import Iterator

import grpc
import pytest

from lethe.client import LetheClient
from lethe.retrieval.augment import augment_prompt
from lethe.retrieval.passages import Hit, Passage
from lethe.service.config import IndexSpec, VariantSpec
from tests.service.conftest import ServerThread, settings_for
from tests.service.knowledge import build_index

QUESTION = "Question: What is the capital of Ostra?\nAnswer:"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model, tiny_variant) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("rag")
    variants = [
        VariantSpec(name="base", model=str(tiny_model)),
        VariantSpec(name="pruned", checkpoint=tiny_variant),
        VariantSpec(name="pruned+rag", alias_of="pruned", retrieval={"index": "facts", "k": 2}),
    ]
    indexes = [IndexSpec(name="facts", path=build_index(root / "facts"))]
    server = ServerThread(settings_for(indexes=indexes), variants)
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


def hits_for(client: LetheClient, passages) -> list[Hit]:
    """The passages a response names, with their text, fetched back from the index."""
    hits = []
    for used in passages:
        (found,) = client.search(used.index, "anything", k=1, where={"doc_id": used.doc_id})
        assert found.id == used.id
        passage = Passage(
            id=found.id,
            doc_id=found.doc_id,
            text=found.text,
            start=found.start,
            end=found.end,
            title=found.title or None,
            metadata=json.loads(found.metadata_json or "{}"),
        )
        hits.append(Hit(passage, used.score))
    return hits


def test_generate_puts_the_retrieved_passages_into_the_prompt(client):
    reply = client.generate(QUESTION, variant="pruned+rag", max_tokens=8, temperature=0)
    assert reply.variant == "pruned+rag"
    assert [p.index for p in reply.passages] == ["facts", "facts"]
    assert reply.passages[0].doc_id == "mirren" and reply.passages[0].id == "mirren#0"
    assert reply.passages[0].score > reply.passages[1].score
    searched = client.search("facts", QUESTION, k=2)
    assert [p.id for p in searched] == [p.id for p in reply.passages]
    assert [p.score for p in searched] == pytest.approx([p.score for p in reply.passages], abs=1e-5)
    # The byte-level tokenizer makes one token per byte: the prompt was exactly the augmented one.
    augmented = augment_prompt(QUESTION, hits_for(client, reply.passages))
    assert augmented.startswith("Mirren: Mirren is the capital") and augmented.endswith(QUESTION)
    assert reply.prompt_tokens == len(augmented.encode())
    # ... and the model read it: the target variant given that prompt by hand answers the same.
    by_hand = client.generate(augmented, variant="pruned", max_tokens=8, temperature=0)
    assert (by_hand.text, by_hand.passages) == (reply.text, ())


def test_a_request_can_turn_retrieval_off_or_change_k(client):
    off = client.generate(QUESTION, variant="pruned+rag", retrieval=False, max_tokens=8, temperature=0)
    assert off.passages == () and off.prompt_tokens == len(QUESTION)
    plain = client.generate(QUESTION, variant="pruned", max_tokens=8, temperature=0)
    assert off.text == plain.text
    one = client.generate(QUESTION, variant="pruned+rag", retrieval_k=1, max_tokens=2)
    assert [p.doc_id for p in one.passages] == ["mirren"]
    assert one.prompt_tokens == len(augment_prompt(QUESTION, hits_for(client, one.passages)).encode())
    on = client.generate(QUESTION, variant="pruned+rag", retrieval=True, retrieval_k=3, max_tokens=2)
    assert len(on.passages) == 3


def test_a_request_can_name_the_text_to_search_for(client):
    reply = client.generate(QUESTION, variant="pruned+rag", retrieval_query="the bridge over the Quell")
    assert reply.passages[0].doc_id == "zorblat"
    augmented = augment_prompt(QUESTION, hits_for(client, reply.passages))
    assert augmented.endswith(QUESTION) and reply.prompt_tokens == len(augmented.encode())


def test_the_stream_lists_the_passages_on_its_last_message(client):
    unary = client.generate(QUESTION, variant="pruned+rag", max_tokens=8, temperature=0)
    messages = list(client.stream(QUESTION, variant="pruned+rag", max_tokens=8, temperature=0))
    assert "".join(m.text for m in messages) == unary.text
    assert all(not m.passages for m in messages[:-1])
    assert list(messages[-1].passages) == list(unary.passages)
    assert messages[-1].usage.prompt_tokens == unary.prompt_tokens


@pytest.mark.parametrize(
    ("variant", "params", "field"),
    [
        ("pruned", {"retrieval": True}, "retrieval:"),
        ("pruned", {"retrieval_k": 2}, "retrieval_k:"),
        ("pruned+rag", {"retrieval_k": -1}, "retrieval_k:"),
        ("pruned+rag", {"retrieval_k": 101}, "retrieval_k:"),
        ("pruned", {"retrieval_query": "bridge"}, "retrieval_query:"),
        ("pruned+rag", {"retrieval_query": "  "}, "retrieval_query:"),
        ("pruned+rag", {"retrieval_query": "q" * 4001}, "retrieval_query:"),
    ],
)
def test_bad_retrieval_requests_name_the_field(client, variant, params, field):
    for call in (
        lambda: client.generate(QUESTION, variant=variant, max_tokens=1, **params),
        lambda: list(client.stream(QUESTION, variant=variant, max_tokens=1, **params)),
    ):
        code, message = code_and_message(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith(field), message


def test_passages_that_overflow_the_context_are_dropped_lowest_first(client):
    # The tiny model has 4096 positions and one token per byte. One passage (at most ~100 bytes)
    # fits after 3,960 bytes of prompt; two (at least ~160 bytes) do not.
    prompt = "Notes. " * 560 + QUESTION[: 3960 - 7 * 560]
    reply = client.generate(prompt, variant="pruned+rag", max_tokens=4)
    assert len(reply.passages) == 1
    augmented = augment_prompt(prompt, hits_for(client, reply.passages))
    assert reply.prompt_tokens == len(augmented.encode()) < 4096
    full = "Notes. " * 584 + "x"  # 4089 bytes: no passage fits
    reply = client.generate(full, variant="pruned+rag", max_tokens=4)
    assert reply.passages == () and reply.prompt_tokens == len(full)


def test_the_alias_serves_its_targets_engine_without_loading_it_again(server, client):
    catalog = server.server.catalog
    assert catalog.get("pruned+rag").engine is catalog.get("pruned").engine
    loaded = server.server.variants.weights.loaded()
    assert len(loaded) == 1, "only the base model is loaded; pruned shares it"
    alias, target = client.get_variant("pruned+rag"), client.get_variant("pruned")
    assert (alias.alias_of, alias.parent, alias.checkpoint) == ("pruned", "pruned", target.checkpoint)
    assert alias.memory.parameter_bytes == target.memory.parameter_bytes
    assert (alias.memory.shared_bytes, alias.memory.own_bytes) == (alias.memory.parameter_bytes, 0)
    assert (alias.retrieval.index, alias.retrieval.k) == ("facts", 2)
    assert alias.retrieval.template == "{context}\n\n{prompt}"
    assert not target.HasField("retrieval")
    listed = {v.name: v for v in client.list_variants()}
    assert set(listed) == {"base", "pruned", "pruned+rag"}
    assert listed["pruned+rag"].parent == "pruned"
    code, message = code_and_message(lambda: client.unload_variant("pruned"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "pruned+rag" in message
    assert client.generate("still", variant="pruned", max_tokens=1).completion_tokens == 1


def test_retrieval_metrics_count_generate_searches(server, client):
    metrics = server.server.metrics.registry
    labels = {"index": "facts"}
    before = metrics.get_sample_value("lethe_retrieval_latency_seconds_count", labels) or 0
    passages = metrics.get_sample_value("lethe_retrieval_passages_total", labels) or 0
    client.generate(QUESTION, variant="pruned+rag", max_tokens=1)
    assert metrics.get_sample_value("lethe_retrieval_latency_seconds_count", labels) == before + 1
    assert metrics.get_sample_value("lethe_retrieval_passages_total", labels) == passages + 2


def test_an_alias_with_a_policy_is_loaded_and_unloaded_at_run_time(start_server, tiny_model, tmp_path):
    index = IndexSpec(name="facts", path=build_index(tmp_path / "facts"), limits={"max_k": 5})
    server = start_server([VariantSpec(name="base", model=str(tiny_model))], indexes=[index])
    with LetheClient(server.target, timeout=60) as client:
        policy = {"index": "facts", "min_score": 0.99}
        strict = client.load_variant("base+rag", alias_of="base", retrieval=policy)
        assert strict.status == 2 and strict.alias_of == "base" and strict.retrieval.k == 3
        catalog = server.server.catalog
        assert catalog.get("base+rag").engine is catalog.get("base").engine
        # No passage is that similar: the prompt goes through unchanged.
        reply = client.generate(QUESTION, variant="base+rag", max_tokens=1)
        assert reply.passages == () and reply.prompt_tokens == len(QUESTION)
        # An alias of an alias serves the same engine.
        again = client.load_variant("again", alias_of="base+rag", retrieval={"index": "facts", "k": 1})
        assert again.alias_of == "base"
        used = client.generate(QUESTION, variant="again", max_tokens=1).passages
        assert [p.doc_id for p in used] == ["mirren"]
        client.unload_variant("again")
        client.unload_variant("base+rag")
        assert client.generate("x", variant="base", max_tokens=1).completion_tokens == 1
        assert {v.name for v in client.list_variants()} == {"base"}

        invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
        errors = [
            ({"alias_of": "ghost"}, not_found, "alias_of:"),
            ({"retrieval": {"index": "nope"}}, not_found, "retrieval.index:"),
            ({"retrieval": {"index": ""}}, invalid, "retrieval.index:"),
            ({"retrieval": {"index": "facts", "k": 6}}, invalid, "retrieval.k:"),
            ({"retrieval": {"index": "facts", "k": -1}}, invalid, "retrieval.k:"),
            ({"retrieval": {"index": "facts", "template": "{prompt}"}}, invalid, "retrieval.template:"),
        ]
        for fields, code, starts in errors:
            fields = {"alias_of": "base", **fields}
            got, message = code_and_message(lambda f=fields: client.load_variant("bad+rag", **f))
            assert got == code and message.startswith(starts), (fields, message)
        assert {v.name for v in client.list_variants()} == {"base"}
