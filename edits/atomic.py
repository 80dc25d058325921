"""Atomic writes: build beside the target under a hidden name, then rename into place.

Every function here gives the same guarantee, for files and directories alike:

- the data (every file, and every directory of a tree) is fsynced before the rename, so the name
  never points at contents still only in the page cache;
- the parent directory is fsynced after the rename, so the new name itself survives a crash;
- a reader (or a loader) never sees a half-written file or directory at the target path;
- a crash leaves only a hidden temporary beside the target (`.NAME.tmp-PID-XXXXXXXX`), which the
  next write to the same target removes. A temporary whose writing process is still alive is left
  alone, so two writers to one target do not delete each other's work.

Replacing an existing directory takes two renames (a rename cannot replace a non-empty
directory): the old one is moved aside to `.NAME.old-PID-XXXXXXXX`, then the new one takes its
name. Between the two there is no target, never a partial one.
"""

import glob
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lethe.edits.errors import AlreadyExists

_KINDS = ("tmp", "old")


def _temporary_sibling(target: Path, kind: str = "tmp") -> Path:
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _writer_alive(temporary: Path, prefix: str) -> bool:
    """Whether the process that named `temporary` still runs (unparseable names: not ours, stale)."""
    pid_text = temporary.name[len(prefix) :].split("-", 1)[0]
    if not pid_text.isdigit() or int(pid_text) <= 0:
        return False
    try:
        os.kill(int(pid_text), 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(target: Path) -> None:
    """Remove the hidden temporaries that crashed writes to `target` left beside it."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for kind in _KINDS:
        prefix = f".{target.name}.{kind}-"
        for stale in target.parent.glob(f"{glob.escape(prefix)}*"):
            if _writer_alive(stale, prefix):
                continue
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Flush one file or directory to disk (a directory: its entries, i.e. the names in it)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under `root`, and `root` itself, to disk."""
    root = Path(root)
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            file = Path(directory) / name
            if not file.is_symlink():
                fsync_path(file)
        fsync_path(Path(directory))


@contextmanager
def atomic_directory(target: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty hidden directory beside `target`; when the block ends without an error it
    replaces `target` (see `commit_directory`), otherwise it is removed and `target` is untouched."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise AlreadyExists(f"{target} already exists; choose another path or pass --overwrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    staging = _temporary_sibling(target)
    staging.mkdir()
    try:
        yield staging
        commit_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextmanager
def scratch_directory(target: Path) -> Iterator[Path]:
    """Yield a hidden working directory beside `target` (same filesystem), removed on exit.

    For intermediate files that must not end up in `target` (a download to convert, say); a
    crash leaves it to the next write's sweep like any other temporary.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = _temporary_sibling(target)
    scratch.mkdir()
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def commit_directory(staging: Path, target: Path) -> None:
    """Move the finished directory `staging` to `target` (same filesystem): fsync the whole tree,
    rename (an existing target is moved aside first, then removed), fsync the parent."""
    staging, target = Path(staging), Path(target)
    fsync_tree(staging)
    if target.exists() or target.is_symlink():
        retired = _temporary_sibling(target, "old")
        os.rename(target, retired)
        try:
            os.rename(staging, target)
        except BaseException:
            os.rename(retired, target)
            raise
        fsync_path(target.parent)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, target)
        fsync_path(target.parent)


def commit_file(staging: Path, target: Path) -> None:
    """Move the finished file `staging` over `target` (same filesystem): fsync it, rename,
    fsync the parent."""
    fsync_path(staging)
    os.replace(staging, target)
    fsync_path(Path(target).parent)


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside `path` to write; when the block ends without an error
    it replaces `path` (see `commit_file`), otherwise it is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    staging = _temporary_sibling(path)
    try:
        yield staging
        commit_file(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, atomically (see the module docstring)."""
    with atomic_file(path) as staging:
        staging.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` in UTF-8, atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    """Replace `path` with `payload` as indented, key-sorted JSON, atomically."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
