"""Alembic migrations of the store; `lethe.service.store.migrate` runs them (no alembic.ini)."""
