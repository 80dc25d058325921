"""`lethe edit apply`: validate a recipe against the model and factors, edit, write the checkpoint.

Every check runs before any eigendecomposition or write, so a bad recipe costs nothing.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from lethe.edits import __version__
from lethe.edits.checkpoint import read_tensors, write_checkpoint
from lethe.edits.edit_manifest import FORMAT as EDIT_FORMAT
from lethe.edits.edit_manifest import EditManifest, FactorsRef, MatrixResult, ParentRef
from lethe.edits.errors import AlreadyExists, InvalidArgument
from lethe.edits.factor_store import FactorStore, now_iso
from lethe.edits.fingerprint import model_fingerprint
from lethe.edits.loading import Checkpoint
from lethe.edits.prune import prune_weight
from lethe.edits.recipe import EditTarget, Recipe


@dataclass(frozen=True)
class MatrixTiming:
    block: int
    projection: str
    eigen_seconds: float
    apply_seconds: float


@dataclass(frozen=True)
class EditResult:
    checkpoint: Path
    edit_manifest: EditManifest
    timings: list[MatrixTiming]

    @property
    def manifest(self) -> dict[str, Any]:
        """`edit_manifest` as the JSON written to `lethe_edit.json`.

        Kept for callers that still index the manifest as a dict (`lethe edit apply`'s output
        in service/cli/edit.py, tests/integration); new code reads `edit_manifest`.
        """
        return self.edit_manifest.model_dump(mode="json")


def validate(
    recipe: Recipe, spec: Checkpoint, store: FactorStore, *, parent_fingerprint: str, allow_other_model: bool
) -> list[EditTarget]:
    """All problems with a recipe at once, as one error that says what to fix."""
    targets = recipe.targets()
    problems = []
    bad_blocks = sorted({t.block for t in targets if not 0 <= t.block < spec.num_blocks})
    if bad_blocks:
        problems.append(f"blocks {bad_blocks} do not exist (the model has blocks 0..{spec.num_blocks - 1})")
    bad_projections = sorted({t.projection for t in targets if t.projection not in spec.layout.projections})
    if bad_projections:
        problems.append(
            f"projections {bad_projections} do not exist in a {spec.layout.family} MLP "
            f"(it has {list(spec.layout.projections)})"
        )
    missing = [
        f"{t.block}.{t.projection}"
        for t in targets
        if t.block not in bad_blocks
        and t.projection not in bad_projections
        and not store.has(t.block, t.projection)
    ]
    if missing:
        problems.append(
            f"the factor store has no factors for {missing} (it holds blocks "
            f"{store.manifest.settings.blocks}, projections {store.manifest.settings.projections}); "
            "collect them with `lethe edit collect --blocks ...`"
        )
    if store.manifest.model.model_type != spec.model_type:
        problems.append(
            f"the factors come from a {store.manifest.model.model_type} model but this is {spec.model_type}"
        )
    if problems:
        raise InvalidArgument("cannot apply this recipe: " + "; ".join(problems))
    if not allow_other_model and store.manifest.model.fingerprint != parent_fingerprint:
        raise InvalidArgument(
            f"the factors at {store.path} were collected on another model ({store.manifest.model.path}); "
            "K-FAC factors must come from the unedited parent. Pass --allow-other-model to apply anyway"
        )
    return targets


def apply_edit(
    model: Path,
    factors: Path,
    out: Path,
    recipe: Recipe,
    *,
    overwrite: bool = False,
    allow_other_model: bool = False,
    eigen_dtype: torch.dtype = torch.float64,
    progress: bool = True,
) -> EditResult:
    spec = Checkpoint.read(model)
    store = FactorStore(factors)
    parent_fingerprint = model_fingerprint(spec.path)
    targets = validate(
        recipe, spec, store, parent_fingerprint=parent_fingerprint, allow_other_model=allow_other_model
    )
    if out.exists() and not overwrite:
        raise AlreadyExists(f"{out} already exists; choose another --out or pass --overwrite")
    if out.resolve() == spec.path:
        raise InvalidArgument("--out must differ from the model directory: the parent is never modified")

    replacements, matrices, timings = edit_matrices(spec, store, targets, eigen_dtype, progress=progress)
    manifest = EditManifest(
        format=EDIT_FORMAT,
        lethe_version=__version__,
        created=now_iso(),
        parent=ParentRef(path=str(spec.path), fingerprint=parent_fingerprint, model_type=spec.model_type),
        factors=FactorsRef(path=str(store.path.resolve()), fingerprint=store.fingerprint),
        recipe=recipe,
        matrices=matrices,
        edited_tensors=list(replacements),
    )
    write_checkpoint(spec.path, out, replacements, manifest, overwrite=overwrite)
    return EditResult(out, manifest, timings)


def edit_matrices(
    spec: Checkpoint,
    store: FactorStore,
    targets: list[EditTarget],
    eigen_dtype: torch.dtype = torch.float64,
    *,
    progress: bool = True,
) -> tuple[dict[str, torch.Tensor], list[MatrixResult], list[MatrixTiming]]:
    """The edited weights by tensor name, with what each edit kept, for validated targets."""
    names = [spec.layout.weight_name(t.block, t.projection) for t in targets]
    weights = read_tensors(spec.path, names)
    replacements: dict[str, torch.Tensor] = {}
    matrices: list[MatrixResult] = []
    timings: list[MatrixTiming] = []
    for target, name in tqdm(
        list(zip(targets, names, strict=True)), desc="edit", unit="matrix", disable=not progress
    ):
        started = time.perf_counter()
        eigen_a, eigen_g = store.eigen(target.block, target.projection, eigen_dtype)
        eigen_done = time.perf_counter()
        edited, selection = prune_weight(
            weights[name], eigen_a, eigen_g, target.keep_mass, transposed=spec.layout.transposed
        )
        timings.append(
            MatrixTiming(
                target.block, target.projection, eigen_done - started, time.perf_counter() - eigen_done
            )
        )
        replacements[name] = edited
        matrices.append(
            MatrixResult(
                tensor=name,
                block=target.block,
                projection=target.projection,
                keep_mass=target.keep_mass,
                achieved_mass=selection.achieved_mass,
                kept_pairs=selection.kept_pairs,
                total_pairs=selection.total_pairs,
            )
        )
    return replacements, matrices, timings
