import pytest
from pydantic import ValidationError

from lethe.retrieval.augment import RetrievalPolicy, augment_prompt, usable_hits
from lethe.retrieval.passages import Hit, Passage


def _hit(pid: str, text: str, score: float, title: str | None = None) -> Hit:
    return Hit(Passage(id=pid, doc_id=pid, text=text, start=0, end=len(text), title=title), score)


def test_passages_come_before_the_prompt_in_rank_order() -> None:
    hits = [_hit("a", "Paris is in France.", 0.9, "Paris"), _hit("b", "Oslo is in Norway.", 0.5)]
    prompt = augment_prompt("Question: where is Paris?\nAnswer:", hits)
    assert prompt == "Paris: Paris is in France.\nOslo is in Norway.\n\nQuestion: where is Paris?\nAnswer:"


def test_no_passages_leaves_the_prompt_alone() -> None:
    assert augment_prompt("hello", []) == "hello"


def test_threshold_drops_weak_hits() -> None:
    hits = [_hit("a", "x", 0.8), _hit("b", "y", 0.2)]
    assert [h.passage.id for h in usable_hits(hits, 0.3)] == ["a"]


def test_policy_refuses_a_template_without_slots() -> None:
    with pytest.raises(ValidationError, match=r"\{prompt\}"):
        RetrievalPolicy(index="demo", template="{context} only")
    with pytest.raises(ValidationError):
        RetrievalPolicy(index="demo", k=0)
