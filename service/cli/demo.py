"""`lethe demo testbed`: train a tiny model to memorize, edit it, and show what went and what stayed."""

from pathlib import Path

import typer

from lethe.edits.errors import InvalidArgument

app = typer.Typer(help="Self-contained demonstrations that need no download.", no_args_is_help=True)


def _rhos(value: str | None) -> list[float]:
    if not value:
        return []
    try:
        rhos = [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise InvalidArgument(f"--sweep takes comma-separated numbers in (0, 1], got {value!r}") from None
    if not all(0 < rho <= 1 for rho in rhos):
        raise InvalidArgument(f"--sweep values must lie in (0, 1], got {value!r}")
    return rhos


def _blocks(value: str) -> list[int] | None:
    if value.strip() == "all":
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        message = f"--blocks takes comma-separated block numbers or 'all', got {value!r}"
        raise InvalidArgument(message) from None


@app.command()
def testbed(
    out: Path = typer.Option(
        Path("lethe-testbed"), "--out", help="Testbed directory (reused if trained with these settings)."
    ),
    keep_mass: float | None = typer.Option(
        None,
        "--keep-mass",
        min=0.01,
        max=1.0,
        help="rho of the edit; default: calibrated (the largest rho that removes the validation canaries).",
    ),
    blocks: str = typer.Option("0", "--blocks", help="Blocks to edit (comma-separated), or 'all'."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data and the training."),
    sweep: str | None = typer.Option(
        None, "--sweep", help="Also edit at these rho (comma-separated) and report the curve."
    ),
    plot: Path | None = typer.Option(None, "--plot", help="Write the sweep's curve as a PNG here."),
) -> None:
    """Train the testbed (a ~1 M-parameter Llama, a few minutes on CPU), edit MLPs with K-FAC at a
    calibrated (or given) rho, apply the random-basis control, and print the before/after table."""
    from tqdm import tqdm

    from lethe.edits.testbed.config import TestbedConfig
    from lethe.edits.testbed.experiment import ensure_testbed, run_experiment
    from lethe.edits.testbed.report import before_after_table, sweep_plot, sweep_table

    rhos = _rhos(sweep)
    block_list = _blocks(blocks)
    config = TestbedConfig(seed=seed)
    with tqdm(desc="training", unit="step") as bar:

        def progress(_step: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")

        path = ensure_testbed(out, config, progress)

    def say(message: str) -> None:
        typer.echo(message, err=True)

    result = run_experiment(path, keep_mass, blocks=block_list, sweep=rhos, say=say)
    how = "calibrated" if result.calibration is not None else "given"
    rho = result.keep_mass
    typer.echo(f"\nTestbed {path} (seed {seed}), gate/up/down of blocks {blocks} at rho = {rho} ({how}):\n")
    typer.echo(before_after_table(result.scores))
    if result.sweep:
        typer.echo("\nSweep of rho:\n")
        typer.echo(sweep_table(result.scores["before"], result.sweep))
        if plot is not None:
            title = f"Testbed (seed {seed}): K-FAC edit of blocks {blocks}, gate/up/down"
            sweep_plot(result.scores["before"], result.sweep, plot, title)
            typer.echo(f"\nwrote {plot}", err=True)
