"""The shipped demo corpus: well-formed, each question answered by exactly one passage, and
retrievable with the real embedder."""

from collections import Counter
from pathlib import Path

import pytest

from lethe.retrieval.demo import facts_path, load_questions, open_or_build_demo_index
from lethe.retrieval.documents import load_documents
from lethe.retrieval.embedding import TransformerEmbedder
from lethe.retrieval.evaluation import contains_answer, exact_match, normalize, retrieval_recall


def test_corpus_and_questions_are_well_formed() -> None:
    documents = load_documents(facts_path())
    questions = load_questions()
    assert len(documents) >= 300 and len(questions) >= 140
    kinds = Counter(d.metadata["kind"] for d in documents)
    assert kinds["distractor"] >= 100
    buckets = Counter(q.popularity for q in questions)
    assert set(buckets) == {"famous", "mid", "obscure"} and min(buckets.values()) >= 40
    assert len({q.id for q in questions}) == len(questions)
    by_id = {d.id: d for d in documents}
    for question in questions:
        own = by_id[question.doc_id]
        assert own.metadata == {"kind": "fact", "popularity": question.popularity}
        assert contains_answer(f"{own.title}. {own.text}", question.accepted), question.id
        # No other passage mentions the answer (very short answers such as "Au" excepted).
        long_answers = [a for a in question.accepted if len(a) >= 3]
        for other in documents:
            if other.id != question.doc_id:
                text = f"{other.title}. {other.text}"
                assert not contains_answer(text, long_answers), (question.id, other.id)


def test_answer_matching_normalises_case_accents_and_punctuation() -> None:
    assert normalize("  Tórshavn, Faroe!") == "torshavn faroe"
    assert contains_answer("The capital is Tórshavn.", ["Torshavn"])
    assert not contains_answer("Marseille is large", ["Mars"])  # whole words only
    assert exact_match("Martin Luther King Jr", ["Martin Luther King Jr."])
    assert not exact_match("King", ["Martin Luther King Jr."])


@pytest.mark.slow
def test_retrieval_recall_on_the_demo_questions(tmp_path: Path, embedder: TransformerEmbedder) -> None:
    index = open_or_build_demo_index(tmp_path / "demo", embedder)
    assert open_or_build_demo_index(tmp_path / "demo", embedder).info().snapshot == "000001"  # reopened
    questions = [(q.id, q.question, q.accepted, q.popularity) for q in load_questions()]
    report = retrieval_recall(index, questions, k=5)
    assert report.overall >= 0.95, report
    assert min(report.by_bucket.values()) >= 0.9, report
