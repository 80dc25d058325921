"""SQLAlchemy tables of the store, one per record in `records.py`, column for column.

`migrations/versions/` creates exactly this schema; a test compares the two with Alembic's
autogenerate on both backends, so a change here needs a new migration.
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Double,
    Enum,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lethe.service.store.records import ExperimentState, JobState

# Explicit constraint names: the same on SQLite and PostgreSQL, so migrations can refer to them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(64)
NAME = String(200)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both backends (SQLite keeps no zone; it stores UTC here)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the store keeps timezone-aware times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def state_enum(enum: type[StrEnum], name: str) -> Enum:
    """A VARCHAR with a CHECK constraint, holding the enum's values (not its member names)."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class EditJobRow(Base):
    __tablename__ = "edit_jobs"
    __table_args__ = (
        Index(None, "created_at", "id"),
        Index(None, "state", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    request_id: Mapped[str | None] = mapped_column(NAME, unique=True)
    parent: Mapped[str] = mapped_column(NAME)
    name: Mapped[str] = mapped_column(NAME)
    state: Mapped[JobState] = mapped_column(state_enum(JobState, "job_state"))
    stage: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ExperimentRow(Base):
    __tablename__ = "experiments"

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[ExperimentState] = mapped_column(state_enum(ExperimentState, "experiment_state"))
    version: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ExposureRow(Base):
    __tablename__ = "exposures"
    __table_args__ = (Index(None, "experiment", "assigned_at", "id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    request_id: Mapped[str] = mapped_column(NAME)
    experiment: Mapped[str] = mapped_column(NAME, ForeignKey(ExperimentRow.name))
    arm: Mapped[str] = mapped_column(NAME)
    variant: Mapped[str] = mapped_column(NAME)
    routing_key_hash: Mapped[str | None] = mapped_column(String(128))
    override: Mapped[bool]
    mirrored: Mapped[bool]
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ttft_s: Mapped[float | None] = mapped_column(Double)
    e2e_s: Mapped[float | None] = mapped_column(Double)
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    status_code: Mapped[str | None] = mapped_column(String(32))
