"""`lethe_model.json`: what a prepared model directory was built from, and its files' hashes."""

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from lethe.edits.atomic import atomic_write_text
from lethe.edits.models.digest import sha256_file

MANIFEST_NAME = "lethe_model.json"


class SourcePart(BaseModel):
    distribution: str
    version: str
    member: str
    origin: Literal["installed", "wheel"]


class OutputFile(BaseModel):
    sha256: str
    size: int


class ModelManifest(BaseModel):
    name: str
    description: str
    sources: list[SourcePart]
    gguf_file: str
    gguf_sha256: str
    model_type: str
    expected_model_type: str
    architectures: list[str]
    parameters: int
    add_bos_token: bool
    files: dict[str, OutputFile]
    lethe_version: str
    transformers_version: str
    torch_version: str
    created_at: datetime
    convert_seconds: float


def hash_outputs(model_dir: Path) -> dict[str, OutputFile]:
    """sha256 and size of every file in `model_dir` except the manifest, by relative path."""
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    return {
        path.relative_to(model_dir).as_posix(): OutputFile(
            sha256=sha256_file(path, f"hashing {path.name}"), size=path.stat().st_size
        )
        for path in files
    }


def write_manifest(model_dir: Path, manifest: ModelManifest) -> None:
    atomic_write_text(model_dir / MANIFEST_NAME, manifest.model_dump_json(indent=2) + "\n")


def read_manifest(model_dir: Path) -> ModelManifest | None:
    """The manifest, or None when it is missing or unreadable (the directory is then not ours)."""
    try:
        return ModelManifest.model_validate_json((model_dir / MANIFEST_NAME).read_bytes())
    except (OSError, ValidationError):
        return None


def find_damage(model_dir: Path, manifest: ModelManifest, *, deep: bool) -> str | None:
    """What is wrong with the recorded files, or None. `deep` compares hashes, else sizes only."""
    for relative, recorded in manifest.files.items():
        path = model_dir / relative
        if not path.is_file():
            return f"{relative} is missing"
        if path.stat().st_size != recorded.size:
            return f"{relative} has {path.stat().st_size} bytes, expected {recorded.size}"
        if deep and sha256_file(path, f"checking {relative}") != recorded.sha256:
            return f"{relative} does not match its recorded sha256"
    return None
