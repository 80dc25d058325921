"""Mine a memorized-text set: cut known texts into prompt/target pairs, keep those the model recites.

Two formats, after Merullo et al. (2025): a *window* is a 64-token prompt and the 48 tokens that
follow it, slid over every text long enough to hold one; a *quote* ends where a sentence, clause
or line ends: its target is the last 8 tokens before that end and its prompt the text before them
(for a text too short for a window, that is all but its last 8 tokens). A candidate is kept when
greedy decoding reproduces its target strictly or loosely (token Levenshtein similarity >= 0.75).
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field

from lethe.edits.atomic import atomic_write_text
from lethe.edits.errors import InvalidArgument
from lethe.edits.evaluation.generation import Progress, greedy_generate
from lethe.edits.evaluation.levenshtein import similarity
from lethe.edits.evaluation.sources import SourceText, boundaries
from lethe.edits.evaluation.token_stream import special_prefix

Format = Literal["window", "quote"]


class MiningSettings(BaseModel):
    prompt_tokens: int = Field(64, ge=1)
    target_tokens: int = Field(48, ge=1)
    stride: int = Field(32, ge=1)
    """Windows start every `stride` tokens; kept windows whose targets overlap are thinned out."""
    quote_tokens: int = Field(8, ge=1)
    quote_context: int = Field(104, ge=1)
    """Most tokens a quote's prompt holds. 104 = 64 + 48 - 8: a text too short for a window is
    always cut as all but its last 8 tokens, and no quote sees more text than a window does."""
    batch_size: int = Field(16, ge=1)
    loose_threshold: float = Field(0.75, gt=0, le=1)


@dataclass(frozen=True)
class Span:
    """Token offsets in a text: the prompt is [start, split), the target [split, end)."""

    start: int
    split: int
    end: int

    def overlaps(self, other: "Span") -> bool:
        return self.split < other.end and other.split < self.end


@dataclass(frozen=True)
class Candidate:
    source: SourceText
    format: Format
    span: Span
    prompt_ids: list[int]
    """With the model's leading special tokens (Gemma's BOS); the span counts text tokens only."""
    target_ids: list[int]
    prompt: str
    target: str


@dataclass(frozen=True)
class Outcome:
    candidate: Candidate
    generated_ids: list[int]
    strict: bool
    loose: bool
    similarity: float
    kept: bool = False


def window_spans(n_tokens: int, settings: MiningSettings) -> list[Span]:
    width = settings.prompt_tokens + settings.target_tokens
    return [
        Span(start, start + settings.prompt_tokens, start + width)
        for start in range(0, n_tokens - width + 1, settings.stride)
    ]


def quote_spans(ends: Sequence[int], settings: MiningSettings) -> list[Span]:
    """One quote per token end that leaves at least one prompt token before its target."""
    spans = []
    for end in sorted(set(ends)):
        split = end - settings.quote_tokens
        if split >= 1:
            spans.append(Span(max(0, split - settings.quote_context), split, end))
    return spans


def token_ends(offsets: Sequence[tuple[int, int]], char_ends: Sequence[int]) -> list[int]:
    """For each character offset where a token ends, the number of tokens up to it.

    An offset inside a token (a tokenizer that merged the full stop with what follows) has no
    clean cut and is dropped.
    """
    by_char = {stop: index + 1 for index, (_, stop) in enumerate(offsets)}
    return [by_char[char] for char in char_ends if char in by_char]


def cut(source: SourceText, tokenizer: Any, settings: MiningSettings) -> list[Candidate]:
    """Every window and quote candidate of one text, windows first."""
    if not getattr(tokenizer, "is_fast", False):
        raise InvalidArgument("mining needs a fast tokenizer: quotes are cut at character offsets")
    encoded = tokenizer(source.text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), list(encoded["offset_mapping"])
    prefix = special_prefix(tokenizer)
    spans: list[tuple[Format, Span]] = [("window", s) for s in window_spans(len(ids), settings)]
    ends = token_ends(offsets, boundaries(source.text))
    spans += [("quote", s) for s in quote_spans(ends, settings)]

    def prompt_text(span: Span) -> str:
        return source.text[offsets[span.start][0] : offsets[span.split - 1][1]]

    def target_text(span: Span) -> str:
        # From where the prompt's text ends, so the white space between the two stays with the target.
        return source.text[offsets[span.split - 1][1] : offsets[span.end - 1][1]]

    return [
        Candidate(
            source=source,
            format=fmt,
            span=span,
            prompt_ids=prefix + ids[span.start : span.split],
            target_ids=ids[span.split : span.end],
            prompt=prompt_text(span),
            target=target_text(span),
        )
        for fmt, span in spans
    ]


def _contains(haystack: Sequence[int], needle: Sequence[int]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def build_candidates(
    sources: Sequence[SourceText], tokenizer: Any, settings: MiningSettings
) -> tuple[list[Candidate], dict[str, int]]:
    """Candidates of all texts, and how many were dropped before decoding and why.

    `duplicate`: the same prompt and target as an earlier candidate. `repeat`: the target already
    stands in the prompt (a refrain), so the model could copy it from context instead of memory.
    """
    seen: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    kept: list[Candidate] = []
    dropped = {"duplicate": 0, "repeat": 0}
    for source in sources:
        for candidate in cut(source, tokenizer, settings):
            key = (tuple(candidate.prompt_ids), tuple(candidate.target_ids))
            if key in seen:
                dropped["duplicate"] += 1
            elif _contains(candidate.prompt_ids, candidate.target_ids):
                dropped["repeat"] += 1
            else:
                seen.add(key)
                kept.append(candidate)
    return kept, dropped


def recite(
    model: torch.nn.Module,
    candidates: Sequence[Candidate],
    pad_id: int,
    settings: MiningSettings,
    progress: Progress | None = None,
) -> list[list[int]]:
    """Greedy continuations, as long as each target, in the order of `candidates`.

    Candidates are decoded sorted by length so that a batch pads and generates little beyond
    what its members need.
    """
    order = sorted(
        range(len(candidates)),
        key=lambda i: (len(candidates[i].target_ids), len(candidates[i].prompt_ids)),
    )
    outputs = greedy_generate(
        model,
        [candidates[i].prompt_ids for i in order],
        [len(candidates[i].target_ids) for i in order],
        pad_id,
        batch_size=settings.batch_size,
        progress=progress,
    )
    generated: list[list[int]] = [[] for _ in candidates]
    for i, output in zip(order, outputs, strict=True):
        generated[i] = output
    return generated


def judge(
    candidates: Sequence[Candidate], generated: Sequence[Sequence[int]], threshold: float
) -> list[Outcome]:
    outcomes = []
    for candidate, output in zip(candidates, generated, strict=True):
        sim = similarity(output, candidate.target_ids)
        outcomes.append(
            Outcome(
                candidate=candidate,
                generated_ids=list(output),
                strict=list(output) == candidate.target_ids,
                loose=sim >= threshold,
                similarity=sim,
            )
        )
    return outcomes


def select(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Mark recited candidates kept, at most one per stretch of target text per text and format.

    Overlapping windows (stride 32 < target 48) would count one remembered passage twice; strict
    recitations are preferred, then higher similarity, then earlier text.
    """
    ranked = sorted(
        (i for i, o in enumerate(outcomes) if o.loose),
        key=lambda i: (not outcomes[i].strict, -outcomes[i].similarity, outcomes[i].candidate.span.split),
    )
    taken: dict[tuple[str, str], list[Span]] = {}
    chosen: set[int] = set()
    for i in ranked:
        candidate = outcomes[i].candidate
        spans = taken.setdefault((candidate.source.id, candidate.format), [])
        if not any(candidate.span.overlaps(span) for span in spans):
            spans.append(candidate.span)
            chosen.add(i)
    return [replace(o, kept=i in chosen) for i, o in enumerate(outcomes)]


def mine(
    model: torch.nn.Module,
    candidates: Sequence[Candidate],
    pad_id: int,
    settings: MiningSettings,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Decode every candidate greedily, judge it against its target, mark the ones to keep."""
    generated = recite(model, candidates, pad_id, settings, progress)
    return select(judge(candidates, generated, settings.loose_threshold))


def item_row(outcome: Outcome) -> dict[str, Any]:
    """One line of the mined set, in the format `lethe eval memorization --set` reads."""
    c = outcome.candidate
    return {
        "id": f"{c.source.id}/{c.format}@{c.span.split}",
        "group": f"{c.source.kind}/{c.format}",
        "kind": c.source.kind,
        "format": c.format,
        "category": c.source.category,
        "source": c.source.id,
        "strict": outcome.strict,
        "similarity": round(outcome.similarity, 4),
        "span": [c.span.start, c.span.split, c.span.end],
        "prompt": c.prompt,
        "target": c.target,
        "prompt_ids": c.prompt_ids,
        "target_ids": c.target_ids,
    }


def write_set(path: Path, outcomes: Sequence[Outcome]) -> int:
    """Write the kept outcomes as JSONL; returns how many."""
    rows = [item_row(o) for o in outcomes if o.kept]
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return len(rows)
