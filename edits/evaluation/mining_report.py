"""What a mining run tried and kept, as JSON (format `lethe-mine/1`) and a Markdown summary."""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from lethe.edits import __version__
from lethe.edits.evaluation.mining import Outcome
from lethe.edits.evaluation.schema import DataRef, ModelRef


class Counts(BaseModel):
    tried: int = 0
    """Candidates decoded."""
    strict: int = 0
    """Greedy output equal to the target."""
    loose: int = 0
    """Similarity at or above the loose threshold (strict ones included, as in the paper)."""
    kept: int = 0
    """Written to the set: recited, with no overlapping kept target in the same text and format."""
    kept_strict: int = 0

    def add(self, outcome: Outcome) -> None:
        self.tried += 1
        self.strict += outcome.strict
        self.loose += outcome.loose
        self.kept += outcome.kept
        self.kept_strict += outcome.kept and outcome.strict


class MiningReport(BaseModel):
    format: Literal["lethe-mine/1"] = "lethe-mine/1"
    lethe_version: str = __version__
    created: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    model: ModelRef
    sources: DataRef
    settings: dict[str, Any]
    dropped: dict[str, int]
    """Candidates never decoded: duplicates of another, or targets already in their own prompt."""
    totals: Counts
    by_group: dict[str, Counts]
    """Per `kind/format`, the group names the sets carry."""
    by_kind: dict[str, Counts]
    by_format: dict[str, Counts]
    by_category: dict[str, Counts]
    sets: dict[str, str] = Field(default_factory=dict)
    """Which file holds which kind."""
    seconds: float


def tally(outcomes: Sequence[Outcome], key: Callable[[Outcome], str]) -> dict[str, Counts]:
    counts: dict[str, Counts] = {}
    for outcome in outcomes:
        counts.setdefault(key(outcome), Counts()).add(outcome)
    return dict(sorted(counts.items()))


def build_report(
    outcomes: Sequence[Outcome],
    *,
    model: ModelRef,
    sources: DataRef,
    settings: dict[str, Any],
    dropped: dict[str, int],
    sets: dict[str, str],
    seconds: float,
) -> MiningReport:
    totals = Counts()
    for outcome in outcomes:
        totals.add(outcome)
    return MiningReport(
        model=model,
        sources=sources,
        settings=settings,
        dropped=dropped,
        totals=totals,
        by_group=tally(outcomes, lambda o: f"{o.candidate.source.kind}/{o.candidate.format}"),
        by_kind=tally(outcomes, lambda o: o.candidate.source.kind),
        by_format=tally(outcomes, lambda o: o.candidate.format),
        by_category=tally(outcomes, lambda o: o.candidate.source.category),
        sets=sets,
        seconds=seconds,
    )


def _rows(title: str, counts: dict[str, Counts]) -> list[str]:
    lines = [
        f"| {title} | tried | strict | loose | kept | kept strict |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in counts.items():
        lines.append(f"| {name} | {c.tried} | {c.strict} | {c.loose} | {c.kept} | {c.kept_strict} |")
    return lines


def render(report: MiningReport) -> str:
    t = report.totals
    dropped = ", ".join(f"{n} {why}" for why, n in report.dropped.items())
    lines = [
        "## lethe eval mine",
        "",
        f"Model: `{report.model.name}`; sources: `{report.sources.path}` ({report.sources.items} texts).",
        f"Tried {t.tried} candidates ({dropped} dropped before decoding); recited {t.strict} strictly "
        f"and {t.loose} loosely (strict included); kept {t.kept} ({t.kept_strict} strict) "
        "after thinning overlaps.",
        "",
        *_rows("kind/format", report.by_group),
        "",
        *_rows("category", report.by_category),
        "",
    ]
    return "\n".join(lines)
