"""`lethe eval`: measure memorization and coherence, one model or several side by side."""

from collections.abc import Callable
from pathlib import Path

import typer

from edits.errors import InvalidArgument

app = typer.Typer(
    help="Measure memorization (recitation), perplexity and agreement with a parent model.",
    no_args_is_help=True,
)

MODEL_HELP = "Model name or Hugging Face checkpoint directory."
COMPARE_HELP = "More models to measure side by side with --model (repeat the option or separate by commas)."
OUT_HELP = "Where to write the JSON report; the Markdown summary goes next to it (.md)."


def _models(model: str | None, compare: list[str]) -> list[str]:
    names = [model] if model else []
    for entry in compare:
        names.extend(part.strip() for part in entry.split(",") if part.strip())
    if not names:
        raise InvalidArgument("give a model with --model (and more with --compare)")
    if compare and len(names) < 2:
        raise InvalidArgument("--compare needs at least two models in all (with --model)")
    return names


def _run(command: str, names: list[str], total: int, measure: Callable, out: Path | None) -> None:
    """Load each model in turn, measure it with a progress bar, then write JSON and Markdown."""
    from tqdm import tqdm

    from edits.evaluation.loading import load_model
    from edits.evaluation.schema import EvalReport, write_atomic, write_report
    from edits.evaluation.summary import render

    results = []
    for name in names:
        loaded = load_model(name)
        with tqdm(total=total, desc=f"{command} {name}", unit="item", leave=False) as bar:
            results.append(measure(loaded, bar.update))
        del loaded
    report = EvalReport(command=command, results=results)
    out = out or Path(f"lethe-eval-{command}.json")
    write_report(report, out)
    markdown = render(report)
    write_atomic(out.with_suffix(".md"), markdown)
    typer.echo(markdown)
    typer.echo(f"wrote {out} and {out.with_suffix('.md')}", err=True)


@app.command()
def memorization(
    set_path: Path = typer.Option(
        ..., "--set", help="JSONL of prompt/target (text) or prompt_ids/target_ids pairs."
    ),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    compare: list[str] = typer.Option([], "--compare", help=COMPARE_HELP),
    out: Path | None = typer.Option(None, "--out", help=OUT_HELP),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    loose_threshold: float = typer.Option(0.75, "--loose-threshold", min=0.01, max=1.0),
) -> None:
    """Greedy recitation (strict, loose, similarity) and teacher-forced memorization scores."""
    from edits.evaluation.memorization import (
        MemorizationSettings,
        count_items,
        evaluate_memorization,
    )

    settings = MemorizationSettings(batch_size=batch_size, loose_threshold=loose_threshold)
    names = _models(model, compare)
    total = count_items(set_path) if set_path.is_file() else 0
    _run(
        "memorization",
        names,
        total,
        lambda loaded, progress: evaluate_memorization(loaded, set_path, settings, progress),
        out,
    )


@app.command()
def perplexity(
    text: Path = typer.Option(..., "--text", help="A .txt file, or .jsonl with a `text` field."),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    compare: list[str] = typer.Option([], "--compare", help=COMPARE_HELP),
    out: Path | None = typer.Option(None, "--out", help=OUT_HELP),
    seq_len: int = typer.Option(128, "--seq-len", min=2),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=2),
) -> None:
    """Token-weighted perplexity: exp of the mean next-token loss over the whole text."""
    from edits.evaluation.loading import load_model
    from edits.evaluation.perplexity import (
        PerplexitySettings,
        evaluate_perplexity,
        perplexity_blocks,
    )

    settings = PerplexitySettings(seq_len=seq_len, batch_size=batch_size, max_tokens=max_tokens)
    names = _models(model, compare)
    blocks = perplexity_blocks(load_model(names[0]).tokenizer, text, settings)
    _run(
        "perplexity",
        names,
        len(blocks),
        lambda loaded, progress: evaluate_perplexity(loaded, text, settings, progress, blocks),
        out,
    )


@app.command()
def agreement(
    reference: str = typer.Option(..., "--reference", help="The parent model to agree with."),
    text: Path = typer.Option(..., "--text", help="A .txt file, or .jsonl with a `text` field."),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    compare: list[str] = typer.Option([], "--compare", help=COMPARE_HELP),
    out: Path | None = typer.Option(None, "--out", help=OUT_HELP),
    k: int = typer.Option(10, "--k", min=1, help="Length of the top-k lists compared."),
    seq_len: int = typer.Option(128, "--seq-len", min=2),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=2),
) -> None:
    """nDCG@k of each model's top-k next tokens against the reference's (relevance k - r + 1)."""
    from edits.evaluation.agreement import AgreementSettings, agreement_blocks, evaluate_agreement
    from edits.evaluation.loading import load_model

    settings = AgreementSettings(k=k, seq_len=seq_len, batch_size=batch_size, max_tokens=max_tokens)
    names = _models(model, compare)
    parent = load_model(reference)
    blocks = agreement_blocks(parent.tokenizer, text, settings)
    _run(
        "agreement",
        names,
        len(blocks),
        lambda loaded, progress: evaluate_agreement(loaded, parent, text, settings, progress, blocks),
        out,
    )
