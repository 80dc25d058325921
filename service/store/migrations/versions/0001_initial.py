"""The initial schema: edit jobs, A/B experiments and their exposure log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the enum values at this revision: a later change to `records.py` needs a new
# migration, not an edit of this one.
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
EXPERIMENT_STATES = ("running", "paused", "stopped")


def when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def state() -> sa.Column:
    return sa.Column("state", sa.String(16), nullable=False)


def one_of(values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    """The CHECK that `tables.state_enum` declares, by the name the naming convention gives it."""
    return sa.CheckConstraint(f"state IN ({', '.join(repr(v) for v in values)})", name=name)


def upgrade() -> None:
    op.create_table(
        "edit_jobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("parent", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        state(),
        sa.Column("stage", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        when("created_at"),
        when("updated_at"),
        when("ended_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_edit_jobs"),
        sa.UniqueConstraint("request_id", name="uq_edit_jobs_request_id"),
        one_of(JOB_STATES, "ck_edit_jobs_job_state"),
    )
    op.create_index("ix_edit_jobs_created_at_id", "edit_jobs", ["created_at", "id"])
    op.create_index("ix_edit_jobs_state_created_at_id", "edit_jobs", ["state", "created_at", "id"])

    op.create_table(
        "experiments",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        state(),
        sa.Column("version", sa.Integer(), nullable=False),
        when("created_at"),
        when("updated_at"),
        sa.PrimaryKeyConstraint("name", name="pk_experiments"),
        one_of(EXPERIMENT_STATES, "ck_experiments_experiment_state"),
    )

    op.create_table(
        "exposures",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("experiment", sa.String(200), nullable=False),
        sa.Column("arm", sa.String(200), nullable=False),
        sa.Column("variant", sa.String(200), nullable=False),
        sa.Column("routing_key_hash", sa.String(128), nullable=True),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.Column("mirrored", sa.Boolean(), nullable=False),
        when("assigned_at"),
        when("finished_at", nullable=True),
        sa.Column("ttft_s", sa.Double(), nullable=True),
        sa.Column("e2e_s", sa.Double(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("status_code", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_exposures"),
        sa.ForeignKeyConstraint(
            ["experiment"], ["experiments.name"], name="fk_exposures_experiment_experiments"
        ),
    )
    op.create_index(
        "ix_exposures_experiment_assigned_at_id", "exposures", ["experiment", "assigned_at", "id"]
    )


def downgrade() -> None:
    op.drop_table("exposures")
    op.drop_table("experiments")
    op.drop_table("edit_jobs")
