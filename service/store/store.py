"""The store: edit jobs, A/B experiments and their exposure log, behind one database URL.

Concurrency contract: a `Store` is safe to share between threads (async callers use
`asyncio.to_thread`), and several stores, in several processes or replicas, may share one
database. Every method is one transaction, so a write is all there or not there at all, even if
the process dies halfway. A read-modify-write locks its row first (SELECT ... FOR UPDATE on
PostgreSQL, the database's write lock on SQLite), so two writers never both act on one old value.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement, Engine, and_, func, or_, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from lethe.edits.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, explain
from lethe.service.store import database, migrate, pages
from lethe.service.store.records import (
    EDIT_JOB_MUTABLE,
    EXPERIMENT_MUTABLE,
    EXPOSURE_OUTCOME,
    EditJobRecord,
    ExperimentRecord,
    ExposureRecord,
    JobState,
    utcnow,
)
from lethe.service.store.tables import EditJobRow, ExperimentRow, ExposureRow

R = TypeVar("R", bound=BaseModel)


class Store:
    """Open with `Store.open(url)`; `close()` (or a `with` block) releases its connections."""

    def __init__(self, engine: Engine, url: URL) -> None:
        self._engine = engine
        self._url = url
        self._reader = sessionmaker(engine, expire_on_commit=False)
        writer = engine.execution_options(**{database.WRITE: True})
        self._writer = sessionmaker(writer, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Self:
        """Connect, and migrate the schema to head (a no-op when it is there already).

        Raises InvalidArgument for a URL it cannot use, Unavailable for a database it cannot
        reach, FailedPrecondition for a schema newer than this code.
        """
        parsed = database.parse_url(url)
        engine = database.create(parsed)
        try:
            migrate.upgrade(engine)
        except DBAPIError as error:
            engine.dispose()
            raise database.unavailable(error, parsed) from error
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, parsed)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def schema_revision(self) -> str:
        with self._engine.connect() as connection:
            revision = migrate.current_revision(connection)
        assert revision is not None, "Store.open migrated the schema"
        return revision

    # Edit jobs

    def create_edit_job(self, record: EditJobRecord) -> EditJobRecord:
        """Insert `record`; if a job with its `request_id` exists, return that one instead."""
        try:
            with self._transaction(write=True) as session:
                existing = self._job_by_request(session, record.request_id)
                if existing is not None:
                    return existing
                session.add(EditJobRow(**record.model_dump()))
        except IntegrityError:
            with self._transaction() as session:
                existing = self._job_by_request(session, record.request_id)
            if existing is not None:  # another replica inserted it between our read and insert
                return existing
            raise AlreadyExists(f"an edit job with id {record.id!r} exists already") from None
        return record

    def get_edit_job(self, job_id: str) -> EditJobRecord:
        with self._transaction() as session:
            return _record(EditJobRecord, self._job_row(session, job_id))

    def list_edit_jobs(
        self, state: JobState | None = None, page_size: int = 50, page_token: str | None = None
    ) -> tuple[list[EditJobRecord], str | None]:
        """One page in (created_at, id) order, and the token of the next (None after the last)."""
        pages.check_size(page_size)
        if state is not None and state not in set(JobState):
            raise InvalidArgument(f"state must be one of {[s.value for s in JobState]}, not {state!r}")
        query = select(EditJobRow).order_by(EditJobRow.created_at, EditJobRow.id).limit(page_size + 1)
        if state is not None:
            query = query.where(EditJobRow.state == state)
        if page_token is not None:
            key = pages.decode(page_token, state)
            query = query.where(_after(EditJobRow.created_at, EditJobRow.id, key.created_at, key.id))
        with self._transaction() as session:
            rows = [_record(EditJobRecord, r) for r in session.scalars(query)]
        page = rows[:page_size]
        more = len(rows) > page_size
        return page, pages.encode(page[-1].created_at, page[-1].id, state) if more else None

    def update_edit_job(self, job_id: str, **changes: Any) -> EditJobRecord:
        """Change the mutable fields (state, stage, progress, error, result, ended_at)."""
        _check_fields("an edit job", changes, EDIT_JOB_MUTABLE)
        with self._transaction(write=True) as session:
            row = self._job_row(session, job_id, lock=True)
            record = _changed(EditJobRecord, row, {**changes, "updated_at": utcnow()})
            _assign(row, record, [*changes, "updated_at"])
        return record

    # Experiments

    def create_experiment(self, record: ExperimentRecord) -> ExperimentRecord:
        try:
            with self._transaction(write=True) as session:
                session.add(ExperimentRow(**record.model_dump()))
        except IntegrityError:
            raise AlreadyExists(
                f"experiment {record.name!r} exists already; choose another name or update it"
            ) from None
        return record

    def get_experiment(self, name: str) -> ExperimentRecord:
        with self._transaction() as session:
            return _record(ExperimentRecord, self._experiment_row(session, name))

    def list_experiments(self) -> list[ExperimentRecord]:
        with self._transaction() as session:
            rows = session.scalars(select(ExperimentRow).order_by(ExperimentRow.name))
            return [_record(ExperimentRecord, row) for row in rows]

    def update_experiment(self, name: str, expected_version: int, **changes: Any) -> ExperimentRecord:
        """Change spec/state if the experiment is still at `expected_version`; the version grows by 1.

        FailedPrecondition when another writer updated it since the caller read it.
        """
        _check_fields("an experiment", changes, EXPERIMENT_MUTABLE)
        with self._transaction(write=True) as session:
            row = self._experiment_row(session, name, lock=True)
            if row.version != expected_version:
                raise FailedPrecondition(
                    f"experiment {name!r} is at version {row.version}, not {expected_version}: another "
                    "writer changed it; read it again and reapply the change"
                )
            update = {**changes, "version": row.version + 1, "updated_at": utcnow()}
            record = _changed(ExperimentRecord, row, update)
            _assign(row, record, update)
        return record

    # Exposures

    def record_exposure(self, record: ExposureRecord) -> ExposureRecord:
        """Log an assignment; NotFound when the experiment does not exist."""
        try:
            with self._transaction(write=True) as session:
                session.add(ExposureRow(**record.model_dump()))
        except IntegrityError:
            with self._transaction() as session:
                self._experiment_row(session, record.experiment)
            raise AlreadyExists(f"exposure {record.id!r} is recorded already") from None
        return record

    def finish_exposure(self, exposure_id: str, **outcome: Any) -> ExposureRecord:
        """Add the outcome (finished_at defaults to now, ttft_s, e2e_s, tokens, ...); once only."""
        _check_fields("an exposure's outcome", outcome, EXPOSURE_OUTCOME)
        outcome.setdefault("finished_at", utcnow())
        with self._transaction(write=True) as session:
            row = session.get(ExposureRow, exposure_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no exposure {exposure_id!r}")
            if row.finished_at is not None:
                raise FailedPrecondition(f"exposure {exposure_id!r} was finished at {row.finished_at}")
            record = _changed(ExposureRecord, row, outcome)
            _assign(row, record, outcome)
        return record

    def iter_exposures(self, experiment: str, batch_size: int = 1000) -> Iterator[ExposureRecord]:
        """Every exposure of `experiment` in assignment order, read `batch_size` rows at a time.

        Each batch is its own short read, so a long iteration holds no lock or snapshot; rows
        recorded meanwhile with a later assignment time are included.
        """
        if batch_size < 1:
            raise InvalidArgument(f"batch_size must be at least 1, not {batch_size}")
        with self._transaction() as session:
            self._experiment_row(session, experiment)
        return self._exposure_batches(experiment, batch_size)

    def count_exposures(self, experiment: str) -> dict[str, int]:
        """Exposures per arm (mirrored ones included, under their own arm)."""
        query = (
            select(ExposureRow.arm, func.count())
            .where(ExposureRow.experiment == experiment)
            .group_by(ExposureRow.arm)
        )
        with self._transaction() as session:
            self._experiment_row(session, experiment)
            return {arm: count for arm, count in session.execute(query)}

    # Internals

    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        try:
            with (self._writer if write else self._reader).begin() as session:
                yield session
        except OperationalError as error:  # connection lost, server gone, lock wait timed out
            raise database.unavailable(error, self._url) from error

    def _exposure_batches(self, experiment: str, batch_size: int) -> Iterator[ExposureRecord]:
        query = (
            select(ExposureRow)
            .where(ExposureRow.experiment == experiment)
            .order_by(ExposureRow.assigned_at, ExposureRow.id)
            .limit(batch_size)
        )
        batch_query = query
        while True:
            with self._transaction() as session:
                batch = [_record(ExposureRecord, row) for row in session.scalars(batch_query)]
            yield from batch
            if len(batch) < batch_size:
                return
            last = batch[-1]
            after = _after(ExposureRow.assigned_at, ExposureRow.id, last.assigned_at, last.id)
            batch_query = query.where(after)

    @staticmethod
    def _job_by_request(session: Session, request_id: str | None) -> EditJobRecord | None:
        if request_id is None:
            return None
        row = session.scalar(select(EditJobRow).where(EditJobRow.request_id == request_id))
        return _record(EditJobRecord, row) if row is not None else None

    @staticmethod
    def _job_row(session: Session, job_id: str, lock: bool = False) -> EditJobRow:
        row = session.get(EditJobRow, job_id, with_for_update=lock)
        if row is None:
            raise NotFound(f"no edit job {job_id!r}")
        return row

    @staticmethod
    def _experiment_row(session: Session, name: str, lock: bool = False) -> ExperimentRow:
        row = session.get(ExperimentRow, name, with_for_update=lock)
        if row is None:
            raise NotFound(f"no experiment {name!r}; create it first")
        return row


def _after(
    first: InstrumentedAttribute[datetime], second: InstrumentedAttribute[str], at: datetime, id: str
) -> ColumnElement[bool]:
    """Rows after (at, id) in (first, second) order: the keyset condition of a next page."""
    return or_(first > at, and_(first == at, second > id))


def _check_fields(what: str, changes: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise InvalidArgument(f"cannot change {unknown} of {what}; changeable fields: {sorted(allowed)}")


def _record(model: type[R], row: object) -> R:
    return model.model_validate(row, from_attributes=True)


def _changed(model: type[R], row: object, changes: dict[str, Any]) -> R:
    """The row as a record with `changes` applied, validated as a whole."""
    current = _record(model, row).model_dump()
    try:
        return model.model_validate({**current, **changes})
    except ValidationError as error:
        raise InvalidArgument(explain(error)) from None


def _assign(row: object, record: BaseModel, fields: Iterable[str]) -> None:
    for field, value in record.model_dump(include=set(fields)).items():
        setattr(row, field, value)
