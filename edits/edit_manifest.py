"""`lethe_edit.json`: what an edited checkpoint was made from, and what the edit changed.

`lethe edit apply` writes it (through `EditManifest.write`) into the checkpoint it builds; the
service and the evaluation read it (through `EditManifest.read`), so the file has one owner and
one schema. A checkpoint differs from its parent only in `edited_tensors`; the parent is named by
path and fingerprint, the factors the edit used likewise.
"""

import json
import logging
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lethe.edits.architectures import Projection
from lethe.edits.atomic import atomic_write_text
from lethe.edits.errors import InvalidArgument, explain
from lethe.edits.recipe import Recipe

log = logging.getLogger(__name__)

EDIT_MANIFEST = "lethe_edit.json"
FORMAT: Final = "lethe-edit/1"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParentRef(_Frozen):
    """The unedited model the checkpoint was derived from."""

    path: str = Field(description="Absolute path of the parent's directory when the edit was made.")
    fingerprint: str = Field(description="`model_fingerprint` of the parent ('' when not recorded).")
    model_type: str = Field(description="The parent's `config.json` model_type.")


class FactorsRef(_Frozen):
    """The K-FAC factor store the edit's curvature came from."""

    path: str = Field(description="Absolute path of the factor store ('' when not recorded).")
    fingerprint: str = Field(description="The store's fingerprint ('' when not recorded).")


class MatrixResult(_Frozen):
    """What the edit of one weight matrix kept."""

    tensor: str = Field(description="The parameter name, as in the safetensors files.")
    block: int = Field(ge=0)
    projection: Projection
    keep_mass: float = Field(gt=0, le=1, description="The curvature mass the recipe asked to keep.")
    achieved_mass: float = Field(ge=0, description="The mass the kept eigenpairs actually hold.")
    kept_pairs: int = Field(ge=0)
    total_pairs: int = Field(ge=0)


class EditManifest(_Frozen):
    """The contents of `lethe_edit.json`."""

    format: Literal["lethe-edit/1"] = Field(description="The layout of this file.")
    lethe_version: str = Field(description="The Lethe that made the edit.")
    created: str = Field(description="When, as an ISO 8601 UTC timestamp.")
    parent: ParentRef
    factors: FactorsRef
    recipe: Recipe
    matrices: list[MatrixResult] = Field(description="One entry per edited matrix, in edit order.")
    edited_tensors: list[str] = Field(
        description="Every tensor that differs from the parent; all others are the parent's bytes."
    )

    @property
    def parent_path(self) -> Path | None:
        """The parent's directory, resolved (None when the manifest names none)."""
        return Path(self.parent.path).expanduser().resolve() if self.parent.path else None

    @classmethod
    def read(cls, checkpoint_dir: Path) -> "EditManifest | None":
        """The manifest of `checkpoint_dir`, or None for a plain model directory without one.

        Raises `InvalidArgument` naming the file (and each bad field) when it cannot be read or
        does not match this schema.
        """
        path = Path(checkpoint_dir) / EDIT_MANIFEST
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidArgument(f"{path} cannot be read: {error}") from None
        except json.JSONDecodeError as error:
            raise InvalidArgument(f"{path} is not valid JSON: {error}") from None
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            raise InvalidArgument(f"{path} is not a valid Lethe edit manifest: {explain(error)}") from None

    def write(self, directory: Path) -> Path:
        """Write `lethe_edit.json` into `directory` (atomically) and return its path.

        `lethe edit apply` writes it into the staging directory of the checkpoint it builds
        (`atomic_directory`), so the checkpoint appears at once with its manifest.
        """
        path = Path(directory) / EDIT_MANIFEST
        atomic_write_text(path, self.model_dump_json(indent=2) + "\n")
        return path


def find_edits(checkpoints_root: Path, parent_dir: Path) -> list[tuple[str, Path]]:
    """(name, directory) of every edited checkpoint directly under `checkpoints_root` whose
    manifest names `parent_dir` as its parent, sorted by name.

    A manifest that cannot be read or is invalid is logged and skipped: one broken checkpoint
    must not hide the others.
    """
    root = Path(checkpoints_root)
    if not root.is_dir():
        return []
    parent = Path(parent_dir).expanduser().resolve()
    found = []
    for manifest_path in sorted(root.glob(f"*/{EDIT_MANIFEST}")):
        checkpoint = manifest_path.parent
        try:
            manifest = EditManifest.read(checkpoint)
        except InvalidArgument as error:
            log.warning("skipping %s: %s", checkpoint, error)
            continue
        if manifest is not None and manifest.parent_path == parent:
            found.append((checkpoint.name, checkpoint))
    return found
