"""The service's persistent store: edit jobs, A/B experiments, the exposure log.

One database URL: an embedded SQLite file under LETHE_HOME by default, PostgreSQL when several
replicas share it. The schema is migrated (Alembic) when a store opens.
"""

from lethe.service.store.database import default_database_url
from lethe.service.store.records import (
    EditJobRecord,
    ExperimentRecord,
    ExperimentState,
    ExposureRecord,
    JobState,
)
from lethe.service.store.store import Store

__all__ = [
    "EditJobRecord",
    "ExperimentRecord",
    "ExperimentState",
    "ExposureRecord",
    "JobState",
    "Store",
    "default_database_url",
]
