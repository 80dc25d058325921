"""Where Lethe keeps its files: `LETHE_HOME` (default `~/.cache/lethe`)."""

import os
from pathlib import Path


def lethe_home() -> Path:
    """The root of Lethe's files; read on every call so tests can point it elsewhere."""
    configured = os.environ.get("LETHE_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "lethe"


def models_dir() -> Path:
    """Prepared models live in `LETHE_HOME/models/NAME`."""
    return lethe_home() / "models"
