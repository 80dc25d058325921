"""The `lethe` command line. Subcommands import their heavy dependencies lazily."""

import sys

import typer

from lethe.edits.errors import LetheError

app = typer.Typer(
    name="lethe",
    help="Lethe: serve language models with memorization pruned out, and put facts back by lookup.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from lethe.service.cli import client, demo, edit, eval, index, memorized, models, serve

    app.add_typer(models.app, name="models")
    app.add_typer(edit.app, name="edit")
    app.add_typer(index.app, name="index")
    app.add_typer(eval.app, name="eval")
    eval.app.command("mine")(memorized.mine)
    app.add_typer(demo.app, name="demo")
    # Top-level commands: `lethe serve`, `lethe generate`, `lethe variants`.
    app.add_typer(serve.app)
    app.add_typer(client.app)


_register()



def main() -> None:
    try:
        app()
    except LetheError as error:  # meant for the user: printed without a traceback
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
