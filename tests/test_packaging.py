"""The install layout: one `lethe` namespace, no generic top-level packages."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Folder -> package; the more specific folder wins, so service/client installs as lethe.client only.
FOLDERS = {
    "service": "lethe.service",
    "service/client": "lethe.client",
    "edits": "lethe.edits",
    "retrieval": "lethe.retrieval",
}


def _package_of(package_dir: Path) -> str:
    """The installed name of the package in `package_dir`, under the deepest mapped folder."""
    relative = package_dir.relative_to(ROOT)
    folder = max(
        (Path(f) for f in FOLDERS if relative == Path(f) or Path(f) in relative.parents),
        key=lambda f: len(f.parts),
    )
    return FOLDERS[folder.as_posix()] + "".join(f".{part}" for part in relative.relative_to(folder).parts)


def test_every_package_folder_is_listed_for_the_wheel():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {name: folder for folder, name in FOLDERS.items()}
    on_disk = {
        _package_of(init.parent) for folder in FOLDERS for init in (ROOT / folder).rglob("__init__.py")
    }
    assert on_disk == set(setuptools["packages"])
    assert "lethe.client" in on_disk
    assert "lethe.service.client" not in on_disk  # one name for the client, not two copies in the wheel


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
