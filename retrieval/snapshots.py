"""Versioned snapshot directories behind an atomic CURRENT pointer.

Layout of an index directory::

    CURRENT                 name of the live snapshot, replaced atomically (temp + rename)
    snapshots/000001/       manifest.json, vectors.faiss, passages.sqlite (never changed again)
    snapshots/.tmp-*/       a snapshot being written; ignored by readers, swept by writers
    .write.lock             serialises writers across processes (flock)

A writer builds a complete new snapshot in a temp directory, fsyncs it, renames it into place and
only then points CURRENT at it (both through `lethe.edits.atomic`: data fsynced before each
rename, the directory after). A crash at any step leaves CURRENT on the previous snapshot.
"""

import contextlib
import fcntl
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from lethe.edits.atomic import atomic_write_text, commit_directory
from lethe.retrieval.errors import IndexCorrupt, NotFound

CURRENT = "CURRENT"
SNAPSHOTS = "snapshots"
LOCK = ".write.lock"
_TEMP_PREFIX = ".tmp-"


class SnapshotDir:
    """The on-disk side of an index: which snapshot is live, and how a new one is published."""

    def __init__(self, root: Path):
        self.root = root

    @property
    def snapshots(self) -> Path:
        return self.root / SNAPSHOTS

    def exists(self) -> bool:
        return (self.root / CURRENT).is_file()

    def current_name(self) -> str:
        pointer = self.root / CURRENT
        if not pointer.is_file():
            raise NotFound(
                f"no index at {self.root} (no {CURRENT} file); create one with `lethe index build`"
            )
        name = pointer.read_text(encoding="utf-8").strip()
        if not (self.snapshots / name).is_dir():
            raise IndexCorrupt(f"{pointer} names snapshot {name!r}, which does not exist")
        return name

    def path_of(self, name: str) -> Path:
        return self.snapshots / name

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK).open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def next_name(self) -> str:
        numbers = [int(p.name) for p in self.snapshots.iterdir() if p.name.isdigit()]
        return f"{max(numbers, default=0) + 1:06d}"

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private temp directory for a new snapshot; removed unless it was published."""
        self.snapshots.mkdir(parents=True, exist_ok=True)
        temp = self.snapshots / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
        temp.mkdir()
        try:
            yield temp
        finally:
            shutil.rmtree(temp, ignore_errors=True)

    def publish(self, staged: Path) -> str:
        """Make a fully written staging directory the live snapshot. Call under the write lock."""
        name = self.next_name()
        commit_directory(staged, self.snapshots / name)
        atomic_write_text(self.root / CURRENT, name + "\n")
        return name

    def sweep(self, keep: int) -> None:
        """Drop all but the newest `keep` snapshots and any leftover staging directories.

        Call under the write lock (so no staging directory is in use). Readers that still hold
        a dropped snapshot keep working: its index is in memory and its database file is open.
        """
        live = self.current_name()
        numbered = sorted((p for p in self.snapshots.iterdir() if p.name.isdigit()), reverse=True)
        for old in numbered[keep:]:
            if old.name != live:
                shutil.rmtree(old, ignore_errors=True)
        for leftover in self.snapshots.glob(f"{_TEMP_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
