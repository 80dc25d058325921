"""Source documents: the JSONL input format and its validation."""

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lethe.retrieval.errors import InvalidArgument, NotFound

MetadataValue = str | int | float | bool | None | list[str | int | float | bool]


class Document(BaseModel):
    """One input document; `metadata` holds anything else (filterable by equality)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=512, description="Unique document id.")
    text: str = Field(min_length=1, description="The document body that is chunked and embedded.")
    title: str | None = Field(default=None, description="Optional title, embedded with each passage.")
    source: str | None = Field(default=None, description="Optional origin (URL, file, corpus name).")
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict, description="Free-form fields; search can filter on them."
    )

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain some non-whitespace text")
        return value


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "document"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_documents(records: Iterable[tuple[str, Any]]) -> list[Document]:
    """Validate (location, raw record) pairs; the first bad record raises with its location.

    Everything is validated before anything is returned, so a caller that indexes the result
    never indexes half a file.
    """
    documents: list[Document] = []
    seen: dict[str, str] = {}
    for where, raw in records:
        if not isinstance(raw, dict):
            raise InvalidArgument(f"{where}: a document must be a JSON object with 'id' and 'text'")
        try:
            document = Document.model_validate(raw)
        except ValidationError as error:
            raise InvalidArgument(f"{where}: malformed document: {_describe(error)}") from None
        if document.id in seen:
            raise InvalidArgument(
                f"{where}: duplicate document id {document.id!r} (first seen at {seen[document.id]})"
            )
        seen[document.id] = where
        documents.append(document)
    return documents


def read_jsonl(path: Path) -> list[tuple[str, Any]]:
    """Read a JSONL file into (\"file:line\", parsed value) pairs, skipping blank lines."""
    if not path.is_file():
        raise NotFound(f"no such file: {path}")
    records: list[tuple[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                records.append((where, json.loads(line)))
            except json.JSONDecodeError as error:
                raise InvalidArgument(f"{where}: not valid JSON ({error.msg})") from None
    return records


def load_documents(path: Path) -> list[Document]:
    """Read and validate a documents JSONL file (`id`, `text`, optional `title`, `source`,
    `metadata`). Raises `InvalidArgument` naming the line of the first malformed document."""
    documents = parse_documents(read_jsonl(path))
    if not documents:
        raise InvalidArgument(f"{path}: no documents found (expected one JSON object per line)")
    return documents
