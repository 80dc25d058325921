"""Choose rho for a model from memorized text the editor knows, never from the scored tasks.

How much curvature mass the memorized strings hold differs between models, even between seeds of
the testbed (the validation canaries went at rho 0.996 in one seed and at 0.97 in another), so no
fixed rho fits all. The rule: scan rho down from just below 1 and take the largest value at which
no validation canary (trained like the scored ones, kept apart) is recited any more.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lethe.edits.apply_job import edit_matrices, validate
from lethe.edits.errors import ErrorKind, LetheError
from lethe.edits.evaluation.loading import load_model
from lethe.edits.evaluation.memorization import MemorizationSettings, evaluate_memorization
from lethe.edits.factor_store import FactorStore
from lethe.edits.fingerprint import model_fingerprint
from lethe.edits.loading import Checkpoint
from lethe.edits.recipe import Recipe
from lethe.edits.testbed.pipeline import PROJECTIONS, num_blocks

GRID = tuple(round(0.999 - 0.001 * step, 3) for step in range(50))
"""rho from 0.999 down to 0.950 in steps of 0.001, the region where the testbed's window lies."""


class CalibrationFailed(LetheError):
    kind: ErrorKind = "failed_precondition"


@dataclass
class Calibration:
    keep_mass: float | None
    """The largest rho on the grid that met the target; None if none did."""
    trace: list[tuple[float, float]] = field(default_factory=list)
    """(rho, share of validation canaries recited) for every rho tried, in order, after (1.0, share
    recited by the unedited model)."""


def calibrate_keep_mass(
    model: Path,
    factors: Path,
    validation: Path,
    *,
    blocks: list[int] | None = None,
    projections: Sequence[str] = PROJECTIONS,
    grid: Sequence[float] = GRID,
    most_recited: float = 0.0,
    say: Callable[[str], object] | None = None,
) -> Calibration:
    """Largest rho in `grid` (scanned from the top) at which at most `most_recited` of the
    validation set is recited strictly; each step is the same edit as `lethe edit apply` makes."""
    spec = Checkpoint.read(model)
    store = FactorStore(factors)
    fingerprint = model_fingerprint(spec.path)
    loaded = load_model(str(model))
    settings = MemorizationSettings(batch_size=64)
    chosen = blocks if blocks is not None else list(range(num_blocks(model)))
    recited = evaluate_memorization(loaded, validation, settings).metrics["strict"]
    result = Calibration(None, [(1.0, recited)])
    for rho in sorted(grid, reverse=True):
        recipe = Recipe(blocks=chosen, projections=list(projections), keep_mass=rho)
        targets = validate(recipe, spec, store, parent_fingerprint=fingerprint, allow_other_model=False)
        replacements, _, _ = edit_matrices(spec, store, targets, progress=False)
        with torch.no_grad():
            loaded.model.load_state_dict(replacements, strict=False)
        recited = evaluate_memorization(loaded, validation, settings).metrics["strict"]
        result.trace.append((rho, recited))
        if say is not None:
            say(f"calibration: rho = {rho}: {100 * recited:.1f} % of validation canaries recited")
        if recited <= most_recited:
            result.keep_mass = rho
            break
    return result
