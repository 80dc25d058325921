"""Greedy recitation of prompt/target pairs and the teacher-forced memorization scores."""

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, Field

from lethe.edits.evaluation.batching import chunks, left_pad
from lethe.edits.evaluation.datasets import MemorizationItem, load_memorization_set
from lethe.edits.evaluation.generation import Progress, greedy_generate
from lethe.edits.evaluation.levenshtein import similarity
from lethe.edits.evaluation.loading import LoadedModel
from lethe.edits.evaluation.schema import DataRef, EvalResult


class MemorizationSettings(BaseModel):
    batch_size: int = Field(16, ge=1)
    loose_threshold: float = Field(0.75, gt=0, le=1)
    """An item counts as loosely recited when 1 - d/L reaches this (the paper's 0.75)."""


@dataclass(frozen=True)
class ItemScore:
    id: str
    group: str
    generated_ids: list[int]
    strict: bool
    loose: bool
    similarity: float
    extraction_strength: float
    exact_memorization: float


def extraction_strength(correct: Sequence[bool]) -> float:
    """1 - k/L, with k the earliest position from which every teacher-forced argmax is right."""
    k = len(correct)
    while k > 0 and correct[k - 1]:
        k -= 1
    return 1.0 - k / len(correct)


@torch.no_grad()
def teacher_forced_correct(
    model: torch.nn.Module,
    items: Sequence[MemorizationItem],
    pad_id: int,
    *,
    batch_size: int = 16,
) -> list[list[bool]]:
    """Per item and target token: does the argmax given the true preceding tokens match it?"""
    out: list[list[bool]] = []
    for batch in chunks(len(items), batch_size):
        rows = [items[i].prompt_ids + items[i].target_ids for i in batch]
        ids, mask, positions = left_pad(rows, pad_id)
        predicted = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits.argmax(-1)
        width = ids.shape[1]
        for row, i in enumerate(batch):
            target = items[i].target_ids
            start = width - len(target)
            guesses = predicted[row, start - 1 : width - 1].tolist()
            out.append([g == t for g, t in zip(guesses, target, strict=True)])
    return out


def score_items(
    model: torch.nn.Module,
    items: Sequence[MemorizationItem],
    pad_id: int,
    settings: MemorizationSettings,
    progress: Progress | None = None,
) -> list[ItemScore]:
    generated = greedy_generate(
        model,
        [item.prompt_ids for item in items],
        [len(item.target_ids) for item in items],
        pad_id,
        batch_size=settings.batch_size,
        progress=progress,
    )
    forced = teacher_forced_correct(model, items, pad_id, batch_size=settings.batch_size)
    scores = []
    for item, output, correct in zip(items, generated, forced, strict=True):
        sim = similarity(output, item.target_ids)
        scores.append(
            ItemScore(
                id=item.id,
                group=item.group,
                generated_ids=output,
                strict=output == item.target_ids,
                loose=sim >= settings.loose_threshold,
                similarity=sim,
                extraction_strength=extraction_strength(correct),
                exact_memorization=sum(correct) / len(correct),
            )
        )
    return scores


def aggregate(scores: Sequence[ItemScore]) -> dict[str, float]:
    """Shares in [0, 1] over items; `similarity` is the mean 1 - d/L."""
    n = len(scores)
    return {
        "items": float(n),
        "strict": sum(s.strict for s in scores) / n,
        "loose": sum(s.loose for s in scores) / n,
        "similarity": sum(s.similarity for s in scores) / n,
        "extraction_strength": sum(s.extraction_strength for s in scores) / n,
        "exact_memorization": sum(s.exact_memorization for s in scores) / n,
    }


def evaluate_memorization(
    loaded: LoadedModel,
    set_path: Path,
    settings: MemorizationSettings | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    settings = settings or MemorizationSettings()
    started = time.perf_counter()
    items = load_memorization_set(set_path, loaded.tokenizer)
    scores = score_items(loaded.model, items, loaded.pad_id, settings, progress)
    by_group: dict[str, list[ItemScore]] = defaultdict(list)
    for score in scores:
        by_group[score.group].append(score)
    decode = loaded.tokenizer.decode
    rows = [asdict(s) | {"generated": decode(s.generated_ids)} for s in scores]
    return EvalResult(
        command="memorization",
        model=loaded.ref,
        data=DataRef.of(set_path, [item.target_ids for item in items]),
        settings=settings.model_dump(),
        metrics=aggregate(scores),
        groups={name: aggregate(group) for name, group in sorted(by_group.items())}
        if len(by_group) > 1
        else {},
        items=rows,
        seconds=time.perf_counter() - started,
    )


def count_items(set_path: Path) -> int:
    """Number of non-empty lines, for sizing a progress bar before the set is tokenized."""
    return sum(1 for line in set_path.read_text(encoding="utf-8").splitlines() if line.strip())
