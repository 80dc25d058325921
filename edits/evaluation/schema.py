"""The one JSON schema every `lethe eval` command writes (format `lethe-eval/1`)."""

import hashlib
import json
from collections.abc import Sequence, Sized
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from lethe.edits import __version__
from lethe.edits.atomic import atomic_write_text

FORMAT = "lethe-eval/1"
Command = Literal["memorization", "perplexity", "agreement", "facts"]


class ModelRef(BaseModel):
    """Which model was measured; `edit` holds the recipe of an edited checkpoint."""

    name: str
    path: str
    edit: dict[str, Any] | None = None


class DataRef(BaseModel):
    path: str
    sha256: str
    items: int | None = None
    tokens: int | None = None

    @classmethod
    def of(cls, path: Path, sequences: Sequence[Sized]) -> "DataRef":
        """The data file, its hash, and the token sequences measured from it."""
        return cls(
            path=str(path),
            sha256=file_sha256(path),
            items=len(sequences),
            tokens=sum(len(sequence) for sequence in sequences),
        )


class EvalResult(BaseModel):
    """One model measured on one data file."""

    command: Command
    model: ModelRef
    reference: ModelRef | None = None
    data: DataRef
    settings: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float]
    groups: dict[str, dict[str, float]] = Field(default_factory=dict)
    """The same metrics per item group (for example the `kind` of a testbed item)."""
    items: list[dict[str, Any]] = Field(default_factory=list)
    seconds: float


class EvalReport(BaseModel):
    """What a command writes: one result per model, side by side under `--compare`."""

    format: Literal["lethe-eval/1"] = FORMAT
    lethe_version: str = __version__
    created: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    command: Command
    results: list[EvalResult]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The name the evaluation commands import; the one implementation is in `lethe.edits.atomic`.
write_atomic = atomic_write_text


def write_report(report: EvalReport, path: Path) -> None:
    atomic_write_text(path, json.dumps(report.model_dump(mode="json"), indent=1) + "\n")


def read_report(path: Path) -> EvalReport:
    return EvalReport.model_validate_json(path.read_text(encoding="utf-8"))
