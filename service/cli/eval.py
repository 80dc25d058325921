"""`lethe eval`: measure memorization, coherence and fact recall, one model or several side by side."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lethe.edits.errors import InvalidArgument

if TYPE_CHECKING:
    from lethe.edits.evaluation.loading import LoadedModel
    from lethe.edits.evaluation.schema import EvalReport
    from lethe.retrieval.demo import Question
    from lethe.retrieval.facts_eval import Retrieval

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


def _run(
    command: str, names: list[str], total: int, measure: Callable, out: Path | None
) -> tuple["EvalReport", Path]:
    """Load each model in turn, measure it with a progress bar, then write JSON and Markdown."""
    from tqdm import tqdm

    from lethe.edits.evaluation.loading import load_model
    from lethe.edits.evaluation.schema import EvalReport, write_atomic, write_report
    from lethe.edits.evaluation.summary import render

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
    return report, out


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
    from lethe.edits.evaluation.memorization import (
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
    from lethe.edits.evaluation.loading import load_model
    from lethe.edits.evaluation.perplexity import (
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
    from lethe.edits.evaluation.agreement import AgreementSettings, agreement_blocks, evaluate_agreement
    from lethe.edits.evaluation.loading import load_model

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
    import time

    from lethe.edits.evaluation.completion import complete
    from lethe.edits.evaluation.schema import DataRef, EvalResult, file_sha256
    from lethe.retrieval.demo import load_questions
    from lethe.retrieval.facts_eval import FEW_SHOT, QUESTION_FORMAT, evaluate_facts
    from lethe.retrieval.index import SearchLimits

    names = _models(model, compare)
    if not 1 <= k <= SearchLimits().max_k:
        raise InvalidArgument(f"-k must be from 1 to {SearchLimits().max_k}, got {k}")
    if index is not None and closed_book_only:
        raise InvalidArgument("give --index or --closed-book-only, not both")
    questions = load_questions(set_path)
    retrieval, index_settings = (
        (None, {}) if closed_book_only else _facts_retrieval(set_path, index, k, questions)
    )
    settings = {
        "k": k if retrieval is not None else None,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "few_shot": [list(pair) for pair in FEW_SHOT],
        "question_format": QUESTION_FORMAT,
        **index_settings,
    }
    data = DataRef(path=str(set_path), sha256=file_sha256(set_path), items=len(questions))

    def measure(loaded: "LoadedModel", progress: Callable[[int], object]) -> EvalResult:
        started = time.perf_counter()

        def generate(prompts: Sequence[str]) -> list[str]:
            return complete(loaded, prompts, max_new_tokens, batch_size=batch_size, progress=progress)

        outcome = evaluate_facts(questions, generate, retrieval)
        return EvalResult(
            command="facts",
            model=loaded.ref,
            data=data,
            settings=settings,
            metrics=outcome.metrics,
            groups=outcome.groups,
            items=outcome.items,
            seconds=time.perf_counter() - started,
        )

    conditions = 1 if retrieval is None else 2
    report, written = _run("facts", names, conditions * len(questions), measure, out)
    from lethe.retrieval.facts_plot import facts_plot

    facts_plot(report, written.with_suffix(".png"))
    typer.echo(f"wrote {written.with_suffix('.png')}", err=True)


def _facts_retrieval(
    set_path: Path, index: Path | None, k: int, questions: list["Question"]
) -> tuple["Retrieval | None", dict[str, Any]]:
    """Search every question once in `index`, or in the demo index for the packaged question set;
    returns the retrieval and the settings that describe it, or (None, {}) with no index."""
    from lethe.edits.evaluation.schema import file_sha256
    from lethe.edits.home import lethe_home
    from lethe.retrieval.augment import RetrievalPolicy
    from lethe.retrieval.demo import open_or_build_demo_index, questions_path
    from lethe.retrieval.facts_eval import retrieve
    from lethe.retrieval.index import KnowledgeIndex, embedder_for

    if index is None:
        if file_sha256(set_path) != file_sha256(questions_path()):
            note = "no --index: closed-book only (the demo index is the default only for the packaged set)"
            typer.echo(note, err=True)
            return None, {}
        from tqdm import tqdm

        from lethe.retrieval.embedding import load_embedder

        index = lethe_home() / "indexes" / "demo"
        bars: list[tqdm] = []  # a bar only if the index is built, not when it is opened

        def progress(done: int, total: int) -> None:
            if not bars:
                bars.append(tqdm(total=total, desc="building the demo index", unit="passage", leave=False))
            bars[0].update(done - bars[0].n)

        try:
            opened = open_or_build_demo_index(index, load_embedder(), progress=progress)
        finally:
            for bar in bars:
                bar.close()
    else:
        opened = KnowledgeIndex.open(index, embedder_for(index))
    policy = RetrievalPolicy(index=str(index), k=k)
    info = opened.info()
    typer.echo(f"retrieving the top {k} of {info.passages} passages in {index}", err=True)
    retrieval = retrieve(opened, questions, policy)
    return retrieval, {
        "index": str(index),
        "index_snapshot": info.snapshot,
        "index_passages": info.passages,
        "embedder": info.embedder,
        "template": policy.template,
        "passage_format": policy.passage_format,
        "min_score": policy.min_score,
        "retrieval_missed": retrieval.recall.missed,
    }
