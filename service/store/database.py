"""From a database URL to an engine: URL checks, SQLite's pragmas and locking, safe error messages.

Two backends: an embedded SQLite file (one machine) and PostgreSQL through psycopg 3 (replicas
sharing one database). Error messages render the URL with its password masked, and scrub the
password from the driver's reason too, so a log of the error never holds a credential.
"""

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from lethe.edits.errors import InvalidArgument, Unavailable

URL_FORMS = "sqlite:///PATH/lethe.db or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
# psycopg 3 is the PostgreSQL driver installed; a bare `postgresql://` means it too.
DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10
WRITE = "lethe_write"  # execution option: the transaction will write (SQLite: BEGIN IMMEDIATE)


def default_database_url(home: Path) -> str:
    """The embedded default: a SQLite file in LETHE_HOME."""
    return f"sqlite:///{Path(home) / 'lethe.db'}"


def parse_url(url: str) -> URL:
    """The URL with its driver made explicit; InvalidArgument naming the accepted forms otherwise."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # The parser's message may quote the URL, password included: say only what is expected.
        raise InvalidArgument(f"the database URL is malformed; write it as {URL_FORMS}") from None
    driver = DRIVERS.get(parsed.drivername)
    if driver is None:
        raise InvalidArgument(
            f"the database URL names {parsed.drivername!r}, which the store does not support; "
            f"write it as {URL_FORMS}"
        )
    parsed = parsed.set(drivername=driver)
    if driver == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise InvalidArgument(
            "the SQLite URL names no file (an in-memory database is not shared between connections); "
            f"write it as {URL_FORMS}"
        )
    return parsed


def safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def reason(error: BaseException, url: URL) -> str:
    """The driver's message on one line, with the URL's password (if any) masked."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    text = re.sub(r"\s+", " ", str(cause)).strip()
    return text.replace(url.password, "***") if url.password else text


def unavailable(error: BaseException, url: URL) -> Unavailable:
    return Unavailable(
        f"cannot use the database at {safe_url(url)}: {reason(error, url)}. Check that it is running "
        "and reachable, and that the URL's host, port, database name and credentials are right"
    )


def create(url: URL) -> Engine:
    """An engine for `url` (from `parse_url`); nothing is connected yet."""
    if url.get_backend_name() == "sqlite":
        assert url.database is not None  # parse_url refuses a SQLite URL without a file
        try:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise unavailable(error, url) from error
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction control skips BEGIN before DDL and SELECT; `_sqlite_begin`
    # emits it instead, so every transaction (migrations included) is whole.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer, nor it them
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A writer takes the write lock up front: a deferred transaction that reads, then writes,
    # fails at once with SQLITE_BUSY when another writer committed in between (busy_timeout
    # cannot help there); IMMEDIATE waits for the lock instead.
    write = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
