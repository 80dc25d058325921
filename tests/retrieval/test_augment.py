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


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("{context}{prompt}{x}", "unknown field {x}"),
        ("{0}", "unknown field {0}"),
        ("{}", "unknown field {}"),
        ("{context}{prompt}{0}", "unknown field {0}"),
        ("{context.upper}{prompt}", "unknown field {context.upper}"),
        ("{context}{prompt[0]}", "unknown field {prompt[0]}"),
        ("{context!r:>{x}}{prompt}", "{context} must be written plainly"),
        ("{context!r}{prompt}", "{context} must be written plainly"),
        ("{context:>99999999}{prompt}", "{context} must be written plainly"),
        ("{context}{prompt", "not a valid format string"),
        ("{context}}{prompt}", "not a valid format string"),
        ("{context} {prompt} }", "not a valid format string"),
        ("{prompt} only", "must contain {context}"),
    ],
)
def test_templates_that_cannot_be_filled_are_refused(template: str, says: str) -> None:
    with pytest.raises(ValidationError) as error:
        RetrievalPolicy(index="demo", template=template)
    [problem] = error.value.errors()
    assert problem["loc"] == ("template",) and says in problem["msg"], problem["msg"]


@pytest.mark.parametrize(
    ("passage_format", "says"),
    [
        ("{nope}", "unknown field {nope}; the fields are {title}, {text}"),
        ("{context}", "unknown field {context}"),
        ("{0}: {text}", "unknown field {0}"),
        ("{title!s}: {text}", "{title} must be written plainly"),
        ("{title: {text}", "not a valid format string"),
    ],
)
def test_passage_formats_that_cannot_be_filled_are_refused(passage_format: str, says: str) -> None:
    with pytest.raises(ValidationError) as error:
        RetrievalPolicy(index="demo", passage_format=passage_format)
    [problem] = error.value.errors()
    assert problem["loc"] == ("passage_format",) and says in problem["msg"], problem["msg"]


def test_every_accepted_layout_formats() -> None:
    policy = RetrievalPolicy(
        index="demo", template="{{literal}} {context}\n---\n{prompt} {prompt}", passage_format="[{text}]"
    )
    hits = [_hit("a", "Paris is in France.", 0.9, "Paris")]
    prompt = augment_prompt("Q?", hits, policy.template, policy.passage_format)
    assert prompt == "{literal} [Paris is in France.]\n---\nQ? Q?"
    assert RetrievalPolicy(index="demo", passage_format="{title}").passage_format == "{title}"
