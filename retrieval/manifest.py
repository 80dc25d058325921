"""The manifest that makes a snapshot self-describing."""

import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lethe.retrieval.chunking import ChunkerConfig
from lethe.retrieval.errors import IndexCorrupt
from lethe.retrieval.vectors import IndexConfig, IndexKind

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
PASSAGES = "passages.sqlite"


class EmbedderInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Embedder name; opening with another name is refused.")
    dimension: int = Field(gt=0, description="Vector dimension.")
    source: str | None = Field(
        default=None, description="Where the model was loaded from (a hint for reopening)."
    )


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    format_version: int = FORMAT_VERSION
    embedder: EmbedderInfo
    index_kind: IndexKind
    index_config: IndexConfig
    chunker: ChunkerConfig
    documents: int = Field(ge=0)
    passages: int = Field(ge=0)
    ivf_nlist: int | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def write(self, directory: Path) -> None:
        (directory / MANIFEST).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, directory: Path) -> "Manifest":
        path = directory / MANIFEST
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise IndexCorrupt(f"cannot read {path}: {error}") from None
        version = raw.get("format_version") if isinstance(raw, dict) else None
        if version != FORMAT_VERSION:
            raise IndexCorrupt(
                f"{path} has index format version {version!r}; this Lethe reads version "
                f"{FORMAT_VERSION}. Rebuild the index with `lethe index build`."
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            raise IndexCorrupt(f"{path} is not a valid manifest: {error}") from None
