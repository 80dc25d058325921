"""`edits.atomic`: every write fsyncs its data before the rename and the directory after it, a
failure leaves the old target and no temporary, and a crash's temporary is swept by the next write."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lethe.edits import atomic
from lethe.edits.atomic import (
    atomic_directory,
    atomic_file,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    commit_directory,
    commit_file,
    remove_stale_temporaries,
)
from lethe.edits.errors import AlreadyExists

REPO = Path(__file__).parents[2]


def _hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


class Journal:
    """Records, in order, every fsync (by the path of its descriptor) and every rename."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, Path]] = []
        real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

        def fsync(fd: int) -> None:
            self.events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}"))))
            real_fsync(fd)

        def rename(src: str | Path, dst: str | Path) -> None:
            self.events.append(("rename", Path(dst)))
            real_rename(src, dst)

        def replace(src: str | Path, dst: str | Path) -> None:
            self.events.append(("rename", Path(dst)))
            real_replace(src, dst)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(os, "replace", replace)

    def fsynced(self) -> list[Path]:
        return [path for kind, path in self.events if kind == "fsync"]

    def index(self, kind: str, path: Path) -> int:
        return self.events.index((kind, path.resolve()))

    def last_rename_to(self, target: Path) -> int:
        return max(i for i, event in enumerate(self.events) if event == ("rename", target))


# --- the fsync guarantee ----------------------------------------------------------------------


def test_a_directory_is_fsynced_file_by_file_before_its_rename_and_the_parent_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(monkeypatch)
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("a")
        (staging / "sub").mkdir()
        (staging / "sub" / "b.txt").write_text("b")
    renamed = journal.last_rename_to(target)
    synced = [p.relative_to(tmp_path.resolve()) for p in journal.fsynced()]
    staged = {Path(p.parts[0]) for p in synced if p.parts and p.parts[0].startswith(".out.tmp-")}
    assert len(staged) == 1, f"one staging directory, fsynced: {synced}"
    name = staged.pop()
    for inside in (name / "a.txt", name / "sub" / "b.txt", name / "sub", name):
        assert journal.index("fsync", tmp_path / inside) < renamed, f"{inside} not fsynced before the rename"
    assert journal.index("fsync", tmp_path) > renamed, "the parent directory is fsynced after the rename"
    assert (target / "sub" / "b.txt").read_text() == "b" and _hidden(tmp_path) == []


@pytest.mark.parametrize(
    "write",
    [
        lambda path: atomic_write_bytes(path, b"new"),
        lambda path: atomic_write_text(path, "new"),
        lambda path: atomic_write_json(path, "new"),
    ],
    ids=["bytes", "text", "json"],
)
def test_a_file_is_fsynced_before_its_rename_and_the_parent_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[Path], None]
) -> None:
    target = tmp_path / "f.json"
    target.write_text("old")
    journal = Journal(monkeypatch)
    write(target)
    renamed = journal.last_rename_to(target)
    staged = [p for p in journal.fsynced() if p.name.startswith(".f.json.tmp-")]
    assert len(staged) == 1 and journal.index("fsync", staged[0]) < renamed
    assert journal.index("fsync", tmp_path) > renamed
    assert "new" in target.read_text() and _hidden(tmp_path) == []


def test_atomic_file_fsyncs_what_the_block_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal(monkeypatch)
    target = tmp_path / "deep" / "w.bin"  # the parent is created
    with atomic_file(target) as staging:
        staging.write_bytes(b"w")
    renamed = journal.last_rename_to(target)
    assert journal.index("fsync", staging) < renamed < journal.index("fsync", target.parent)
    assert target.read_bytes() == b"w"


def test_commit_file_and_commit_directory_give_the_same_guarantee(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    (built / "x").write_text("x")
    loose = tmp_path / "loose"
    loose.write_text("y")
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "stale").write_text("old")
    journal = Journal(monkeypatch)
    commit_directory(built, tmp_path / "dest")
    commit_file(loose, tmp_path / "file")
    moved = journal.last_rename_to(tmp_path / "dest")
    assert journal.index("fsync", built / "x") < moved and journal.index("fsync", built) < moved
    assert journal.index("fsync", loose) < journal.last_rename_to(tmp_path / "file")
    assert journal.fsynced().count(tmp_path.resolve()) == 2  # once after each rename
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["x"]  # the old one is gone
    assert _hidden(tmp_path) == []


# --- failures leave the old target -------------------------------------------------------------


def test_a_failure_inside_the_block_keeps_the_old_directory_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        (staging / "v").write_text("1")
    with pytest.raises(RuntimeError, match="half way"), atomic_directory(target, overwrite=True) as staging:
        (staging / "v").write_text("2")
        raise RuntimeError("half way")
    assert (target / "v").read_text() == "1"
    assert _hidden(tmp_path) == []


def test_a_failure_inside_atomic_file_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as staging:
        staging.write_bytes(b"half")
        raise RuntimeError("half way")
    assert target.read_bytes() == b"old" and _hidden(tmp_path) == []


def test_a_failed_rename_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def refuse(src: str | Path, dst: str | Path) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and _hidden(tmp_path) == []


def test_when_the_second_rename_fails_the_old_directory_is_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        (staging / "v").write_text("1")
    real_rename = os.rename

    def rename(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == target and ".tmp-" in Path(src).name:  # the new one; putting back works
            raise OSError("no")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError), atomic_directory(target, overwrite=True) as staging:
        (staging / "v").write_text("2")
    assert (target / "v").read_text() == "1" and _hidden(tmp_path) == []


def test_an_existing_directory_is_refused_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep").write_text("k")
    with pytest.raises(AlreadyExists, match="--overwrite"), atomic_directory(target):
        pytest.fail("the block must not run")
    assert (target / "keep").read_text() == "k" and _hidden(tmp_path) == []


def test_json_is_indented_and_sorted(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "j.json", {"b": 1, "a": [1]})
    text = (tmp_path / "j.json").read_text()
    assert json.loads(text) == {"a": [1], "b": 1} and text.index('"a"') < text.index('"b"')
    assert text.endswith("\n")


# --- crashes -----------------------------------------------------------------------------------

_CRASH = """
import os, signal, sys
from pathlib import Path
from lethe.edits.atomic import atomic_directory, atomic_file

target = Path(sys.argv[2])
if sys.argv[1] == "directory":
    with atomic_directory(target, overwrite=True) as staging:
        (staging / "v").write_text("half")
        os.kill(os.getpid(), signal.SIGKILL)
else:
    with atomic_file(target) as staging:
        staging.write_text("half")
        os.kill(os.getpid(), signal.SIGKILL)
"""


def _crash_while_writing(kind: str, target: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CRASH, kind, str(target)], cwd=REPO, capture_output=True, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]


def test_a_crash_leaves_the_old_directory_and_a_hidden_temporary_the_next_write_removes(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        (staging / "v").write_text("1")
    _crash_while_writing("directory", target)
    assert (target / "v").read_text() == "1"
    left = _hidden(tmp_path)
    assert len(left) == 1 and left[0].startswith(".out.tmp-"), left
    with atomic_directory(target, overwrite=True) as staging:
        (staging / "v").write_text("2")
    assert (target / "v").read_text() == "2" and _hidden(tmp_path) == []


@pytest.mark.parametrize("write", ["atomic_file", "atomic_write_bytes"])
def test_a_crash_leaves_the_old_file_and_a_hidden_temporary_the_next_write_removes(
    tmp_path: Path, write: str
) -> None:
    target = tmp_path / "f.txt"
    target.write_text("1")
    _crash_while_writing("file", target)
    assert target.read_text() == "1"
    left = _hidden(tmp_path)
    assert len(left) == 1 and left[0].startswith(".f.txt.tmp-"), left
    if write == "atomic_file":
        with atomic_file(target) as staging:
            staging.write_text("2")
    else:
        atomic_write_bytes(target, b"2")
    assert target.read_text() == "2" and _hidden(tmp_path) == []


def test_a_live_writers_temporary_is_left_alone(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(finished.stdout)
    target = tmp_path / "out"
    live = tmp_path / f".out.tmp-{os.getpid()}-0123abcd"
    dead = tmp_path / f".out.tmp-{dead_pid}-0123abcd"
    retired = tmp_path / f".out.old-{dead_pid}-89abcdef"
    legacy = tmp_path / ".out.tmp-k3x9q_2z"  # a name without a pid: an older writer's, stale
    for path in (live, dead, retired, legacy):
        path.mkdir()
        (path / "v").write_text("x")
    (tmp_path / ".other.tmp-1-00000000").mkdir()  # another target's: not ours to touch
    remove_stale_temporaries(target)
    assert _hidden(tmp_path) == sorted([live.name, ".other.tmp-1-00000000"])


def test_temporaries_are_hidden_siblings_named_after_the_target(tmp_path: Path) -> None:
    name = atomic._temporary_sibling(tmp_path / "x.json").name
    assert name.startswith(f".x.json.tmp-{os.getpid()}-")
