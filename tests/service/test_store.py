"""The service store, on both backends for real: a SQLite file and a throwaway PostgreSQL server.

`store_url` (tests/service/conftest.py) runs every test once per backend on a fresh database.
"""

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, inspect, text

from lethe.edits.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from lethe.service.store import (
    EditJobRecord,
    ExperimentRecord,
    ExperimentState,
    ExposureRecord,
    JobState,
    Store,
    default_database_url,
)
from lethe.service.store.database import parse_url
from lethe.service.store.migrate import head_revision
from lethe.service.store.tables import Base
from tests.service.postgres import PASSWORD

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SPEC = {
    "arms": [{"name": "a", "variant": "base", "weight": 1}, {"name": "b", "variant": "pruned", "weight": 1}],
    "salt": "s1",
}


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened


@pytest.fixture
def replica(store: Store, store_url: str) -> Iterator[Store]:
    """A second store on the same database, as another replica (or process) would open it."""
    with Store.open(store_url) as opened:
        yield opened


@contextmanager
def raw_engine(url: str) -> Iterator[Engine]:
    engine = create_engine(parse_url(url))
    try:
        yield engine
    finally:
        engine.dispose()


def job(**fields: Any) -> EditJobRecord:
    return EditJobRecord(**{"parent": "base", "name": "pruned", "spec": {"recipe": "r"}, **fields})


def exposure(**fields: Any) -> ExposureRecord:
    defaults = {"request_id": "req", "experiment": "ab", "arm": "a", "variant": "base"}
    return ExposureRecord(**{**defaults, **fields})


def test_default_url_is_a_sqlite_file_in_lethe_home(tmp_path: Path):
    assert default_database_url(tmp_path / "home") == f"sqlite:///{tmp_path}/home/lethe.db"


def test_open_migrates_to_head_and_reopening_changes_nothing(store_url: str):
    with Store.open(store_url) as first:
        assert first.schema_revision() == head_revision()
        created = first.create_edit_job(job(request_id="kept"))
    with raw_engine(store_url) as engine:
        assert {"edit_jobs", "experiments", "exposures"} <= set(inspect(engine).get_table_names())
    with Store.open(store_url) as again:
        assert again.schema_revision() == head_revision()
        assert again.get_edit_job(created.id) == created
    with raw_engine(store_url) as engine, engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            head_revision()
        ]
        if engine.dialect.name == "sqlite":  # WAL is a property of the file; it outlives the store
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def slow_ddl(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
    """Slows each CREATE TABLE down, so migrations would overlap were they not serialized."""
    if statement.lstrip().upper().startswith("CREATE TABLE"):
        time.sleep(0.2)


OPEN_WHEN_TOLD = """
import sys, time
from pathlib import Path
from sqlalchemy import Engine, event
from lethe.service.store import Store

def slow(conn, cursor, statement, *args):
    if statement.lstrip().upper().startswith("CREATE TABLE"):
        time.sleep(0.2)

event.listen(Engine, "after_cursor_execute", slow)
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.005)
with Store.open(sys.argv[1]) as store:
    print(store.schema_revision())
"""


def test_concurrent_opens_of_a_new_database_migrate_it_once(store_url: str, tmp_path: Path):
    """Processes (as replicas would) and threads open one new database at the same moment."""
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_WHEN_TOLD, store_url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    outcomes: list[object] = []

    def open_store(url: str) -> None:
        try:
            with Store.open(url) as opened:
                outcomes.append(opened.schema_revision())
        except Exception as error:  # reported below, with the others
            outcomes.append(error)

    # Two threads migrate another database meanwhile: Alembic's globals must not mix the two.
    other = default_database_url(tmp_path / "other")
    threads = [
        threading.Thread(target=open_store, args=(url,), daemon=True) for url in [store_url] * 3 + [other] * 2
    ]
    event.listen(Engine, "after_cursor_execute", slow_ddl)
    try:
        go.touch()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        event.remove(Engine, "after_cursor_execute", slow_ddl)
    for child in children:
        out, err = child.communicate(timeout=60)
        outcomes.append(out.strip() if child.returncode == 0 else err)
    assert outcomes == [head_revision()] * 8


def test_tables_and_migrations_agree(store: Store, store_url: str):
    """Alembic's autogenerate finds nothing to add: a table change without a migration fails here."""
    with raw_engine(store_url) as engine, engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_replicas_see_each_others_writes(store: Store, replica: Store):
    created = store.create_edit_job(job())
    assert replica.get_edit_job(created.id) == created
    replica.update_edit_job(created.id, state=JobState.RUNNING, stage="collect", progress={"tokens": 10})
    assert store.get_edit_job(created.id).progress == {"tokens": 10}
    replica.create_experiment(ExperimentRecord(name="ab", spec=SPEC))
    assert [e.name for e in store.list_experiments()] == ["ab"]
    seen = store.record_exposure(exposure())
    assert list(replica.iter_exposures("ab")) == [seen]


def test_edit_jobs_are_created_once_per_request_id(store: Store, replica: Store):
    first = store.create_edit_job(job(request_id="client-1"))
    retried = replica.create_edit_job(job(request_id="client-1", name="other"))
    assert retried == first
    unrelated = store.create_edit_job(job())
    assert unrelated.id != first.id
    with pytest.raises(AlreadyExists):
        store.create_edit_job(job(id=unrelated.id))

    racers = 6
    start = threading.Barrier(racers)
    ids: list[str] = []

    def create() -> None:
        start.wait()
        ids.append(store.create_edit_job(job(request_id="client-2")).id)

    threads = [threading.Thread(target=create) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(ids) == racers and len(set(ids)) == 1
    jobs, _ = store.list_edit_jobs(page_size=100)
    assert sorted(j.request_id or "" for j in jobs) == ["", "client-1", "client-2"]


def test_pages_walk_every_job_once_in_order_with_a_state_filter(store: Store):
    states = list(JobState)
    # Three jobs share each creation time, so the id must break ties for the order to be stable.
    created = [
        store.create_edit_job(job(state=states[i % len(states)], created_at=T0 + timedelta(seconds=i // 3)))
        for i in range(120)
    ]

    def walk(state: JobState | None, page_size: int) -> list[EditJobRecord]:
        seen: list[EditJobRecord] = []
        token: str | None = None
        while True:
            page, token = store.list_edit_jobs(state=state, page_size=page_size, page_token=token)
            assert len(page) <= page_size
            seen.extend(page)
            if token is None:
                return seen

    in_order = sorted(created, key=lambda j: (j.created_at, j.id))
    assert walk(None, 7) == in_order
    assert walk(None, 120) == in_order
    running = walk(JobState.RUNNING, 5)
    assert running == [j for j in in_order if j.state == JobState.RUNNING] and len(running) == 24

    _, token = store.list_edit_jobs(state=JobState.RUNNING, page_size=5)
    assert token is not None
    with pytest.raises(InvalidArgument, match="filter"):
        store.list_edit_jobs(state=JobState.FAILED, page_token=token)
    with pytest.raises(InvalidArgument, match="page_token"):
        store.list_edit_jobs(page_token="not-a-token")
    with pytest.raises(InvalidArgument, match="page_size"):
        store.list_edit_jobs(page_size=0)


def test_edit_job_updates_change_only_known_fields(store: Store):
    created = store.create_edit_job(job(created_at=T0, updated_at=T0))
    ended = datetime.now(UTC)
    updated = store.update_edit_job(
        created.id, state=JobState.SUCCEEDED, stage="done", result={"checkpoint": "/c"}, ended_at=ended
    )
    assert store.get_edit_job(created.id) == updated
    assert (updated.state, updated.stage, updated.ended_at) == (JobState.SUCCEEDED, "done", ended)
    assert updated.result == {"checkpoint": "/c"}
    assert updated.updated_at > T0 and updated.created_at == T0 and updated.spec == created.spec
    with pytest.raises(InvalidArgument, match="spec"):
        store.update_edit_job(created.id, spec={"recipe": "other"})
    with pytest.raises(InvalidArgument, match="state"):
        store.update_edit_job(created.id, state="exploded")
    with pytest.raises(NotFound):
        store.update_edit_job("no-such-job", stage="x")
    with pytest.raises(NotFound):
        store.get_edit_job("no-such-job")
    assert store.get_edit_job(created.id) == updated


def slow_experiment_reads(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
    if statement.lstrip().upper().startswith("SELECT") and "FROM experiments" in statement:
        time.sleep(0.2)


def test_an_experiment_changed_by_another_writer_is_not_overwritten(store: Store, replica: Store):
    created = store.create_experiment(ExperimentRecord(name="ab", spec=SPEC))
    with pytest.raises(AlreadyExists, match="ab"):
        replica.create_experiment(ExperimentRecord(name="ab", spec={}))
    seen_by_replica = replica.get_experiment("ab")
    paused = store.update_experiment("ab", created.version, state=ExperimentState.PAUSED)
    assert paused.version == created.version + 1
    with pytest.raises(FailedPrecondition, match="version"):
        replica.update_experiment("ab", seen_by_replica.version, state=ExperimentState.STOPPED)
    assert replica.get_experiment("ab") == paused
    stopped = replica.update_experiment("ab", paused.version, state=ExperimentState.STOPPED, spec={})
    assert (stopped.version, stopped.state, stopped.spec) == (3, ExperimentState.STOPPED, {})
    with pytest.raises(NotFound):
        store.update_experiment("missing", 1, state=ExperimentState.PAUSED)

    # Writers racing from one version: exactly one wins, the rest are told to re-read. Each read
    # of the row is slowed down, so all would read the old version were the row not locked.
    racers = 4
    start = threading.Barrier(racers)
    outcomes: list[str] = []

    def update(salt: int) -> None:
        start.wait()
        try:
            store.update_experiment("ab", stopped.version, spec={"salt": salt})
            outcomes.append("won")
        except FailedPrecondition:
            outcomes.append("conflict")

    threads = [threading.Thread(target=update, args=(i,), daemon=True) for i in range(racers)]
    event.listen(Engine, "after_cursor_execute", slow_experiment_reads)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        event.remove(Engine, "after_cursor_execute", slow_experiment_reads)
    assert sorted(outcomes) == ["conflict"] * (racers - 1) + ["won"]
    assert store.get_experiment("ab").version == stopped.version + 1


def test_exposures_are_recorded_finished_and_read_back(store: Store, replica: Store):
    store.create_experiment(ExperimentRecord(name="ab", spec=SPEC))
    store.create_experiment(ExperimentRecord(name="other", spec=SPEC))
    # Recorded out of assignment order: reading back must sort by assignment time.
    times = [T0 + timedelta(seconds=s) for s in (3, 0, 2, 1, 4)]
    arms = ["a", "b", "a", "a", "m"]
    recorded = [
        store.record_exposure(exposure(arm=arm, assigned_at=at, mirrored=arm == "m", routing_key_hash=arm))
        for arm, at in zip(arms, times, strict=True)
    ]
    store.record_exposure(exposure(experiment="other"))
    done = replica.finish_exposure(
        recorded[0].id, ttft_s=0.05, e2e_s=0.4, prompt_tokens=12, completion_tokens=8,
        finish_reason="length", status_code="OK",
    )  # fmt: skip
    assert done.finished_at is not None and done.ttft_s == 0.05 and done.assigned_at == times[0]

    expected = sorted([done, *recorded[1:]], key=lambda e: e.assigned_at)
    assert list(store.iter_exposures("ab", batch_size=2)) == expected
    assert list(store.iter_exposures("ab", batch_size=5)) == expected
    assert store.count_exposures("ab") == {"a": 3, "b": 1, "m": 1}
    assert store.count_exposures("other") == {"a": 1}

    with pytest.raises(FailedPrecondition, match="finished"):
        store.finish_exposure(recorded[0].id, e2e_s=1.0)
    with pytest.raises(InvalidArgument, match="arm"):
        store.finish_exposure(recorded[1].id, arm="b")
    with pytest.raises(InvalidArgument, match="ttft_s"):
        store.finish_exposure(recorded[1].id, ttft_s=-1.0)
    with pytest.raises(NotFound):
        store.finish_exposure("no-such-exposure")
    with pytest.raises(NotFound, match="create it first"):
        store.record_exposure(exposure(experiment="missing"))
    with pytest.raises(AlreadyExists):
        store.record_exposure(exposure(id=recorded[1].id))
    with pytest.raises(NotFound):
        store.count_exposures("missing")
    with pytest.raises(NotFound):
        store.iter_exposures("missing")
    assert store.count_exposures("ab") == {"a": 3, "b": 1, "m": 1}


@contextmanager
def commits_fail() -> Iterator[list[str]]:
    """Every commit fails after its statements ran; yields the INSERT/UPDATE statements sent."""
    written: list[str] = []

    def track(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            written.append(statement)

    def fail(_conn: Any) -> None:
        raise RuntimeError("the process died before COMMIT")

    event.listen(Engine, "after_cursor_execute", track)
    event.listen(Engine, "commit", fail)
    try:
        yield written
    finally:
        event.remove(Engine, "commit", fail)
        event.remove(Engine, "after_cursor_execute", track)


WRITES: dict[str, Callable[[Store, EditJobRecord, ExposureRecord], object]] = {
    "create_edit_job": lambda s, j, x: s.create_edit_job(job(request_id="new")),
    "update_edit_job": lambda s, j, x: s.update_edit_job(j.id, state=JobState.FAILED, error="boom"),
    "create_experiment": lambda s, j, x: s.create_experiment(ExperimentRecord(name="new", spec={})),
    "update_experiment": lambda s, j, x: s.update_experiment("ab", 1, state=ExperimentState.PAUSED),
    "record_exposure": lambda s, j, x: s.record_exposure(exposure(request_id="new")),
    "finish_exposure": lambda s, j, x: s.finish_exposure(x.id, ttft_s=1.0),
}


@pytest.mark.parametrize("write", WRITES)
def test_a_write_that_fails_midway_leaves_nothing(store: Store, replica: Store, write: str):
    kept_job = store.create_edit_job(job())
    store.create_experiment(ExperimentRecord(name="ab", spec=SPEC))
    kept_exposure = store.record_exposure(exposure())

    def everything(s: Store) -> tuple[object, ...]:
        return s.list_edit_jobs(page_size=100)[0], s.list_experiments(), list(s.iter_exposures("ab"))

    before = everything(replica)
    with commits_fail() as written, pytest.raises(RuntimeError, match="before COMMIT"):
        WRITES[write](store, kept_job, kept_exposure)
    assert written, "the write should have sent its statements before the commit failed"
    assert everything(replica) == before
    assert everything(store) == before


def test_a_process_killed_mid_write_leaves_no_row(store: Store, store_url: str, tmp_path: Path):
    child = textwrap.dedent(
        f"""
        import os
        from sqlalchemy import Engine, event
        from lethe.service.store import EditJobRecord, Store

        def die(conn, cursor, statement, *args):
            if statement.lstrip().upper().startswith("INSERT INTO EDIT_JOBS"):
                os._exit(9)  # the INSERT ran; the COMMIT never comes

        store = Store.open({store_url!r})
        event.listen(Engine, "after_cursor_execute", die)
        store.create_edit_job(EditJobRecord(parent="base", name="lost", spec={{}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", child], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    with Store.open(store_url) as after:
        assert after.list_edit_jobs() == ([], None)
        kept = after.create_edit_job(job())
        assert store.get_edit_job(kept.id) == kept


SECRET = "hunter2-Secret"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://lethe:{SECRET}@127.0.0.1:notaport/lethe",
        f"lethe:{SECRET}@127.0.0.1/lethe",
        f"mysql://lethe:{SECRET}@127.0.0.1/lethe",
        "sqlite://",
    ],
)
def test_a_malformed_url_says_what_to_write_without_the_password(url: str):
    with pytest.raises(InvalidArgument) as refused:
        Store.open(url)
    assert SECRET not in str(refused.value)
    assert "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE" in str(refused.value)


def test_an_unreachable_database_is_unavailable_without_the_password(store_url: str, tmp_path: Path):
    if store_url.startswith("sqlite"):
        (tmp_path / "a-file").write_text("not a folder")
        unreachable = [default_database_url(tmp_path / "a-file" / "home")]
    else:
        url = parse_url(store_url)
        unreachable = [
            url.set(port=1, password=SECRET),  # nothing listens there
            url.set(password=SECRET),  # the wrong password
            url.set(database="no_such_database"),
        ]
    for bad in unreachable:
        as_text = bad if isinstance(bad, str) else bad.render_as_string(hide_password=False)
        with pytest.raises(Unavailable, match="cannot use the database") as refused:
            Store.open(as_text)
        message = str(refused.value)
        assert SECRET not in message and PASSWORD not in message
        assert refused.value.kind == "unavailable"


def test_a_schema_newer_than_the_code_is_refused(store: Store, store_url: str):
    with raw_engine(store_url) as engine, engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'from-the-future'"))
    with pytest.raises(FailedPrecondition, match="from-the-future"):
        Store.open(store_url)


def test_the_server_opens_its_store_at_start_under_lethe_home(start_server, tiny_model, lethe_home):
    from lethe.service.config import VariantSpec

    server = start_server([VariantSpec(name="base", model=str(tiny_model))], database_url=None)
    assert server.server.store is not None
    assert server.server.store.schema_revision() == head_revision()
    assert (lethe_home / "lethe.db").is_file()
    server.stop()
    assert server.server.store is None
