"""Markdown summaries of evaluation reports, one column per model."""

from edits.evaluation.schema import EvalReport, EvalResult

_PERCENT = {"strict", "loose", "top1_agreement"}
_COUNTS = {"items", "predicted_tokens", "positions"}


def _format(metric: str, value: float) -> str:
    if metric in _COUNTS:
        return f"{value:.0f}"
    if metric in _PERCENT:
        return f"{100 * value:.1f} %"
    return f"{value:.4f}"


def _column_name(result: EvalResult) -> str:
    return result.model.name


def _metric_rows(results: list[EvalResult], key: str | None) -> list[list[str]]:
    def metrics_of(result: EvalResult) -> dict[str, float]:
        return result.metrics if key is None else result.groups.get(key, {})

    names: list[str] = []
    for result in results:
        names.extend(name for name in metrics_of(result) if name not in names)
    prefix = "" if key is None else f"{key}: "
    return [
        [prefix + name]
        + [_format(name, metrics_of(r)[name]) if name in metrics_of(r) else "-" for r in results]
        for name in names
    ]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(report: EvalReport) -> str:
    """A short Markdown summary: what was measured on which data, then the metrics side by side."""
    first = report.results[0]
    lines = [f"## lethe eval {report.command}", "", f"Data: `{first.data.path}`"]
    if first.reference is not None:
        lines.append(f"Reference: `{first.reference.name}`")
    header = ["metric"] + [_column_name(r) for r in report.results]
    rows = _metric_rows(report.results, None)
    groups: list[str] = []
    for result in report.results:
        groups.extend(g for g in result.groups if g not in groups)
    for group in groups:
        rows += _metric_rows(report.results, group)
    lines += ["", _table(header, rows), ""]
    return "\n".join(lines)
