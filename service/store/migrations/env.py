"""Alembic's environment: runs on the connection `lethe.service.store.migrate` passes in.

Without one it connects to the config's `sqlalchemy.url`; that is how a new revision is drafted:
`cfg = alembic_config(); cfg.set_main_option("sqlalchemy.url", URL_AT_HEAD)`, then
`alembic.command.revision(cfg, "why", autogenerate=True)`, then review the draft by hand.
"""

from alembic import context
from sqlalchemy import Connection, create_engine

from lethe.service.store.tables import Base


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


given: Connection | None = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    with create_engine(context.config.get_main_option("sqlalchemy.url", "")).connect() as fresh:
        run(fresh)
