"""`lethe eval`: measure memorization, coherence and fact recall, one model or several side by side.

The runs are `lethe.edits.evaluation.runs` (and `lethe.retrieval.facts_run` for facts); here are
the options and the printing.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lethe.edits.errors import InvalidArgument

if TYPE_CHECKING:
    from lethe.edits.evaluation.runs import EvalRun

app = typer.Typer(
    help="Measure memorization (recitation), perplexity, agreement with a parent model, and fact QA.",
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


def _print(run: "EvalRun") -> None:
    typer.echo(run.markdown)
    typer.echo(f"wrote {run.json_path} and {run.markdown_path}", err=True)


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
    from lethe.edits.evaluation.memorization import MemorizationSettings
    from lethe.edits.evaluation.runs import run_memorization

    settings = MemorizationSettings(batch_size=batch_size, loose_threshold=loose_threshold)
    _print(run_memorization(_models(model, compare), set_path, settings, out))


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
    from lethe.edits.evaluation.perplexity import PerplexitySettings
    from lethe.edits.evaluation.runs import run_perplexity

    settings = PerplexitySettings(seq_len=seq_len, batch_size=batch_size, max_tokens=max_tokens)
    _print(run_perplexity(_models(model, compare), text, settings, out))


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
    from lethe.edits.evaluation.agreement import AgreementSettings
    from lethe.edits.evaluation.runs import run_agreement

    settings = AgreementSettings(k=k, seq_len=seq_len, batch_size=batch_size, max_tokens=max_tokens)
    _print(run_agreement(_models(model, compare), reference, text, settings, out))


@app.command()
def facts(
    set_path: Path = typer.Option(
        ...,
        "--set",
        help="Question set JSONL (id, question, answer, aliases, popularity, doc_id), e.g. the packaged "
        "retrieval/data/questions.jsonl.",
    ),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    compare: list[str] = typer.Option([], "--compare", help=COMPARE_HELP),
    out: Path | None = typer.Option(None, "--out", help=OUT_HELP),
    index: Path | None = typer.Option(
        None,
        "--index",
        help="Index to retrieve passages from. Default: with the packaged question set, the demo index "
        "(built on first use in LETHE_HOME/indexes/demo); with any other set, closed-book only.",
    ),
    k: int = typer.Option(
        5, "-k", "--k", help="Passages retrieved per question (into the prompt; recall@k)."
    ),
    closed_book_only: bool = typer.Option(
        False, "--closed-book-only", help="Ask closed-book only; no index is opened."
    ),
    max_new_tokens: int = typer.Option(16, "--max-new-tokens", min=1),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
) -> None:
    """Fact QA per popularity bucket, closed-book and with retrieved passages, plus recall@k.

    Each question is asked after three fixed example Q/A pairs; the greedy answer is cut at its first
    newline and scored by exact match and by whether an accepted answer occurs in it.
    """
    from lethe.retrieval.facts_run import run_facts
    from lethe.retrieval.index import SearchLimits

    names = _models(model, compare)
    if not 1 <= k <= SearchLimits().max_k:
        raise InvalidArgument(f"-k must be from 1 to {SearchLimits().max_k}, got {k}")
    if index is not None and closed_book_only:
        raise InvalidArgument("give --index or --closed-book-only, not both")
    facts_run = run_facts(
        names,
        set_path,
        index=index,
        k=k,
        closed_book_only=closed_book_only,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        out=out,
        say=lambda note: typer.echo(note, err=True),
    )
    _print(facts_run.run)
    typer.echo(f"wrote {facts_run.plot_path}", err=True)


@app.command()
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
    from lethe.edits.evaluation.mining import MiningSettings
    from lethe.edits.evaluation.runs import run_mining

    settings = MiningSettings(batch_size=batch_size, stride=stride, loose_threshold=loose_threshold)
    mined = run_mining(model, sources, out, settings, rules_out=rules_out, report=report)
    typer.echo(mined.markdown)
    typer.echo(
        f"wrote {mined.recitation_set}, {mined.rule_set}, {mined.report_path} and {mined.markdown_path}",
        err=True,
    )
