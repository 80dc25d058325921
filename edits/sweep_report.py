"""A sweep as people read it: a Markdown table and a plot of kept mass against recitation and perplexity."""

from pathlib import Path

from lethe.edits.sweep import BASE, SweepReport, SweepRow, block_span


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _groups(report: SweepReport) -> list[str]:
    """Item groups other than the aggregates, in a stable order."""
    names = {name for row in report.rows for name in row.recitation}
    return sorted(names - {"all", "headline", "exact"})


def sweep_table(report: SweepReport) -> str:
    """One row per recipe: kept pairs, strict and loose recitation (headline, the share of the parent's
    exact recitations still exact, and per group), perplexity and its rise over the unedited model,
    nDCG@10 against it."""
    base = report.row(BASE)
    groups = _groups(report)
    exact = any("exact" in row.recitation for row in report.rows)
    header = ["recipe", "kept pairs", "strict", "loose", *(["still exact"] if exact else [])]
    header += [f"strict {g}" for g in groups]
    header += ["perplexity", "rise", "nDCG@10"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report.rows:
        headline = row.recitation.get("headline", row.recitation["all"])
        cells = [row.label, _percent(row.kept_pairs_fraction), _percent(headline["strict"])]
        cells.append(_percent(headline["loose"]))
        if exact:
            cells.append(_percent(row.recitation["exact"]["strict"]) if "exact" in row.recitation else "")
        cells += [_percent(row.recitation[g]["strict"]) if g in row.recitation else "" for g in groups]
        rise = row.perplexity / base.perplexity - 1 if base else 0.0
        cells += [f"{row.perplexity:.3f}", f"{100 * rise:+.1f} %", f"{row.ndcg:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _removed(row: SweepRow) -> float:
    """The curvature mass the recipe removes, 1 - rho, rounded off float noise (it labels ticks)."""
    return round(1 - (row.keep_mass or 1.0), 6)


def _series(report: SweepReport) -> dict[str, list[SweepRow]]:
    series: dict[str, list[SweepRow]] = {}
    for row in report.rows:
        if row.keep_mass is not None:
            series.setdefault(block_span(row.blocks), []).append(row)
    return {name: sorted(rows, key=lambda r: r.keep_mass or 1.0) for name, rows in series.items()}


def sweep_plot(
    report: SweepReport, path: Path, *, strict_goal: float = 0.05, rise_goal: float = 0.10
) -> None:
    """Strict recitation and perplexity rise against the removed mass 1 - rho (log axis), one line per
    block set; dashed lines mark the goals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    base = report.row(BASE)
    removed_all = sorted({_removed(r) for rows in _series(report).values() for r in rows} - {0.0})
    figure, (recitation, perplexity) = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in _series(report).items():
        removed = [_removed(r) for r in rows]
        strict = [100 * r.recitation.get("headline", r.recitation["all"])["strict"] for r in rows]
        rise = [100 * (r.perplexity / base.perplexity - 1) for r in rows] if base else []
        recitation.plot(removed, strict, marker="o", label=f"blocks {name}")
        if rise:
            perplexity.plot(removed, rise, marker="o", label=f"blocks {name}")
    if base:
        unedited = 100 * base.recitation.get("headline", base.recitation["all"])["strict"]
        recitation.axhline(unedited, color="grey", linestyle=":", label="unedited")
    recitation.axhline(
        100 * strict_goal, color="red", linestyle="--", label=f"goal ≤ {100 * strict_goal:g} %"
    )
    perplexity.axhline(100 * rise_goal, color="red", linestyle="--", label=f"goal ≤ +{100 * rise_goal:g} %")
    for axis, label in ((recitation, "strict recitation (%)"), (perplexity, "perplexity rise (%)")):
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap on short ranges
        if removed_all:
            axis.set_xticks(removed_all, [f"{value:g}" for value in removed_all], fontsize=7)
        axis.set_xlabel("removed curvature mass 1 - rho")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle("K-FAC edit sweep")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
