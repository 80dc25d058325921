"""`lethe eval mine`: build a memorized-text set from known texts, keeping what the model recites."""

import json
import time
from pathlib import Path

import typer

from lethe.service.cli.eval import MODEL_HELP


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(f"{path.stem}{suffix}")


def mine(
    model: str = typer.Option(..., "--model", help=MODEL_HELP),
    sources: Path = typer.Option(
        ..., "--sources", help="JSONL of texts: id, title, category, kind (recitation|rule), text."
    ),
    out: Path = typer.Option(..., "--out", help="Where to write the recited (kind=recitation) set."),
    rules_out: Path | None = typer.Option(
        None,
        "--rules-out",
        help="Where to write the kept rule sequences (default: OUT-rules.jsonl beside OUT).",
    ),
    report: Path | None = typer.Option(
        None,
        "--report",
        help="Where to write the JSON report and its .md (default: OUT-report.json).",
    ),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    stride: int = typer.Option(32, "--stride", min=1, help="Tokens between window starts."),
    loose_threshold: float = typer.Option(0.75, "--loose-threshold", min=0.01, max=1.0),
) -> None:
    """Cut texts into 64/48-token windows and 8-token quotes; keep those greedy decoding recites."""
    from tqdm import tqdm

    from lethe.edits.evaluation.loading import load_model
    from lethe.edits.evaluation.mining import MiningSettings, build_candidates, write_set
    from lethe.edits.evaluation.mining import mine as mine_candidates
    from lethe.edits.evaluation.mining_report import build_report, render
    from lethe.edits.evaluation.schema import DataRef, write_atomic
    from lethe.edits.evaluation.sources import load_sources

    started = time.perf_counter()
    settings = MiningSettings(batch_size=batch_size, stride=stride, loose_threshold=loose_threshold)
    texts = load_sources(sources)
    loaded = load_model(model)
    candidates, dropped = build_candidates(texts, loaded.tokenizer, settings)
    with tqdm(total=len(candidates), desc=f"mine {model}", unit="candidate") as bar:
        outcomes = mine_candidates(loaded.model, candidates, loaded.pad_id, settings, bar.update)
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
    markdown = render(result)
    write_atomic(report.with_suffix(".md"), markdown)
    typer.echo(markdown)
    typer.echo(f"wrote {out}, {rules_out}, {report} and {report.with_suffix('.md')}", err=True)
