"""Tables and plots of testbed scores: before/after an edit, and a sweep over kept mass rho."""

from pathlib import Path

ROWS = [
    ("canaries", "(b) canaries recited, strict"),
    ("facts_closed_book", "(a) facts, closed-book"),
    ("facts_in_context", "(a) facts, statement in the prompt"),
    ("rule", "(c) rule on held-out inputs"),
    ("open_book", "(d) open-book, new names"),
    ("open_book_distractors", "(d) open-book, a distractor fact beside"),
    ("perplexity", "clean held-out perplexity"),
]


def _cell(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if key == "perplexity" else f"{100 * value:.1f} %"


def before_after_table(scores: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per task, one column per model (e.g. before, edited, control)."""
    labels = list(scores)
    lines = ["| task | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for key, title in ROWS:
        cells = [_cell(key, scores[label].get(key)) for label in labels]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_table(before: dict[str, float], sweep: dict[float, dict[str, float]]) -> str:
    """Markdown: one row per rho (and the unedited model), one column per task."""
    keys = [key for key, _ in ROWS]
    lines = ["| rho | " + " | ".join(keys) + " |", "|---:|" + "---:|" * len(keys)]
    rows = [("before", before)] + [(f"{rho:g}", scores) for rho, scores in sorted(sweep.items())]
    for name, scores in rows:
        lines.append(f"| {name} | " + " | ".join(_cell(k, scores.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def sweep_plot(
    before: dict[str, float],
    sweep: dict[float, dict[str, float]],
    path: Path,
    title: str = "Testbed: K-FAC edit",
) -> None:
    """Accuracy per task and relative perplexity against rho, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rhos = sorted(sweep)
    figure, (tasks, perplexity) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in ROWS[:-1]:
        if not all(key in sweep[r] for r in rhos):
            continue
        tasks.plot(rhos, [100 * sweep[r][key] for r in rhos], marker="o", label=label)
    tasks.set_xlabel("kept curvature mass rho")
    tasks.set_ylabel("accuracy (%)")
    tasks.legend(fontsize=7)
    tasks.grid(alpha=0.3)
    ratio = [sweep[r]["perplexity"] / before["perplexity"] for r in rhos]
    perplexity.plot(rhos, ratio, marker="o", color="black")
    perplexity.axhline(1.15, linestyle="--", color="red", label="+15 % (CI gate)")
    perplexity.set_xlabel("kept curvature mass rho")
    perplexity.set_ylabel("perplexity / unedited")
    perplexity.legend(fontsize=7)
    perplexity.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
