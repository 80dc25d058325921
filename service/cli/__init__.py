"""The `lethe` command line: one module per command group, imported only when it is used.

`lethe edit …` imports `lethe.service.cli.edit` and nothing else of the CLI, so editing, evaluation
and index commands never import grpc or the server; `lethe --help` imports every group module to
list its help, and those modules import their heavy dependencies inside the commands.
"""

import importlib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from lethe.edits.errors import LetheError


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives: `module`'s Typer `app` is the group, or, given `command`, the one
    command of that name in it (a top-level command such as `lethe serve`)."""

    module: str
    command: str | None = None

    def load(self, name: str) -> Any:
        group = typer.main.get_group(importlib.import_module(self.module).app)
        if self.command is None:
            group.name = name
            return group
        return group.commands[self.command]


# In the order `lethe --help` lists them.
COMMANDS: dict[str, LazyCommand] = {
    "models": LazyCommand("lethe.service.cli.models"),
    "edit": LazyCommand("lethe.service.cli.edit"),
    "index": LazyCommand("lethe.service.cli.index"),
    "eval": LazyCommand("lethe.service.cli.eval"),
    "demo": LazyCommand("lethe.service.cli.demo"),
    "serve": LazyCommand("lethe.service.cli.serve", "serve"),
    "generate": LazyCommand("lethe.service.cli.client", "generate"),
    "variants": LazyCommand("lethe.service.cli.client", "variants"),
}


class _LoadedOnUse(Mapping[str, Any]):
    """The commands by name: every name is known up front (for listing and typo suggestions),
    each command is imported the first time it is looked up."""

    def __init__(self, table: Mapping[str, LazyCommand]) -> None:
        self._table = table
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            self._loaded[name] = self._table[name].load(name)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


class LazyGroup(TyperGroup):
    """The root group; its subcommands come from `COMMANDS`, not from registered Typer apps."""

    def __init__(self, **attrs: Any) -> None:
        attrs.pop("commands", None)  # none are registered: they are all in COMMANDS
        super().__init__(commands=_LoadedOnUse(COMMANDS), **attrs)  # type: ignore[arg-type]

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names only; TyperGroup's version would import every group


app = typer.Typer(
    name="lethe",
    cls=LazyGroup,
    help="Lethe: serve language models with memorization pruned out, and put facts back by lookup.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    # A callback makes Typer build a group (of LazyGroup) although no command is registered.
    pass


def main() -> None:
    try:
        app()
    except LetheError as error:  # meant for the user: printed without a traceback
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
