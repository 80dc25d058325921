"""Atomic writes: build beside the target under a hidden name, then rename into place.

A reader (or a loader) never sees a half-written file or directory at the target path; a crash
leaves only a hidden temporary that the next write to the same target removes.
"""

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lethe.edits.errors import AlreadyExists


def _temporary_sibling(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}-{uuid.uuid4().hex[:8]}"


def remove_stale_temporaries(target: Path) -> None:
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


@contextmanager
def atomic_directory(target: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces `target` in one rename."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise AlreadyExists(f"{target} already exists; choose another path or pass --overwrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    staging = _temporary_sibling(target, "tmp")
    staging.mkdir()
    try:
        yield staging
        commit_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def commit_directory(staging: Path, target: Path) -> None:
    """Move a finished directory into place; an existing target is swapped out, then removed."""
    if target.exists():
        retired = _temporary_sibling(target, "old")
        os.rename(target, retired)
        os.rename(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, target)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    staging = _temporary_sibling(path, "tmp")
    with staging.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`."""
    staging = _temporary_sibling(path, "tmp")
    try:
        yield staging
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
