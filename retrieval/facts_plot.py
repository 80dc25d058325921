"""The facts evaluation as a picture: accuracy per popularity bucket, closed-book and with retrieval,
one bar per model and condition."""

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the report type only; retrieval does not depend on edits at run time
    from lethe.edits.evaluation.schema import EvalReport, EvalResult

CONDITIONS = (("closed_book", "closed-book"), ("retrieval", "+ retrieval"))


def _percent(result: "EvalResult", bucket: str, metric: str) -> float:
    """A result's metric for one bucket (`all` is the overall figure), in percent; 0 where absent."""
    source = result.metrics if bucket == "all" else result.groups.get(bucket, {})
    return 100 * source.get(metric, 0.0)


def facts_plot(report: "EvalReport", path: Path, *, measure: str = "exact_match") -> None:
    """Grouped bars: buckets (and `all`) on the x axis; for each model, closed-book then + retrieval.
    The full model's closed-book accuracy per bucket is the line a pruned model with retrieval must
    reach, so the first model's closed-book bars are drawn as dashed outlines across each group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = [*sorted({b for r in report.results for b in r.groups}), "all"]
    bars = [
        (result, key, label)
        for result in report.results
        for key, label in CONDITIONS
        if f"{key}.{measure}" in result.metrics
    ]
    width = 0.8 / max(len(bars), 1)
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(buckets) + 2), 4))
    for number, (result, key, label) in enumerate(bars):
        values = [_percent(result, b, f"{key}.{measure}") for b in buckets]
        offsets = [i - 0.4 + width * (number + 0.5) for i in range(len(buckets))]
        hatch = "//" if key == "retrieval" else None
        axis.bar(offsets, values, width, label=f"{Path(result.model.name).name}, {label}", hatch=hatch)
    first = report.results[0]
    goal = f"closed_book.{measure}"
    if goal in first.metrics:
        for i, b in enumerate(buckets):
            value = _percent(first, b, goal)
            axis.hlines(value, i - 0.45, i + 0.45, colors="black", linestyles="dashed", linewidth=1)
    axis.set_xticks(range(len(buckets)), buckets)
    axis.set_ylabel(f"{measure.replace('_', ' ')} (%)")
    axis.set_ylim(0, 100)
    axis.set_title(f"Fact QA per popularity bucket (dashed: {Path(first.model.name).name} closed-book)")
    axis.legend(fontsize=7)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
