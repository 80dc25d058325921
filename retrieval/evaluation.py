"""Answer matching and retrieval recall@k: does a retrieved passage contain the answer?"""

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from lethe.retrieval.index import KnowledgeIndex
from lethe.retrieval.passages import Hit


def normalize(text: str) -> str:
    """Lower case, accents and punctuation removed, whitespace collapsed ("Tórshavn" = "torshavn")."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", plain).split())


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    """True if any accepted answer occurs in `text` as whole words, after normalisation."""
    haystack = f" {normalize(text)} "
    return any(f" {normalize(a)} " in haystack for a in answers if normalize(a))


def exact_match(prediction: str, answers: Sequence[str]) -> bool:
    return normalize(prediction) in {normalize(a) for a in answers}


@dataclass(frozen=True)
class RecallReport:
    k: int
    overall: float
    by_bucket: dict[str, float]
    missed: list[str]


def retrieval_recall(
    index: KnowledgeIndex,
    questions: Sequence[tuple[str, str, Sequence[str], str]],
    k: int = 5,
) -> RecallReport:
    """Share of questions for which one of the top-k passages contains an accepted answer.

    `questions` are (id, question text, accepted answers, bucket) tuples, so any question type
    can be scored.
    """
    return recall_of_hits(questions, index.search_many([q[1] for q in questions], k), k)


def recall_of_hits(
    questions: Sequence[tuple[str, str, Sequence[str], str]],
    results: Sequence[Sequence[Hit]],
    k: int,
) -> RecallReport:
    """Recall of search results already in hand (one list of hits per question, at most k each)."""
    hits: dict[str, list[bool]] = defaultdict(list)
    missed = []
    for (question_id, _, answers, bucket), passages in zip(questions, results, strict=True):
        found = any(passage_contains(h, answers) for h in passages[:k])
        hits[bucket].append(found)
        if not found:
            missed.append(question_id)
    every = [x for values in hits.values() for x in values]
    return RecallReport(
        k=k,
        overall=sum(every) / len(every) if every else 0.0,
        by_bucket={bucket: sum(v) / len(v) for bucket, v in sorted(hits.items())},
        missed=missed,
    )


def passage_contains(hit: Hit, answers: Sequence[str]) -> bool:
    """Whether a retrieved passage (its title and text) contains an accepted answer."""
    return contains_answer(f"{hit.passage.title or ''}. {hit.passage.text}", answers)
