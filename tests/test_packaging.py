"""The install layout: one `lethe` namespace, no generic top-level packages."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"service": "lethe.service", "edits": "lethe.edits", "retrieval": "lethe.retrieval"}


def test_every_package_folder_is_listed_for_the_wheel():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {name: folder for folder, name in FOLDERS.items()}
    on_disk = {
        FOLDERS[init.relative_to(ROOT).parts[0]]
        + "".join(f".{part}" for part in init.parent.relative_to(ROOT).parts[1:])
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert on_disk == set(setuptools["packages"])


def test_installed_names_are_namespaced(tmp_path):
    """Outside the source tree only `lethe.*` imports: `service` is another PyPI project's name."""
    probe = (
        "import importlib.util, lethe.edits, lethe.retrieval, lethe.service;"
        "print(*(importlib.util.find_spec(n) is None for n in ('service', 'edits', 'retrieval')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["True", "True", "True"]
