"""Start-up with indexes: the no-configuration demo index and `+rag` aliases, configuration checks,
and a server that refuses to start on a misconfigured index or policy."""

import asyncio

import pytest

from lethe.retrieval.augment import RetrievalPolicy
from lethe.service.config import IndexSpec, VariantSpec, load_settings
from lethe.service.errors import IndexOpenFailed, InvalidRequest, UnknownIndex, UnknownVariant
from lethe.service.startup import DEMO_POLICY, demo_rag_variants, initial_indexes, initial_variants
from tests.service.conftest import ServerThread, settings_for
from tests.service.knowledge import build_index
from tests.service.tiny import build_edited_variant


def test_no_configuration_serves_the_demo_index_and_a_rag_alias_per_pruned_variant(tiny_model, lethe_home):
    build_edited_variant(tiny_model, lethe_home / "checkpoints" / "pruned")
    build_edited_variant(tiny_model, lethe_home / "checkpoints" / "forget-a", seed=2)
    settings = load_settings(None, model=str(tiny_model))
    variants = initial_variants(settings)
    rag = demo_rag_variants(settings, variants)
    assert [v.name for v in variants] == ["tiny-base", "forget-a", "pruned"]
    assert rag == [
        VariantSpec(name="forget-a+rag", alias_of="forget-a", retrieval=DEMO_POLICY),
        VariantSpec(name="pruned+rag", alias_of="pruned", retrieval=DEMO_POLICY),
    ]
    assert RetrievalPolicy(index="demo", k=5) == DEMO_POLICY
    assert initial_indexes(settings) == [
        IndexSpec(name="demo", path=lethe_home / "indexes" / "demo", demo=True)
    ]


def test_a_configured_server_gets_only_what_it_declares(tiny_model, tmp_path, lethe_home):
    build_edited_variant(tiny_model, lethe_home / "checkpoints" / "pruned")
    declared = IndexSpec(name="facts", path=tmp_path / "facts")
    for overrides in (
        {"indexes": [declared]},
        {"variants": [VariantSpec(name="base", model=str(tiny_model))]},
        {"demo_index": False},
    ):
        settings = load_settings(None, model=str(tiny_model), **overrides)
        assert initial_indexes(settings) == settings.indexes
        assert demo_rag_variants(settings, initial_variants(settings)) == []


def test_configuration_checks(tmp_path):
    config = tmp_path / "lethe.yaml"
    config.write_text(
        "variants:\n"
        "  - {name: base, model: /m}\n"
        "  - {name: base+rag, alias_of: base, retrieval: {index: facts, k: 4, min_score: 0.2}}\n"
        "indexes:\n"
        "  - {name: facts, path: /data/facts, limits: {max_k: 8}}\n"
    )
    settings = load_settings(config)
    assert settings.variants[1].retrieval == RetrievalPolicy(index="facts", k=4, min_score=0.2)
    assert settings.indexes[0].limits.max_k == 8
    bad = [
        ("variants:\n  - {name: a, alias_of: b, engine: vllm}\n", "alias uses its target's engine"),
        ("variants:\n  - {name: a, alias_of: b, model: m}\n", "exactly one of"),
        ("variants:\n  - {name: a, model: m, retrieval: {index: x, k: 0}}\n", "variants.0.retrieval.k"),
        ("indexes:\n  - {name: i, path: /a}\n  - {name: i, path: /b}\n", "names must be unique, repeated: i"),
        ("indexes:\n  - {name: 'bad name', path: /a}\n", "indexes.0.name"),
    ]
    for text, expected in bad:
        config.write_text(text)
        with pytest.raises(InvalidRequest, match="config") as error:
            load_settings(config)
        assert expected in str(error.value), str(error.value)


def start_failure(settings, variants) -> Exception:
    """The error `LetheServer.start` raises; the port it bound is released."""
    from lethe.service.server import LetheServer

    server = LetheServer(settings, variants)
    with pytest.raises(Exception) as error:
        asyncio.run(server.start())
    assert server._server is None
    return error.value


def test_a_misconfigured_index_or_policy_stops_the_start(tiny_model, tmp_path):
    missing = IndexSpec(name="facts", path=tmp_path / "nowhere")
    error = start_failure(settings_for(indexes=[missing]), [])
    assert isinstance(error, IndexOpenFailed)
    assert "index 'facts'" in str(error) and "nowhere" in str(error) and "lethe index build" in str(error)

    facts = IndexSpec(name="facts", path=build_index(tmp_path / "facts"), limits={"max_k": 2})
    base = VariantSpec(name="base", model=str(tiny_model))
    wrong_index = VariantSpec(name="base+rag", alias_of="base", retrieval={"index": "other"})
    error = start_failure(settings_for(indexes=[facts]), [base, wrong_index])
    assert isinstance(error, UnknownIndex) and str(error).startswith("retrieval.index:")
    assert "'base+rag'" in str(error) and "facts" in str(error)
    too_many = VariantSpec(name="base+rag", alias_of="base", retrieval={"index": "facts", "k": 3})
    error = start_failure(settings_for(indexes=[facts]), [base, too_many])
    assert isinstance(error, InvalidRequest) and str(error).startswith("retrieval.k:")
    before = VariantSpec(name="early+rag", alias_of="base", retrieval={"index": "facts", "k": 1})
    error = start_failure(settings_for(indexes=[facts]), [before, base])
    assert isinstance(error, UnknownVariant) and str(error).startswith("alias_of:")


@pytest.mark.slow
def test_the_demo_index_is_built_on_first_start_and_reused(tmp_path, tiny_model, tiny_variant):
    from lethe.client import LetheClient
    from lethe.retrieval.demo import load_questions

    demo = IndexSpec(name="demo", path=tmp_path / "home" / "indexes" / "demo", demo=True)
    variants = [
        VariantSpec(name="base", model=str(tiny_model)),
        VariantSpec(name="pruned", checkpoint=tiny_variant),
        VariantSpec(name="pruned+rag", alias_of="pruned", retrieval=DEMO_POLICY),
    ]
    server = ServerThread(settings_for(indexes=[demo]), variants)
    try:
        with LetheClient(server.target, timeout=60) as client:
            stats = client.index_stats("demo")
            assert stats.documents == 329 and stats.passages >= 329
            question = load_questions()[0]
            prompt = f"Question: {question.question}\nAnswer:"
            reply = client.generate(prompt, variant="pruned+rag", max_tokens=1)
            assert question.doc_id in [p.doc_id for p in reply.passages]
    finally:
        server.stop()
    again = ServerThread(settings_for(indexes=[demo]), variants[:1])
    try:
        with LetheClient(again.target, timeout=60) as client:
            assert client.index_stats("demo").snapshot == stats.snapshot, "opened, not rebuilt"
    finally:
        again.stop()
