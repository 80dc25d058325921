"""Source documents: the JSONL input format and its validation."""

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from lethe.edits.errors import problems, shown
from lethe.retrieval.errors import InvalidArgument, NotFound
from lethe.retrieval.inputs import load_json, scalar_problem, text_problem
from lethe.retrieval.limits import METADATA_DEPTH, DocumentLimits

MetadataValue = str | int | float | bool | None | list[str | int | float | bool]

_DEFAULT_LIMITS = DocumentLimits()


def _limits(info: ValidationInfo) -> DocumentLimits:
    """The limits `parse_documents` passed in the validation context, else the defaults."""
    context = info.context
    return context.get("limits", _DEFAULT_LIMITS) if isinstance(context, dict) else _DEFAULT_LIMITS


def _checked_text(value: str, limit: int | None) -> str:
    if limit is not None and len(value) > limit:
        raise ValueError(f"{len(value)} characters; the limit is {limit}")
    return value


def metadata_problem(metadata: Mapping[str, Any], limits: DocumentLimits = _DEFAULT_LIMITS) -> str | None:
    """What is wrong with a document's metadata (an object of scalars or lists of scalars, within
    `limits`), naming the key; None when nothing is."""
    if len(metadata) > limits.max_metadata_keys:
        return f"{len(metadata)} keys; the limit is {limits.max_metadata_keys}"
    for key, value in metadata.items():
        if not isinstance(key, str):
            return f"keys must be strings, got {shown(key)}"
        if len(key) > limits.max_metadata_key_chars:
            return f"key {shown(key)} has {len(key)} characters; the limit is {limits.max_metadata_key_chars}"
        problem = text_problem(key)
        if problem:
            return f"key {shown(key)} {problem}"
        for item in value if isinstance(value, list) else [value]:
            if item is None and not isinstance(value, list):
                continue
            if isinstance(item, list | dict) or item is None:
                return f"{shown(key)} must be a string, number, boolean, null or a list of the first three"
            problem = scalar_problem(item)
            if problem:
                return f"{shown(key)}: {problem}"
    size = len(json.dumps(metadata))
    if size > limits.max_metadata_chars:
        return f"{size} characters as JSON; the limit is {limits.max_metadata_chars}"
    return None


class Document(BaseModel):
    """One input document; `metadata` holds anything else (filterable by equality).

    Text fields must be valid Unicode without NUL characters, and within the `DocumentLimits` given
    as the validation context's `limits` (`parse_documents` passes them; else the defaults).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=512, description="Unique document id.")
    text: str = Field(min_length=1, description="The document body that is chunked and embedded.")
    title: str | None = Field(default=None, description="Optional title, embedded with each passage.")
    source: str | None = Field(default=None, description="Optional origin (URL, file, corpus name).")
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict, description="Free-form fields; search can filter on them."
    )

    @field_validator("id", "text", "title", "source", mode="before")
    @classmethod
    def _is_unicode_text(cls, value: Any) -> Any:
        # Before pydantic's own str check, which refuses a lone surrogate in vaguer words.
        problem = text_problem(value) if isinstance(value, str) else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("must contain some non-whitespace text")
        return _checked_text(value, _limits(info).max_text_chars)

    @field_validator("title")
    @classmethod
    def _title_is_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _checked_text(value, _limits(info).max_title_chars)

    @field_validator("source")
    @classmethod
    def _source_is_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _checked_text(value, _limits(info).max_source_chars)

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_in_limits(cls, value: Any, info: ValidationInfo) -> Any:
        # The same check, in the same words, as the service's `metadata_json` gets.
        problem = metadata_problem(value, _limits(info)) if isinstance(value, dict) else None
        if problem:
            raise ValueError(problem)
        return value


def _describe(error: ValidationError, where: str, field_paths: bool) -> str:
    parts = []
    for field, message in problems(error):
        if field_paths:
            parts.append(f"{where}.{field}: {message}" if field else f"{where}: {message}")
        else:
            parts.append(f"{field or 'document'}: {message}")
    return "; ".join(parts) if field_paths else f"{where}: malformed document: " + "; ".join(parts)


def parse_documents(
    records: Iterable[tuple[str, Any]],
    limits: DocumentLimits | None = None,
    *,
    field_paths: bool = False,
) -> list[Document]:
    """Validate (location, raw record) pairs; the first bad record raises with its location.

    A location is a file line (`docs.jsonl:3`: messages read `docs.jsonl:3: malformed document:
    text: ...`) or, with `field_paths`, a request field (`documents[3]`: messages read
    `documents[3].text: ...`). Everything is validated before anything is returned, so a caller
    that indexes the result never indexes half a file.
    """
    context = {"limits": limits or _DEFAULT_LIMITS}
    documents: list[Document] = []
    seen: dict[str, str] = {}
    for where, raw in records:
        if not isinstance(raw, dict):
            raise InvalidArgument(f"{where}: a document must be a JSON object with 'id' and 'text'")
        try:
            document = Document.model_validate(raw, context=context)
        except ValidationError as error:
            raise InvalidArgument(_describe(error, where, field_paths)) from None
        if document.id in seen:
            at = f"{where}.id" if field_paths else where
            raise InvalidArgument(
                f"{at}: duplicate document id {shown(document.id, 100)} (first seen at {seen[document.id]})"
            )
        seen[document.id] = where
        documents.append(document)
    return documents


def parse_metadata_json(text: str, field: str, limits: DocumentLimits | None = None) -> dict[str, Any]:
    """A document's metadata from JSON `text` (the service's `metadata_json`), refused unparsed when
    too long or nested deeper than metadata can be; errors read `<field>: ...`."""
    limits = limits or _DEFAULT_LIMITS
    value = load_json(text, field, max_chars=limits.max_metadata_chars, max_depth=METADATA_DEPTH)
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field}: must be a JSON object")
    problem = metadata_problem(value, limits)
    if problem:
        raise InvalidArgument(f"{field}: {problem}")
    return value


JSONL_DEPTH = 16
"""Lines of a JSONL input nested deeper are refused unparsed; no format read here nests beyond 3."""


def read_jsonl(path: Path) -> list[tuple[str, Any]]:
    """Read a JSONL file into (\"file:line\", parsed value) pairs, skipping blank lines."""
    if not path.is_file():
        raise NotFound(f"no such file: {path}")
    records: list[tuple[str, Any]] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgument(f"{where}: not UTF-8 text") from None
            if line.strip():
                records.append((where, load_json(line, where, max_chars=None, max_depth=JSONL_DEPTH)))
    return records


def load_documents(path: Path) -> list[Document]:
    """Read and validate a documents JSONL file (`id`, `text`, optional `title`, `source`,
    `metadata`). Raises `InvalidArgument` naming the line of the first malformed document."""
    documents = parse_documents(read_jsonl(path))
    if not documents:
        raise InvalidArgument(f"{path}: no documents found (expected one JSON object per line)")
    return documents
