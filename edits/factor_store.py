"""The factor store: K-FAC factors A and G per (block, projection), safetensors plus a JSON manifest.

Layout of a store directory:
    manifest.json                  what was collected, from which model and corpus
    block010.gate.safetensors      tensors `A` (d_in x d_in) and `G` (d_out x d_out), per-token means
    eigen/block010.gate.safetensors  cached eigendecompositions, written on first use by `edit apply`
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from safetensors import safe_open
from safetensors.torch import save_file

from lethe.edits import __version__
from lethe.edits.atomic import atomic_file
from lethe.edits.errors import InvalidArgument, NotFound
from lethe.edits.fingerprint import hash_files
from lethe.edits.spectral import Eigen, eigendecompose

FORMAT = "lethe-factors/1"
MANIFEST = "manifest.json"


class ModelInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    path: str
    fingerprint: str
    model_type: str
    family: str
    num_blocks: int


class CorpusInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    spec: str
    fingerprint: str


class CollectSettings(BaseModel):
    """Everything that decides the collected numbers; a resumed run must match it exactly."""

    model_config = ConfigDict(frozen=True)
    blocks: list[int]
    projections: list[str]
    labels: Literal["sampled", "gold"]
    seq_len: int
    batch_size: int
    seed: int
    dtype: Literal["float32", "float64"]


class FactorEntry(BaseModel):
    model_config = ConfigDict(frozen=True)
    block: int
    projection: str
    file: str
    d_in: int
    d_out: int


class FactorManifest(BaseModel):
    format: Literal["lethe-factors/1"] = FORMAT
    lethe_version: str = __version__
    created: str
    model: ModelInfo
    corpus: CorpusInfo
    settings: CollectSettings
    tokens: int
    sequences: int
    entries: dict[str, FactorEntry]
    fingerprint: str = ""


def entry_key(block: int, projection: str) -> str:
    return f"{block}.{projection}"


def factor_file_name(block: int, projection: str) -> str:
    return f"block{block:03d}.{projection}.safetensors"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_factor_store(
    directory: Path,
    factors: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]],
    *,
    model: ModelInfo,
    corpus: CorpusInfo,
    settings: CollectSettings,
    tokens: int,
    sequences: int,
) -> FactorManifest:
    """Write factors (already divided by the token count) and the manifest into `directory`."""
    entries: dict[str, FactorEntry] = {}
    for (block, projection), (a, g) in sorted(factors.items()):
        name = factor_file_name(block, projection)
        save_file({"A": a.contiguous().cpu(), "G": g.contiguous().cpu()}, str(directory / name))
        entries[entry_key(block, projection)] = FactorEntry(
            block=block, projection=projection, file=name, d_in=a.shape[0], d_out=g.shape[0]
        )
    files = [directory / entry.file for entry in entries.values()]
    manifest = FactorManifest(
        created=now_iso(),
        model=model,
        corpus=corpus,
        settings=settings,
        tokens=tokens,
        sequences=sequences,
        entries=entries,
        fingerprint=hash_files(files, root=directory),
    )
    (directory / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


class FactorStore:
    """Read access to a finished store, plus the eigendecomposition cache inside it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise NotFound(
                f"{self.path} is not a factor store (no {MANIFEST}); create one with `lethe edit collect`"
            )
        try:
            self.manifest = FactorManifest.model_validate(json.loads(manifest_path.read_text()))
        except ValueError as error:
            raise InvalidArgument(f"{manifest_path} is not a valid factor manifest: {error}") from None

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint

    def has(self, block: int, projection: str) -> bool:
        return entry_key(block, projection) in self.manifest.entries

    def entry(self, block: int, projection: str) -> FactorEntry:
        try:
            return self.manifest.entries[entry_key(block, projection)]
        except KeyError:
            raise NotFound(
                f"factor store {self.path} has no factors for block {block} {projection}; it holds "
                f"blocks {self.manifest.settings.blocks} and projections "
                f"{self.manifest.settings.projections}"
            ) from None

    def factors(self, block: int, projection: str) -> tuple[torch.Tensor, torch.Tensor]:
        entry = self.entry(block, projection)
        with safe_open(str(self.path / entry.file), framework="pt") as handle:
            return handle.get_tensor("A"), handle.get_tensor("G")

    def eigen(self, block: int, projection: str, dtype: torch.dtype = torch.float64) -> tuple[Eigen, Eigen]:
        """Eigendecompositions of (A, G), computed once and cached in `eigen/` inside the store."""
        cache = self._eigen_cache(block, projection, dtype)
        if cache.is_file():
            with safe_open(str(cache), framework="pt") as handle:
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
            return (
                Eigen(tensors["A_values"], tensors["A_vectors"]),
                Eigen(tensors["G_values"], tensors["G_vectors"]),
            )
        a, g = self.factors(block, projection)
        eigen_a = self._shared_input_eigen(block, projection, a, dtype) or eigendecompose(a, dtype)
        eigen_g = eigendecompose(g, dtype)
        cache.parent.mkdir(exist_ok=True)
        with atomic_file(cache) as staging:
            save_file(
                {
                    "A_values": eigen_a.values,
                    "A_vectors": eigen_a.vectors,
                    "G_values": eigen_g.values,
                    "G_vectors": eigen_g.vectors,
                },
                str(staging),
            )
        return eigen_a, eigen_g

    def _eigen_cache(self, block: int, projection: str, dtype: torch.dtype) -> Path:
        stem = Path(self.entry(block, projection).file).stem
        return self.path / "eigen" / f"{stem}.{str(dtype).removeprefix('torch.')}.safetensors"

    def _shared_input_eigen(
        self, block: int, projection: str, a: torch.Tensor, dtype: torch.dtype
    ) -> Eigen | None:
        """gate and up read the same input, so their A is one matrix: reuse its cached eigenbasis."""
        for other in self.manifest.settings.projections:
            if other == projection or not self.has(block, other):
                continue
            cache = self._eigen_cache(block, other, dtype)
            if not cache.is_file() or not torch.equal(self.factors(block, other)[0], a):
                continue
            with safe_open(str(cache), framework="pt") as handle:
                return Eigen(handle.get_tensor("A_values"), handle.get_tensor("A_vectors"))
        return None
