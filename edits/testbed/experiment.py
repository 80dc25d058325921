"""The whole demonstration: train (or reuse) a testbed, collect, edit, control, score."""

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lethe.edits.testbed.build import build_testbed, is_built
from lethe.edits.testbed.calibration import Calibration, CalibrationFailed, calibrate_keep_mass
from lethe.edits.testbed.config import TestbedConfig
from lethe.edits.testbed.pipeline import (
    PROJECTIONS,
    collect_clean_factors,
    edit_testbed,
    random_basis_control,
)
from lethe.edits.testbed.tasks import score_model

Say = Callable[[str], object]


@dataclass
class ExperimentResult:
    testbed: Path
    scores: dict[str, dict[str, float]]
    """"before", "edited" and "control" -> task accuracies and perplexity."""
    keep_mass: float
    """rho of the edit: as given, or calibrated on the validation canaries."""
    calibration: Calibration | None = None
    sweep: dict[float, dict[str, float]] = field(default_factory=dict)


def ensure_testbed(
    out: Path, config: TestbedConfig, progress: Callable[[int, float], object] | None = None
) -> Path:
    """Reuse a testbed trained with the same settings, else train one."""
    return out if is_built(out, config) else build_testbed(out, config, progress)


def run_experiment(
    testbed: Path,
    keep_mass: float | None = None,
    *,
    sweep: list[float] | None = None,
    blocks: list[int] | None = None,
    projections: tuple[str, ...] = PROJECTIONS,
    collect_tokens: int = 20_000,
    say: Say = print,
    work: Path | None = None,
) -> ExperimentResult:
    """Edit the testbed at `keep_mass` and in random bases (the control), and score all three.

    `keep_mass` None calibrates rho on the validation canaries; `blocks` None edits every block.
    """
    tasks, heldout = testbed / "data" / "tasks.jsonl", testbed / "data" / "heldout.jsonl"
    with tempfile.TemporaryDirectory(prefix="lethe-testbed-") as scratch:
        root = work or Path(scratch)
        say("collecting K-FAC factors on the clean mix")
        factors = collect_clean_factors(testbed, root / "factors", tokens=collect_tokens)
        scores = {"before": score_model(str(testbed / "model"), tasks, heldout)}
        calibration = None
        if keep_mass is None:
            say("calibrating rho on the validation canaries")
            calibration = calibrate_keep_mass(
                testbed / "model",
                factors,
                testbed / "data" / "validation.jsonl",
                blocks=blocks,
                projections=projections,
                say=say,
            )
            if calibration.keep_mass is None:
                raise CalibrationFailed(
                    "no rho on the calibration grid removes the validation canaries; pass --keep-mass"
                )
            keep_mass = calibration.keep_mass
        say(f"editing at rho = {keep_mass}")
        edited = edit_testbed(
            testbed, factors, root / "edited", keep_mass, blocks=blocks, projections=projections
        )
        scores["edited"] = score_model(str(edited), tasks, heldout)
        say("the control: the same masks in random orthogonal bases")
        control = random_basis_control(
            testbed / "model",
            factors,
            root / "control",
            keep_mass,
            blocks=blocks,
            projections=projections,
        )
        scores["control"] = score_model(str(control), tasks, heldout)
        result = ExperimentResult(testbed, scores, keep_mass, calibration)
        for rho in sweep or []:
            say(f"sweep: rho = {rho}")
            out = edit_testbed(testbed, factors, root / "sweep", rho, blocks=blocks, projections=projections)
            result.sweep[rho] = score_model(str(out), tasks, heldout)
    return result
