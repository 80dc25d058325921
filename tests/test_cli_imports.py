"""`lethe GROUP …` imports that group's module only: editing, evaluation and index commands never
import grpc or the server, and `lethe --help` does not import the ML stack."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER_SIDE = ("grpc", "lethe.service.server", "lethe.service.servicers", "lethe.service.gen")
ML_STACK = ("torch", "transformers", "faiss", "numpy")

# Runs the CLI in this process and then reports what it imported (the help text goes first).
PROBE = """
import json, sys
from lethe.service.cli import main
sys.argv = ["lethe", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    code = exit.code
print("\\n@@" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _imported(*args: str) -> tuple[int, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    report = json.loads(result.stdout.rpartition("\n@@")[2])
    return report["code"], report["modules"]


def _importtime_modules(*args: str) -> list[str]:
    """Every module `python -X importtime -m lethe.service.cli ARGS` imported, as it logs them."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "lethe.service.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert lines, "no -X importtime output"
    return [line.rpartition("|")[2].strip() for line in lines]


def _named(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


GROUP_HELP = [
    ("edit", "collect", "--help"),
    ("edit", "apply", "--help"),
    ("eval", "memorization", "--help"),
    ("eval", "facts", "--help"),
    ("eval", "mine", "--help"),
    ("index", "build", "--help"),
    ("index", "search", "--help"),
]


@pytest.mark.parametrize("args", GROUP_HELP, ids=" ".join)
def test_group_help_imports_no_grpc(args):
    modules = _importtime_modules(*args)
    assert "typer" in modules  # the log is complete enough to mean something
    assert _named(modules, SERVER_SIDE) == []


@pytest.mark.parametrize("group", ["models", "edit", "index", "eval", "demo"])
def test_a_group_imports_only_its_own_cli_module(group):
    code, modules = _imported(group, "--help")
    assert code == 0
    cli = [m for m in modules if m.startswith("lethe.service.cli.")]
    assert cli == [f"lethe.service.cli.{group}"]
    assert _named(modules, SERVER_SIDE) == []


def test_running_an_index_command_imports_no_grpc(tmp_path):
    code, modules = _imported("index", "info", "--index", str(tmp_path / "none"))
    assert code == 2  # the user error, printed as one line
    assert "lethe.retrieval.index_admin" in modules
    assert _named(modules, SERVER_SIDE) == []


def test_top_level_help_lists_every_command_without_the_ml_stack():
    result = subprocess.run(
        [sys.executable, "-m", "lethe.service.cli", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for command in ("models", "edit", "index", "eval", "demo", "serve", "generate", "variants"):
        assert f" {command} " in result.stdout, command
    code, modules = _imported("--help")
    assert code == 0
    assert _named(modules, ML_STACK + SERVER_SIDE) == []
