"""Alembic, driven from code: the schema is brought to head when a store opens.

The scripts ship in the package (`migrations/`); no alembic.ini is read. Concurrent openers are
serialized by the database: PostgreSQL by a transaction-scoped advisory lock taken before the
revision is read, SQLite by its write lock (the migration runs in one BEGIN IMMEDIATE
transaction). The second opener thus finds the schema at head and does nothing. On both
backends DDL is transactional, so a migration that fails leaves the previous schema whole.
Within one process a lock comes first: Alembic keeps the running migration in module globals
(`alembic.context`, `alembic.op`), so two threads migrating at once would mix their connections.
"""

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from lethe.edits.errors import FailedPrecondition
from lethe.service.store.database import WRITE

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant works as long as every Lethe uses the same one: b"lethe" read as an integer.
ADVISORY_LOCK_KEY = int.from_bytes(b"lethe", "big")
_ALEMBIC_IN_USE = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration; `migrations/env.py` runs on `connection` when one is given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the package ships no migration"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Apply every missing migration, in one transaction; a no-op when the schema is at head."""
    with _ALEMBIC_IN_USE, engine.connect() as connection:
        connection.execution_options(**{WRITE: True})
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            current = current_revision(connection)
            script = ScriptDirectory.from_config(alembic_config())
            if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
                raise FailedPrecondition(
                    f"the database's schema is at revision {current!r}, which this Lethe does not know "
                    "(a newer Lethe migrated it): run that version, or point the store at another database"
                )
            if current != script.get_current_head():
                command.upgrade(alembic_config(connection), "head")
