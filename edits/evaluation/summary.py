"""Markdown summaries of evaluation reports, one column per model."""

from lethe.edits.evaluation.schema import EvalReport, EvalResult

_PERCENT = {"strict", "loose", "top1_agreement"}
_COUNTS = {"items", "predicted_tokens", "positions"}


def _format(metric: str, value: float) -> str:
    if metric in _COUNTS:
        return f"{value:.0f}"
    if metric in _PERCENT or metric.endswith((".exact_match", ".contains")) or metric.startswith("recall@"):
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
    if report.command == "facts":
        return render_facts(report)
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


_FACTS_MEASURES = {"exact_match": "Exact match", "contains": "Answer contained"}
_FACTS_CONDITIONS = {"closed_book": "closed-book", "retrieval": "+ retrieval"}


def render_facts(report: EvalReport) -> str:
    """One table per measure: a row per popularity bucket and overall, a column per condition and
    model (models side by side within a condition), and the model-independent recall@k once."""
    results = report.results
    first = results[0]
    lines = ["## lethe eval facts", "", f"Data: `{first.data.path}` ({first.data.items} questions)"]
    index = first.settings.get("index")
    if index:
        lines.append(f"Retrieval: `{index}`, top {first.settings.get('k')} passages before the question")
    else:
        lines.append("Closed-book only (no index).")
    buckets: list[str] = []
    for result in results:
        buckets.extend(g for g in result.groups if g not in buckets)

    def rows_of(result: EvalResult) -> dict[str, dict[str, float]]:
        return {**result.groups, "all": result.metrics}

    recall = next((m for m in first.metrics if m.startswith("recall@")), None)
    for measure, title in _FACTS_MEASURES.items():
        columns = [
            (f"{label}: {r.model.name}", r, f"{condition}.{measure}")
            for condition, label in _FACTS_CONDITIONS.items()
            for r in results
            if f"{condition}.{measure}" in r.metrics
        ]
        header = ["bucket", "questions", *([recall] if recall else []), *(name for name, _, _ in columns)]
        table = []
        for bucket in [*buckets, "all"]:
            values = rows_of(first).get(bucket, {})
            row = [bucket, _format("items", values.get("items", 0.0))]
            if recall:
                row.append(_format(recall, values[recall]) if recall in values else "-")
            for _, result, metric in columns:
                value = rows_of(result).get(bucket, {}).get(metric)
                row.append("-" if value is None else _format(metric, value))
            table.append(row)
        lines += ["", f"### {title}", "", _table(header, table)]
    return "\n".join([*lines, ""])
