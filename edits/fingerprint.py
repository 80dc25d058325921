"""Content fingerprints of models, corpora and factor stores (sha256 over the bytes that matter)."""

import hashlib
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 22


def hash_files(paths: Iterable[Path], root: Path | None = None) -> str:
    """sha256 over each file's relative name and bytes, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        name = str(path.relative_to(root)) if root else path.name
        digest.update(name.encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
    return digest.hexdigest()


def model_fingerprint(model_dir: Path) -> str:
    """Fingerprint of a Hugging Face checkpoint: its config and weights, not its tokenizer files."""
    model_dir = Path(model_dir)
    files = [model_dir / "config.json", *sorted(model_dir.glob("*.safetensors"))]
    files += sorted(model_dir.glob("*.bin"))
    return hash_files([path for path in files if path.exists()], root=model_dir)


def text_fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
