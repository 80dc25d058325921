"""`lethe eval facts`: answer scoring, the few-shot and retrieval prompts, per-bucket counting with a
real index and the packaged embedder, and the command end to end on a tiny model."""

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lethe.edits.evaluation.schema import read_report
from lethe.retrieval.augment import RetrievalPolicy, augment_prompt
from lethe.retrieval.demo import Question, load_questions
from lethe.retrieval.embedding import TransformerEmbedder
from lethe.retrieval.evaluation import contains_answer
from lethe.retrieval.facts_eval import (
    FEW_SHOT,
    cut_answer,
    evaluate_facts,
    few_shot_prompt,
    rag_prompt,
    retrieve,
    score_completion,
)
from lethe.retrieval.index import KnowledgeIndex
from lethe.retrieval.passages import Hit, Passage
from lethe.service.cli import app, main
from tests.service.tiny import build_tiny_llama

# Two famous questions answered by the city documents, three obscure ones of which the last is
# answered by no document: recall is 1 for famous and 2/3 for obscure whatever the model says.
QUESTIONS = [
    {"id": "f1", "question": "What is the capital of France?", "answer": "Paris",
     "aliases": [], "popularity": "famous", "doc_id": "paris"},
    {"id": "f2", "question": "What is the capital city of Australia?", "answer": "Canberra",
     "aliases": [], "popularity": "famous", "doc_id": "canberra"},
    {"id": "o1", "question": "What is the highest mountain in Africa?", "answer": "Mount Kilimanjaro",
     "aliases": ["Kilimanjaro"], "popularity": "obscure", "doc_id": "kilimanjaro"},
    {"id": "o2", "question": "Which element has the symbol K, found in bananas?", "answer": "potassium",
     "aliases": [], "popularity": "obscure", "doc_id": "potassium"},
    {"id": "o3", "question": "Who painted the ceiling of the Sistine Chapel?", "answer": "Michelangelo",
     "aliases": ["Michelangelo Buonarroti"], "popularity": "obscure", "doc_id": "sistine"},
]  # fmt: skip


@pytest.fixture
def question_set(tmp_path: Path) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return path


@pytest.fixture
def city_index_dir(city_index: KnowledgeIndex) -> Path:
    return city_index.path


# --- scoring ------------------------------------------------------------------------------------


def test_the_answer_is_cut_at_the_first_newline() -> None:
    assert cut_answer(" Paris\n\nQuestion: What is the capital of Spain?\nAnswer: Madrid") == "Paris"
    assert cut_answer("\n  Paris  \nmore") == "Paris"  # leading blank lines are not an answer
    assert cut_answer("") == ""


@pytest.mark.parametrize(
    ("completion", "exact", "contains"),
    [
        (" Leonardo da Vinci\nQuestion:", True, True),
        (" Leonardo\n", True, True),  # an alias
        (" leonardo da vinci.", True, True),  # case and punctuation
        (" Leonardo da Vinci painted it", False, True),
        (" Michelangelo\nLeonardo da Vinci", False, False),  # the right answer only after the cut
        (" Leonardos", False, False),  # whole words only
        ("", False, False),
    ],
)
def test_exact_match_and_contains(completion: str, exact: bool, contains: bool) -> None:
    score = score_completion(completion, ["Leonardo da Vinci", "Leonardo", "da Vinci"])
    assert (score.exact_match, score.contains) == (exact, contains)


def test_accents_are_normalised_in_both_measures() -> None:
    score = score_completion(" Tórshavn.\n", ["Torshavn"])
    assert score.answer == "Tórshavn." and score.exact_match and score.contains


# --- prompts ------------------------------------------------------------------------------------


def test_few_shot_examples_give_away_no_packaged_answer() -> None:
    shots = "\n".join(f"{q} {a}" for q, a in FEW_SHOT)
    leaks = [q.id for q in load_questions() if contains_answer(shots, q.accepted)]
    assert leaks == []


def test_few_shot_prompt_ends_with_the_question() -> None:
    prompt = few_shot_prompt("Who painted the Mona Lisa?")
    assert prompt.endswith("\n\nQuestion: Who painted the Mona Lisa?\nAnswer:")
    assert prompt.count("Question:") == len(FEW_SHOT) + 1
    assert all(f"Answer: {answer}\n" in prompt for _, answer in FEW_SHOT)


def test_rag_prompt_is_the_service_layout_around_the_same_prompt() -> None:
    text = "Paris is the capital of France."
    hits = [
        Hit(Passage(id="p#0", doc_id="p", text=text, start=0, end=len(text), title="Paris"), 0.8),
        Hit(Passage(id="x#0", doc_id="x", text="Weak.", start=0, end=5), 0.1),
    ]
    question = "What is the capital of France?"
    policy = RetrievalPolicy(index="demo", min_score=0.2)
    prompt = rag_prompt(question, hits, policy)
    assert prompt == augment_prompt(few_shot_prompt(question), hits[:1])
    assert prompt.startswith("Paris: Paris is the capital of France.\n\nQuestion:")


# --- scoring a whole set against a real index ----------------------------------------------------


def _reader(questions: Sequence[Question]) -> tuple[list[list[str]], object]:
    """A stand-in model: answers France from memory, anything else only when a passage before the
    prompt holds the answer; records the prompts it was given."""
    by_text = {q.question: q for q in questions}
    calls: list[list[str]] = []

    def complete(prompts: Sequence[str]) -> list[str]:
        calls.append(list(prompts))
        out = []
        for prompt in prompts:
            question = by_text[re.findall(r"Question: (.*)\nAnswer:$", prompt)[0]]
            context = prompt.split("Question:", 1)[0]
            known = question.id == "f1" or contains_answer(context, question.accepted)
            out.append(f" {question.answer}\n\nQuestion: next?" if known else " I do not know\n")
        return out

    return calls, complete


def test_buckets_and_recall_from_a_real_index(question_set: Path, city_index: KnowledgeIndex) -> None:
    questions = load_questions(question_set)
    retrieval = retrieve(city_index, questions, RetrievalPolicy(index="cities", k=2))
    assert retrieval.recall.missed == ["o3"]
    calls, complete = _reader(questions)

    outcome = evaluate_facts(questions, complete, retrieval)

    assert len(calls) == 1 and len(calls[0]) == 2 * len(questions)
    assert outcome.metrics["items"] == 5
    assert outcome.groups["famous"]["items"] == 2 and outcome.groups["obscure"]["items"] == 3
    assert outcome.metrics["closed_book.exact_match"] == pytest.approx(1 / 5)
    assert outcome.groups["famous"]["closed_book.exact_match"] == pytest.approx(1 / 2)
    assert outcome.groups["obscure"]["closed_book.contains"] == 0
    # The reader answers from context exactly when a retrieved passage holds the answer.
    assert outcome.groups["famous"]["recall@2"] == 1.0
    assert outcome.groups["obscure"]["recall@2"] == pytest.approx(2 / 3)
    assert outcome.metrics["recall@2"] == pytest.approx(4 / 5)
    for name in ("famous", "obscure"):
        group = outcome.groups[name]
        assert group["retrieval.exact_match"] == group["retrieval.contains"] == group["recall@2"]
    row = next(item for item in outcome.items if item["id"] == "o1")
    assert row["retrieval"]["answer"] == "Mount Kilimanjaro" and row["retrieval"]["exact_match"]
    assert row["closed_book"]["answer"] == "I do not know"
    assert len(row["passages"]) == 2 and any(p["contains"] for p in row["passages"])


def test_closed_book_only_has_no_retrieval_metrics(question_set: Path) -> None:
    questions = load_questions(question_set)
    _, complete = _reader(questions)
    outcome = evaluate_facts(questions, complete)
    assert set(outcome.metrics) == {"items", "closed_book.exact_match", "closed_book.contains"}
    assert "passages" not in outcome.items[0]


# --- the command ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("facts-models")
    return (
        build_tiny_llama(root / "one", seed=0, max_positions=1024),
        build_tiny_llama(root / "two", seed=1, max_positions=1024),
    )


def test_command_compares_models_per_bucket(tiny_models, question_set, city_index_dir, tmp_path) -> None:
    out = tmp_path / "facts.json"
    args = ["eval", "facts", "--model", str(tiny_models[0]), "--compare", str(tiny_models[1]),
            "--index", str(city_index_dir), "--set", str(question_set), "-k", "2",
            "--max-new-tokens", "4", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    report = read_report(out)
    assert report.format == "lethe-eval/1" and report.command == "facts"
    assert [r.model.path for r in report.results] == [str(m.resolve()) for m in tiny_models]
    for measured in report.results:
        assert measured.data.items == 5 and measured.settings["k"] == 2
        assert measured.groups["famous"]["items"] == 2 and measured.groups["obscure"]["items"] == 3
        assert measured.metrics["recall@2"] == pytest.approx(4 / 5)
        assert measured.groups["obscure"]["recall@2"] == pytest.approx(2 / 3)
        assert measured.settings["retrieval_missed"] == ["o3"]
        for item in measured.items:
            assert {"closed_book", "retrieval"} <= set(item) and len(item["passages"]) == 2
            for condition in ("closed_book", "retrieval"):
                assert "\n" not in item[condition]["answer"]
        for metric, value in measured.metrics.items():
            assert metric == "items" or 0 <= value <= 1
    # The two random models answer differently: each result holds its own completions.
    first, second = ([i["closed_book"]["completion"] for i in r.items] for r in report.results)
    assert first != second

    markdown = out.with_suffix(".md").read_text()
    assert "### Exact match" in markdown and "### Answer contained" in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| bucket"))
    for model in tiny_models:
        assert f"closed-book: {model}" in header and f"+ retrieval: {model}" in header
    assert re.search(r"^\| obscure \| 3 \| 66\.7 % \|", markdown, re.M)
    assert re.search(r"^\| all \| 5 \| 80\.0 % \|", markdown, re.M)
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_other_sets_default_to_closed_book(tiny_models, question_set, tmp_path, lethe_home) -> None:
    out = tmp_path / "facts.json"
    args = ["eval", "facts", "--model", str(tiny_models[0]), "--set", str(question_set),
            "--max-new-tokens", "2", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "closed-book only" in result.output
    measured = read_report(out).results[0]
    assert "closed_book.exact_match" in measured.metrics
    assert not any(name.startswith(("retrieval.", "recall@")) for name in measured.metrics)
    assert not lethe_home.exists()  # no demo index was built


@pytest.mark.slow
def test_packaged_set_uses_the_demo_index_by_default(
    tiny_models, tmp_path, lethe_home, embedder: TransformerEmbedder
) -> None:
    from lethe.retrieval.demo import questions_path

    out = tmp_path / "facts.json"
    args = ["eval", "facts", "--model", str(tiny_models[0]), "--set", str(questions_path()),
            "--max-new-tokens", "1", "--batch-size", "64", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    measured = read_report(out).results[0]
    assert measured.settings["index"] == str(lethe_home / "indexes" / "demo")
    assert measured.metrics["items"] == len(load_questions())
    assert measured.metrics["recall@5"] >= 0.95  # the demo corpus answers its own questions


def _main_exit(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> int:
    monkeypatch.setattr(sys, "argv", ["lethe", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "MISSING", "--index", "INDEX"], "no such file"),
        (["--set", "SET", "--index", "INDEX", "-k", "0"], "-k must be from 1 to 100, got 0"),
        (["--set", "SET", "--index", "INDEX", "-k", "101"], "-k must be from 1 to 100, got 101"),
        (["--set", "SET", "--index", "NOWHERE"], "no index at"),
        (["--set", "SET", "--index", "INDEX", "--closed-book-only"], "not both"),
    ],
)
def test_user_errors_exit_2_without_traceback(
    tiny_models, question_set, city_index_dir, tmp_path, monkeypatch, capsys, extra, message
) -> None:
    paths = {"MISSING": tmp_path / "missing.jsonl", "SET": question_set, "INDEX": city_index_dir,
             "NOWHERE": tmp_path / "no-index"}  # fmt: skip
    out = tmp_path / "out.json"
    args = ["eval", "facts", "--model", str(tiny_models[0]), "--out", str(out)]
    args += [str(paths.get(arg, arg)) for arg in extra]
    assert _main_exit(monkeypatch, args) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: ") and message in stderr and "Traceback" not in stderr
    assert not out.exists()
