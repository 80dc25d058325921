"""Turn what a user typed for a model (a known name or a directory) into a checkpoint directory."""

from pathlib import Path

from lethe.edits.errors import NotFound
from lethe.edits.home import models_dir
from lethe.edits.models.manifest import find_damage, read_manifest
from lethe.edits.models.prepare import prepare_model
from lethe.edits.models.sources import KNOWN_MODELS


def prepared_path(name: str) -> Path:
    """Where the known model `name` lives once prepared."""
    return models_dir() / name


def is_prepared(model_dir: Path) -> bool:
    """A cheap check (manifest present, every recorded file there with its size); `prepare`
    compares hashes."""
    manifest = read_manifest(model_dir)
    return manifest is not None and find_damage(model_dir, manifest, deep=False) is None


def resolve_model(name_or_path: str | Path, *, prepare: bool = True) -> Path:
    """The one resolution of what a user typed for a model to a checkpoint directory (resolved).

    A directory holding config.json is used as it is; a known model name gives its prepared
    directory (prepared first when missing and `prepare`, else `NotFound` saying how); anything
    else is a `NotFound` that names the known models and what a directory must hold.
    """
    path = Path(name_or_path).expanduser()
    if (path / "config.json").is_file():
        return path.resolve()
    if isinstance(name_or_path, str) and name_or_path in KNOWN_MODELS:
        target = prepared_path(name_or_path)
        if is_prepared(target):
            return target
        if not prepare:
            raise NotFound(
                f"model {name_or_path!r} is not prepared; run `lethe models prepare {name_or_path}`"
            )
        return prepare_model(name_or_path)
    known = ", ".join(KNOWN_MODELS)
    problem = (
        "is a directory without config.json"
        if path.is_dir()
        else "is neither a known model nor an existing directory"
    )
    raise NotFound(
        f"model {str(name_or_path)!r} {problem}. Name a known model ({known}) or give the path "
        "of a Hugging Face causal-LM checkpoint directory, which must hold config.json."
    )
