"""Closed-book and retrieval-augmented question answering on a fact question set.

The scoring behind `lethe eval facts`. A base model answers tersely when shown a few question and
answer pairs first, so every question is asked in a fixed few-shot format; with retrieval, the
passages go before that same prompt through `augment_prompt`, the layout the service uses. The
model itself comes in as a `Complete` function (prompts to completions), so nothing here loads a
model and tests can score made-up answers.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lethe.retrieval.augment import RetrievalPolicy, augment_prompt, usable_hits
from lethe.retrieval.demo import Question
from lethe.retrieval.evaluation import (
    RecallReport,
    contains_answer,
    exact_match,
    passage_contains,
    recall_of_hits,
)
from lethe.retrieval.index import KnowledgeIndex
from lethe.retrieval.passages import Hit

Complete = Callable[[Sequence[str]], list[str]]
"""Greedy completions of prompts, in order."""

QUESTION_FORMAT = "Question: {question}\nAnswer:"

# About entities that neither the demo corpus nor its question set mention (a test checks that no
# accepted answer of the packaged set occurs here). A place, a person and a year.
FEW_SHOT: tuple[tuple[str, str], ...] = (
    ("What is the capital city of Hawaii?", "Honolulu"),
    ("Who wrote the novel Moby-Dick?", "Herman Melville"),
    ("In which year did the airship Hindenburg catch fire?", "1937"),
)

CONDITIONS = ("closed_book", "retrieval")


def few_shot_prompt(question: str) -> str:
    """The examples, then the question, ending in `Answer:` for the model to continue."""
    shots = [QUESTION_FORMAT.format(question=q) + f" {a}" for q, a in FEW_SHOT]
    return "\n\n".join([*shots, QUESTION_FORMAT.format(question=question)])


def rag_prompt(question: str, hits: Sequence[Hit], policy: RetrievalPolicy) -> str:
    """The few-shot prompt with the policy's passages laid out before it, as the service does."""
    used = usable_hits(hits, policy.min_score)
    return augment_prompt(few_shot_prompt(question), used, policy.template, policy.passage_format)


def cut_answer(completion: str) -> str:
    """The answer in a completion: its first non-blank line, stripped (the model goes on to invent
    the next question after a newline)."""
    return completion.strip().split("\n", 1)[0].strip()


@dataclass(frozen=True)
class AnswerScore:
    answer: str
    exact_match: bool
    contains: bool


def score_completion(completion: str, accepted: Sequence[str]) -> AnswerScore:
    """Exact match: the cut answer equals an accepted answer after normalisation. Contains: an
    accepted answer occurs in the cut answer as whole words."""
    answer = cut_answer(completion)
    return AnswerScore(answer, exact_match(answer, accepted), contains_answer(answer, accepted))


@dataclass(frozen=True)
class Retrieval:
    """What the index returned for each question, searched once for every model measured."""

    policy: RetrievalPolicy
    hits: list[list[Hit]]
    recall: RecallReport


def retrieve(index: KnowledgeIndex, questions: Sequence[Question], policy: RetrievalPolicy) -> Retrieval:
    """Search the index with each question's text (top `policy.k`) and score recall@k."""
    texts = [q.question for q in questions]
    step = index.limits.max_queries
    hits = [
        h
        for start in range(0, len(texts), step)
        for h in index.search_many(texts[start : start + step], policy.k)
    ]
    recall = recall_of_hits([_recall_row(q) for q in questions], hits, policy.k)
    return Retrieval(policy, hits, recall)


def _recall_row(question: Question) -> tuple[str, str, list[str], str]:
    return question.id, question.question, question.accepted, question.popularity


@dataclass(frozen=True)
class FactsOutcome:
    """Shares in [0, 1] overall (`metrics`) and per popularity bucket (`groups`), one row per question."""

    metrics: dict[str, float]
    groups: dict[str, dict[str, float]]
    items: list[dict[str, Any]]


def evaluate_facts(
    questions: Sequence[Question], complete: Complete, retrieval: Retrieval | None = None
) -> FactsOutcome:
    """Ask every question closed-book and, given `retrieval`, again with its passages."""
    prompts = {"closed_book": [few_shot_prompt(q.question) for q in questions]}
    if retrieval is not None:
        prompts["retrieval"] = [
            rag_prompt(q.question, hits, retrieval.policy)
            for q, hits in zip(questions, retrieval.hits, strict=True)
        ]
    conditions = list(prompts)
    flat = complete([p for condition in conditions for p in prompts[condition]])
    completions = {c: flat[n * len(questions) : (n + 1) * len(questions)] for n, c in enumerate(conditions)}

    items = []
    for i, question in enumerate(questions):
        row: dict[str, Any] = {
            "id": question.id,
            "popularity": question.popularity,
            "question": question.question,
            "accepted": question.accepted,
        }
        for condition in conditions:
            score = score_completion(completions[condition][i], question.accepted)
            row[condition] = {
                "completion": completions[condition][i],
                "answer": score.answer,
                "exact_match": score.exact_match,
                "contains": score.contains,
            }
        if retrieval is not None:
            hits = retrieval.hits[i]
            row["passages"] = [
                {
                    "id": h.passage.id,
                    "score": round(h.score, 4),
                    "contains": passage_contains(h, question.accepted),
                }
                for h in hits
            ]
        items.append(row)

    buckets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in items:
        buckets[row["popularity"]].append(row)
    metrics = _aggregate(items, conditions)
    groups = {name: _aggregate(rows, conditions) for name, rows in sorted(buckets.items())}
    if retrieval is not None:  # model-independent, computed once in `retrieve`
        name = f"recall@{retrieval.recall.k}"
        metrics[name] = retrieval.recall.overall
        for bucket, recall in retrieval.recall.by_bucket.items():
            groups[bucket][name] = recall
    return FactsOutcome(metrics=metrics, groups=groups, items=items)


def _aggregate(rows: Sequence[dict[str, Any]], conditions: Sequence[str]) -> dict[str, float]:
    metrics = {"items": float(len(rows))}
    for condition in conditions:
        for measure in ("exact_match", "contains"):
            metrics[f"{condition}.{measure}"] = sum(row[condition][measure] for row in rows) / len(rows)
    return metrics
