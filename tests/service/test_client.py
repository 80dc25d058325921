"""`lethe.client`: the API client alone (an application that imports it loads no ML stack), and the
README's example of it, run against a real server."""

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("torch", "transformers", "faiss", "numpy")


def test_importing_the_client_leaves_the_ml_stack_out(tmp_path: Path) -> None:
    probe = (
        "import json, sys; from lethe.client import Completion, LetheClient, VariantInfo;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    # Outside the source tree, as an application would import the installed package.
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout)
    assert "grpc" in modules  # the probe did import the client
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []
    assert [m for m in modules if m.startswith(("lethe.edits", "lethe.retrieval"))] == []


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The Python client", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs(shared_server) -> None:
    code = _readme_example().replace('"localhost:50051"', repr(shared_server.target))
    assert repr(shared_server.target) in code  # the example connects where the README says
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert lines[0].split()[:3] == ["base", "ready", "transformers"]
    assert lines[0].endswith("(default)")
    assert lines[1].split()[:2] == ["pruned", "ready"]
    assert re.fullmatch(r"\[base\] '.*' \(16 tokens, length\)", lines[2]), lines[2]
    assert lines[3]  # the streamed text
