"""The store's domain records: what the service reads and writes, independent of SQL.

Frozen pydantic models; `tables.py` maps each one to a table column for column. JSON fields hold
`JsonValue`s only, so what is stored is exactly what is read back. Times are timezone-aware and
stored in UTC.
"""

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ExperimentState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EditJobRecord(Record):
    """An edit job: a request to build a pruned variant of `parent` named `name`."""

    id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    request_id: str | None = Field(
        None, min_length=1, max_length=200, description="Client's idempotency key; unique when set."
    )
    parent: str = Field(min_length=1, max_length=200, description="Variant the edit starts from.")
    name: str = Field(min_length=1, max_length=200, description="Name of the variant it builds.")
    state: JobState = JobState.QUEUED
    stage: str = Field("", max_length=64, description="Current step, e.g. 'collect' or 'apply'.")
    spec: dict[str, JsonValue] = Field(description="The request, as JSON.")
    progress: dict[str, JsonValue] = Field(default_factory=dict)
    error: str = Field("", description="Why the job failed; empty otherwise.")
    result: dict[str, JsonValue] | None = None
    created_at: AwareDatetime = Field(default_factory=utcnow)
    updated_at: AwareDatetime = Field(default_factory=utcnow)
    ended_at: AwareDatetime | None = None


class ExperimentRecord(Record):
    """An A/B experiment; `version` grows by one on every update (optimistic concurrency)."""

    name: str = Field(min_length=1, max_length=200)
    spec: dict[str, JsonValue] = Field(
        description="Arms (variant + weight), an optional mirror arm (variant + percent), the salt."
    )
    state: ExperimentState = ExperimentState.RUNNING
    version: int = Field(1, ge=1)
    created_at: AwareDatetime = Field(default_factory=utcnow)
    updated_at: AwareDatetime = Field(default_factory=utcnow)


class ExposureRecord(Record):
    """One request's assignment to an arm, then (once finished) its outcome."""

    id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    request_id: str = Field(min_length=1, max_length=200)
    experiment: str = Field(min_length=1, max_length=200)
    arm: str = Field(min_length=1, max_length=200)
    variant: str = Field(min_length=1, max_length=200)
    routing_key_hash: str | None = Field(None, max_length=128)
    override: bool = Field(False, description="The client forced the arm instead of the hash.")
    mirrored: bool = Field(False, description="A shadow copy of the request; its reply was not served.")
    assigned_at: AwareDatetime = Field(default_factory=utcnow)
    finished_at: AwareDatetime | None = None
    ttft_s: float | None = Field(None, ge=0)
    e2e_s: float | None = Field(None, ge=0)
    prompt_tokens: int | None = Field(None, ge=0)
    completion_tokens: int | None = Field(None, ge=0)
    finish_reason: str | None = Field(None, max_length=32)
    status_code: str | None = Field(None, max_length=32, description="gRPC status name, e.g. 'OK'.")


# Fields a writer may change after creation; the rest are fixed when the row is written.
EDIT_JOB_MUTABLE = frozenset({"state", "stage", "progress", "error", "result", "ended_at"})
EXPERIMENT_MUTABLE = frozenset({"spec", "state"})
EXPOSURE_OUTCOME = frozenset(
    {"finished_at", "ttft_s", "e2e_s", "prompt_tokens", "completion_tokens", "finish_reason", "status_code"}
)
