"""`lethe eval facts` as a run: search the index once, ask every model, write the report and plot.

`facts_eval` scores answers given a `Complete` function; this module supplies the rest: the
retrieval (an index given, or the demo index for the packaged question set, built on first use),
the models (loaded in turn by `lethe.edits.evaluation.runs.run_models`) and the outputs.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lethe.edits.evaluation.completion import complete
from lethe.edits.evaluation.loading import LoadedModel
from lethe.edits.evaluation.runs import EvalRun, run_models
from lethe.edits.evaluation.schema import DataRef, EvalResult, file_sha256
from lethe.edits.home import lethe_home
from lethe.retrieval.augment import RetrievalPolicy
from lethe.retrieval.demo import Question, load_questions, open_or_build_demo_index, questions_path
from lethe.retrieval.facts_eval import FEW_SHOT, QUESTION_FORMAT, Retrieval, evaluate_facts, retrieve
from lethe.retrieval.facts_plot import facts_plot
from lethe.retrieval.index import KnowledgeIndex, embedder_for

Say = Callable[[str], object]
"""Where notes for the user go (the CLI: stderr)."""


@dataclass(frozen=True)
class FactsRun:
    """A finished `lethe eval facts`: the report files and the plot."""

    run: EvalRun
    plot_path: Path


def run_facts(
    names: Sequence[str],
    set_path: Path,
    *,
    index: Path | None = None,
    k: int = 5,
    closed_book_only: bool = False,
    max_new_tokens: int = 16,
    batch_size: int = 16,
    out: Path | None = None,
    say: Say = print,
) -> FactsRun:
    """Ask each model every question of `set_path` closed-book and, unless `closed_book_only`,
    with the top `k` passages of `index` (default: the demo index for the packaged set, none for
    another set); write the JSON report, its Markdown and a PNG beside it."""
    questions = load_questions(set_path)
    retrieval, index_settings = (
        (None, {}) if closed_book_only else facts_retrieval(set_path, index, k, questions, say)
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

    def measure(loaded: LoadedModel, progress: Callable[[int], object]) -> EvalResult:
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
    run = run_models("facts", names, conditions * len(questions), measure, out)
    plot_path = run.json_path.with_suffix(".png")
    facts_plot(run.report, plot_path)
    return FactsRun(run=run, plot_path=plot_path)


def facts_retrieval(
    set_path: Path, index: Path | None, k: int, questions: list[Question], say: Say = print
) -> tuple[Retrieval | None, dict[str, Any]]:
    """Search every question once in `index`, or in the demo index for the packaged question set;
    returns the retrieval and the settings that describe it, or (None, {}) with no index."""
    if index is None:
        if file_sha256(set_path) != file_sha256(questions_path()):
            say("no --index: closed-book only (the demo index is the default only for the packaged set)")
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
    say(f"retrieving the top {k} of {info.passages} passages in {index}")
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
