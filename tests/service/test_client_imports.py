"""`lethe.client` is the API client alone: an application that imports it loads no ML stack."""

import json
import subprocess
import sys
from pathlib import Path

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

