"""`prepare_model`: a known model's GGUF -> `LETHE_HOME/models/NAME`, atomically and idempotently.

The model is built in a hidden directory next to the target and renamed into place only when it
is complete, manifest included (`edits.atomic.atomic_directory`); a crash leaves at most hidden
directories that the next run removes. A second run that finds the manifest and every file's
sha256 intact returns at once.
"""

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from lethe.edits import __version__
from lethe.edits.atomic import atomic_directory, scratch_directory
from lethe.edits.home import lethe_home, models_dir
from lethe.edits.models.convert import Converted, convert_gguf
from lethe.edits.models.fetch import PartSource, fetch_gguf
from lethe.edits.models.manifest import (
    MANIFEST_NAME,
    ModelManifest,
    SourcePart,
    find_damage,
    hash_outputs,
    read_manifest,
    write_manifest,
)
from lethe.edits.models.report import say
from lethe.edits.models.sources import ModelSpec, get_spec

# (spec, destination file, downloads dir) -> where each part was read from
Fetcher = Callable[[ModelSpec, Path, Path], list[PartSource]]
# (GGUF file, output dir) -> what was written
Converter = Callable[[Path, Path], Converted]


def prepare_model(name: str, *, force: bool = False) -> Path:
    """Prepare the known model `name` under `LETHE_HOME/models/NAME` and return that directory.

    Returns at once when it is already prepared and intact; `force` rebuilds it regardless.
    """
    spec = get_spec(name)
    return prepare_spec(
        spec, models_dir() / spec.name, downloads=lethe_home() / "downloads", force=force
    )


def prepare_spec(
    spec: ModelSpec,
    target: Path,
    *,
    downloads: Path,
    force: bool = False,
    fetch: Fetcher = fetch_gguf,
    convert: Converter = convert_gguf,
) -> Path:
    """`prepare_model` with every location and step passed in (tests swap in fakes)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target):
        if force:
            say(f"rebuilding {spec.name} (--force)")
        else:
            reason = rebuild_reason(spec, target)
            if reason is None:
                say(f"{spec.name} is already prepared at {target}")
                return target
            if target.exists():
                say(f"rebuilding {spec.name}: {reason}")
        _build(spec, target, downloads, fetch, convert)
    say(f"{spec.name} is ready at {target}")
    return target


def rebuild_reason(spec: ModelSpec, target: Path) -> str | None:
    """Why `target` must be (re)built, or None when it is complete and every hash matches."""
    if not target.exists():
        return "not prepared yet"
    manifest = read_manifest(target)
    if manifest is None:
        return f"{target} has no valid {MANIFEST_NAME}"
    if manifest.gguf_sha256 != spec.gguf_sha256:
        return "it was built from a different GGUF than the registry names"
    return find_damage(target, manifest, deep=True)


def _build(
    spec: ModelSpec, target: Path, downloads: Path, fetch: Fetcher, convert: Converter
) -> None:
    with atomic_directory(target, overwrite=True) as out, scratch_directory(target) as scratch:
        gguf = scratch / spec.gguf_name
        sources = fetch(spec, gguf, downloads)
        started = time.perf_counter()
        converted = convert(gguf, out)
        convert_seconds = time.perf_counter() - started
        gguf.unlink()
        if converted.model_type != spec.expected_model_type:
            say(
                f"note: transformers reports model_type {converted.model_type!r} for "
                f"{spec.name}, expected {spec.expected_model_type!r} (recorded in {MANIFEST_NAME})"
            )
        say("hashing the output files")
        manifest = ModelManifest(
            name=spec.name,
            description=spec.description,
            sources=[
                SourcePart(
                    distribution=s.part.distribution,
                    version=s.part.version,
                    member=s.part.member,
                    origin=s.origin,
                )
                for s in sources
            ],
            gguf_file=spec.gguf_name,
            gguf_sha256=spec.gguf_sha256,
            model_type=converted.model_type,
            expected_model_type=spec.expected_model_type,
            architectures=list(converted.architectures),
            parameters=converted.parameters,
            add_bos_token=converted.add_bos_token,
            files=hash_outputs(out),
            lethe_version=__version__,
            transformers_version=_version("transformers"),
            torch_version=_version("torch"),
            created_at=datetime.now(UTC),
            convert_seconds=round(convert_seconds, 2),
        )
        write_manifest(out, manifest)
        _make_readable(out)


@contextmanager
def _exclusive(target: Path) -> Iterator[None]:
    """One prepare per model at a time, across processes; later ones then find it prepared."""
    lock_path = target.parent / f".{target.name}.lock"
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another process that is preparing {target.name}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _make_readable(root: Path) -> None:
    """Make the files readable by all (some writers create them 0600)."""
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(0o644)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"
