"""The runs behind `lethe eval`: load each model in turn, measure it, write the report.

Every command measures one model or several side by side (`--compare`) and writes the same pair
of files: the JSON report (`schema.EvalReport`) and its Markdown summary next to it. `run_models`
is that loop; the other functions are one command each, over paths and settings, and return what
they wrote so that the caller only prints. `lethe eval facts` runs through `run_models` too, from
`lethe.retrieval.facts_run` (retrieval builds on edits, not the other way round).
"""

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from lethe.edits.evaluation.agreement import AgreementSettings, agreement_blocks, evaluate_agreement
from lethe.edits.evaluation.loading import LoadedModel, load_model
from lethe.edits.evaluation.memorization import MemorizationSettings, count_items, evaluate_memorization
from lethe.edits.evaluation.mining import MiningSettings, build_candidates, mine, write_set
from lethe.edits.evaluation.mining_report import build_report
from lethe.edits.evaluation.mining_report import render as render_mining
from lethe.edits.evaluation.perplexity import PerplexitySettings, evaluate_perplexity, perplexity_blocks
from lethe.edits.evaluation.schema import (
    Command,
    DataRef,
    EvalReport,
    EvalResult,
    write_atomic,
    write_report,
)
from lethe.edits.evaluation.sources import load_sources
from lethe.edits.evaluation.summary import render

Measure = Callable[[LoadedModel, Callable[[int], object]], EvalResult]
"""Measures one loaded model, reporting progress in items done since the last call."""


@dataclass(frozen=True)
class EvalRun:
    """A finished `lethe eval` command: the report, where it went, and its Markdown."""

    report: EvalReport
    json_path: Path
    markdown_path: Path
    markdown: str


def default_report_path(command: str) -> Path:
    return Path(f"lethe-eval-{command}.json")


def run_models(
    command: Command, names: Sequence[str], total: int, measure: Measure, out: Path | None = None
) -> EvalRun:
    """Load each model in turn and measure it (a progress bar of `total` items per model), then
    write the JSON report to `out` (default `lethe-eval-COMMAND.json`) and its Markdown beside it.

    One model is in memory at a time: each is dropped before the next loads.
    """
    results = []
    for name in names:
        loaded = load_model(name)
        with tqdm(total=total, desc=f"{command} {name}", unit="item", leave=False) as bar:
            results.append(measure(loaded, bar.update))
        del loaded
    report = EvalReport(command=command, results=results)
    out = out or default_report_path(command)
    write_report(report, out)
    markdown = render(report)
    write_atomic(out.with_suffix(".md"), markdown)
    return EvalRun(report=report, json_path=out, markdown_path=out.with_suffix(".md"), markdown=markdown)


def run_memorization(
    names: Sequence[str], set_path: Path, settings: MemorizationSettings, out: Path | None = None
) -> EvalRun:
    """Greedy recitation and teacher-forced memorization of a prompt/target set, per model."""
    total = count_items(set_path) if set_path.is_file() else 0
    return run_models(
        "memorization",
        names,
        total,
        lambda loaded, progress: evaluate_memorization(loaded, set_path, settings, progress),
        out,
    )


def run_perplexity(
    names: Sequence[str], text: Path, settings: PerplexitySettings, out: Path | None = None
) -> EvalRun:
    """Perplexity of `text`, per model; the text is cut into blocks once, with the first model's
    tokenizer (the models compared share a vocabulary)."""
    blocks = perplexity_blocks(load_model(names[0]).tokenizer, text, settings)
    return run_models(
        "perplexity",
        names,
        len(blocks),
        lambda loaded, progress: evaluate_perplexity(loaded, text, settings, progress, blocks),
        out,
    )


def run_agreement(
    names: Sequence[str], reference: str, text: Path, settings: AgreementSettings, out: Path | None = None
) -> EvalRun:
    """nDCG@k of each model's top-k next tokens against `reference`'s, over `text`."""
    parent = load_model(reference)
    blocks = agreement_blocks(parent.tokenizer, text, settings)
    return run_models(
        "agreement",
        names,
        len(blocks),
        lambda loaded, progress: evaluate_agreement(loaded, parent, text, settings, progress, blocks),
        out,
    )


@dataclass(frozen=True)
class MiningRun:
    """A finished `lethe eval mine`: the two sets, the report and its Markdown."""

    recitation_set: Path
    rule_set: Path
    report_path: Path
    markdown_path: Path
    markdown: str


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(f"{path.stem}{suffix}")


def run_mining(
    model: str,
    sources: Path,
    out: Path,
    settings: MiningSettings,
    *,
    rules_out: Path | None = None,
    report: Path | None = None,
) -> MiningRun:
    """Cut the source texts into windows and quotes, keep those the model recites greedily, and
    write the recited set to `out`, the rule set to `rules_out` (default OUT-rules.jsonl) and the
    report to `report` (default OUT-report.json, Markdown beside it)."""
    started = time.perf_counter()
    texts = load_sources(sources)
    loaded = load_model(model)
    candidates, dropped = build_candidates(texts, loaded.tokenizer, settings)
    with tqdm(total=len(candidates), desc=f"mine {model}", unit="candidate") as bar:
        outcomes = mine(loaded.model, candidates, loaded.pad_id, settings, bar.update)
    rules_out = rules_out or _sibling(out, "-rules.jsonl")
    report = report or _sibling(out, "-report.json")
    write_set(out, [o for o in outcomes if o.candidate.source.kind == "recitation"])
    write_set(rules_out, [o for o in outcomes if o.candidate.source.kind == "rule"])
    result = build_report(
        outcomes,
        model=loaded.ref,
        sources=DataRef.of(sources, [loaded.tokenizer(t.text)["input_ids"] for t in texts]),
        settings=settings.model_dump(),
        dropped=dropped,
        sets={"recitation": str(out), "rule": str(rules_out)},
        seconds=time.perf_counter() - started,
    )
    write_atomic(report, json.dumps(result.model_dump(mode="json"), indent=1) + "\n")
    markdown = render_mining(result)
    write_atomic(report.with_suffix(".md"), markdown)
    return MiningRun(
        recitation_set=out,
        rule_set=rules_out,
        report_path=report,
        markdown_path=report.with_suffix(".md"),
        markdown=markdown,
    )
