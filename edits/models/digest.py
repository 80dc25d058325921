"""sha256 of files and streams, with a progress bar for the large ones."""

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

CHUNK = 8 * 1024 * 1024
# Below this size a progress bar is only noise.
BAR_THRESHOLD = 64 * 1024 * 1024


def byte_bar(total: int | None, desc: str) -> tqdm:
    """A tqdm bar in bytes, on stderr, hidden for small totals."""
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=False,
        disable=total is not None and total < BAR_THRESHOLD,
    )


def iter_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while block := stream.read(CHUNK):
        yield block


def sha256_file(path: Path, desc: str | None = None) -> str:
    """Hex sha256 of a file; shows a bar named `desc` (default: the file name) when it is large."""
    digest = hashlib.sha256()
    with path.open("rb") as stream, byte_bar(path.stat().st_size, desc or path.name) as bar:
        for block in iter_chunks(stream):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()
