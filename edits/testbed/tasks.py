"""Score a model on the testbed's tasks and clean held-out text."""

from pathlib import Path

from lethe.edits.evaluation.loading import LoadedModel, load_model
from lethe.edits.evaluation.memorization import MemorizationSettings, evaluate_memorization
from lethe.edits.evaluation.perplexity import PerplexitySettings, evaluate_perplexity
from lethe.edits.evaluation.schema import EvalResult


def task_accuracy(result: EvalResult) -> dict[str, float]:
    """Strict (exact greedy) accuracy per task kind, in [0, 1]."""
    if result.groups:
        return {kind: metrics["strict"] for kind, metrics in result.groups.items()}
    return {"all": result.metrics["strict"]}


def score_model(
    model: str | LoadedModel, tasks: Path, heldout: Path, *, batch_size: int = 64
) -> dict[str, float]:
    """Accuracy per task kind and perplexity on the held-out text, as one flat dict."""
    loaded = load_model(model) if isinstance(model, str) else model
    recitation = evaluate_memorization(loaded, tasks, MemorizationSettings(batch_size=batch_size))
    perplexity = evaluate_perplexity(loaded, heldout, PerplexitySettings(seq_len=64, batch_size=32))
    return task_accuracy(recitation) | {"perplexity": perplexity.metrics["perplexity"]}
