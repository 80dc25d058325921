"""Sweep edit recipes (blocks x kept mass) on one model: recitation, perplexity and agreement for each.

No checkpoint is written: the parent is loaded twice, one copy stays untouched as the agreement
reference and the other is edited in place for each recipe and restored afterwards. Each finished
recipe is appended to `sweep.json` at once, so an interrupted sweep resumes where it stopped.
"""

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field, field_validator

from lethe.edits import __version__
from lethe.edits.apply_job import edit_matrices, validate
from lethe.edits.atomic import atomic_write_json
from lethe.edits.evaluation.agreement import AgreementSettings, agreement_blocks, evaluate_agreement
from lethe.edits.evaluation.loading import LoadedModel, load_model
from lethe.edits.evaluation.memorization import MemorizationSettings, evaluate_memorization
from lethe.edits.evaluation.perplexity import PerplexitySettings, evaluate_perplexity
from lethe.edits.evaluation.schema import file_sha256
from lethe.edits.factor_store import FactorStore
from lethe.edits.fingerprint import model_fingerprint
from lethe.edits.loading import Checkpoint
from lethe.edits.recipe import Recipe

FORMAT = "lethe-sweep/1"
BASE = "unedited"
Say = Callable[[str], None]


class SweepGrid(BaseModel):
    """Every combination of a block set and a kept mass is one recipe."""

    block_sets: list[list[int]] = Field(min_length=1)
    keep_masses: list[float] = Field(min_length=1)
    projections: list[str] = Field(default_factory=lambda: ["gate", "up", "down"])

    @field_validator("keep_masses")
    @classmethod
    def _in_range(cls, values: list[float]) -> list[float]:
        bad = [v for v in values if not 0 < v <= 1]
        if bad:
            raise ValueError(f"kept masses must lie in (0, 1]; got {bad}")
        return values

    def recipes(self) -> list[tuple[str, Recipe]]:
        return [
            (
                recipe_label(blocks, keep),
                Recipe.parse({"blocks": blocks, "keep_mass": keep, "projections": self.projections}),
            )
            for blocks in self.block_sets
            for keep in self.keep_masses
        ]


def block_span(blocks: list[int]) -> str:
    ordered = sorted(blocks)
    contiguous = ordered == list(range(ordered[0], ordered[-1] + 1))
    return f"{ordered[0]}-{ordered[-1]}" if contiguous and len(ordered) > 1 else ",".join(map(str, ordered))


def recipe_label(blocks: list[int], keep_mass: float) -> str:
    return f"blocks {block_span(blocks)} rho {keep_mass:g}"


class SweepRow(BaseModel):
    label: str
    blocks: list[int] = Field(default_factory=list)
    keep_mass: float | None = None
    kept_pairs_fraction: float = 1.0
    recitation: dict[str, dict[str, float]]
    """strict/loose/similarity shares per item group; `headline` is every non-rule item, `exact` the
    non-rule items the parent recited exactly when the set was mined."""
    perplexity: float
    ndcg: float
    top1_agreement: float
    strict_items: list[str] = Field(default_factory=list)
    """Ids of the items still recited exactly."""


class SweepReport(BaseModel):
    format: str = FORMAT
    lethe_version: str = __version__
    model: str
    model_fingerprint: str
    factors: str
    factors_fingerprint: str
    memorized_set: dict[str, str]
    heldout_text: dict[str, str]
    projections: list[str]
    rows: list[SweepRow] = Field(default_factory=list)

    def row(self, label: str) -> SweepRow | None:
        return next((r for r in self.rows if r.label == label), None)


class SweepSettings(BaseModel):
    group_fields: list[str] = Field(default_factory=lambda: ["kind", "format"])
    """Fields of the memorized set's rows that split recitation into groups (missing fields are skipped)."""
    rule_kind: str = "rule"
    """Rows whose `kind` is this are rule-following, reported apart from the headline recitation."""
    exact_field: str = "strict"
    """Rows where this field is true were recited exactly by the parent (`lethe eval mine` sets it):
    the `exact` group, whose unedited rate is 100 % by construction."""
    batch_size: int = 16
    seq_len: int = 128
    max_text_tokens: int | None = None


def _rows(set_path: Path) -> dict[str, dict[str, Any]]:
    """Item id (the row's `id`, else its line number) -> the row."""
    rows: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(set_path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            rows[str(row.get("id", number))] = row
    return rows


def item_groups(set_path: Path, fields: list[str]) -> dict[str, dict[str, str]]:
    """Item id -> the row's values of `fields`."""
    return {key: {f: str(row[f]) for f in fields if f in row} for key, row in _rows(set_path).items()}


def exact_items(set_path: Path, field: str) -> set[str]:
    """Ids of the rows whose `field` is true."""
    return {key for key, row in _rows(set_path).items() if row.get(field) is True}


def recitation_shares(
    items: list[dict[str, Any]],
    groups: dict[str, dict[str, str]],
    rule_kind: str,
    exact: set[str] | frozenset[str] = frozenset(),
) -> dict[str, dict[str, float]]:
    """Shares per group of fields, `headline` over non-rule items, `exact` over the non-rule items in
    `exact`, `all` over every item."""
    buckets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        fields = groups.get(item["id"], {})
        buckets["all"].append(item)
        if fields.get("kind") != rule_kind:
            buckets["headline"].append(item)
            if item["id"] in exact:
                buckets["exact"].append(item)
        if fields:
            buckets["/".join(fields.values())].append(item)
    return {
        name: {
            "items": float(len(members)),
            "strict": sum(m["strict"] for m in members) / len(members),
            "loose": sum(m["loose"] for m in members) / len(members),
            "similarity": sum(m["similarity"] for m in members) / len(members),
        }
        for name, members in sorted(buckets.items())
    }


def measure(
    loaded: LoadedModel,
    parent: LoadedModel,
    set_path: Path,
    text_path: Path,
    settings: SweepSettings,
    groups: dict[str, dict[str, str]],
    exact: set[str],
    text_blocks: list[list[int]],
) -> dict[str, Any]:
    memorization = evaluate_memorization(
        loaded, set_path, MemorizationSettings(batch_size=settings.batch_size)
    )
    perplexity = evaluate_perplexity(
        loaded, text_path, PerplexitySettings(seq_len=settings.seq_len), blocks=text_blocks
    )
    agreement = evaluate_agreement(
        loaded, parent, text_path, AgreementSettings(seq_len=settings.seq_len), blocks=text_blocks
    )
    return {
        "recitation": recitation_shares(memorization.items, groups, settings.rule_kind, exact),
        "perplexity": perplexity.metrics["perplexity"],
        "ndcg": agreement.metrics["ndcg@10"],
        "top1_agreement": agreement.metrics["top1_agreement"],
        "strict_items": [item["id"] for item in memorization.items if item["strict"]],
    }


def run_sweep(
    model: Path,
    factors: Path,
    grid: SweepGrid,
    set_path: Path,
    text_path: Path,
    out_dir: Path,
    settings: SweepSettings | None = None,
    say: Say = print,
) -> SweepReport:
    """Measure the parent, then each recipe of the grid; `out_dir/sweep.json` grows row by row."""
    settings = settings or SweepSettings()
    spec = Checkpoint.read(model)
    store = FactorStore(factors)
    fingerprint = model_fingerprint(spec.path)
    recipes = grid.recipes()
    for _, recipe in recipes:  # every recipe checked before hours of measuring
        validate(recipe, spec, store, parent_fingerprint=fingerprint, allow_other_model=False)
    report = _resume_or_start(out_dir / "sweep.json", spec, fingerprint, store, grid, set_path, text_path)
    parent = load_model(str(spec.path))
    working = load_model(str(spec.path))
    groups = item_groups(set_path, settings.group_fields)
    exact = exact_items(set_path, settings.exact_field)
    text_blocks = agreement_blocks(
        parent.tokenizer,
        text_path,
        AgreementSettings(seq_len=settings.seq_len, max_tokens=settings.max_text_tokens),
    )
    parameters = dict(working.model.named_parameters())
    todo = [(BASE, None), *recipes]
    for position, (label, recipe) in enumerate(todo, start=1):
        if report.row(label) is not None:
            say(f"[{position}/{len(todo)}] {label}: already measured")
            continue
        say(f"[{position}/{len(todo)}] {label}: editing and measuring")
        originals: dict[str, torch.Tensor] = {}
        kept_fraction = 1.0
        if recipe is not None:
            targets = recipe.targets()
            replacements, matrices, _ = edit_matrices(spec, store, targets, progress=False)
            for name, edited in replacements.items():
                originals[name] = parameters[name].detach().clone()
                parameters[name].data.copy_(edited.to(parameters[name].dtype))
            kept = sum(m.kept_pairs for m in matrices)
            kept_fraction = kept / sum(m.total_pairs for m in matrices)
        try:
            measured = measure(working, parent, set_path, text_path, settings, groups, exact, text_blocks)
        finally:
            for name, original in originals.items():
                parameters[name].data.copy_(original)
        row = SweepRow(
            label=label,
            blocks=recipe.blocks if recipe else [],
            keep_mass=recipe.keep_mass if recipe else None,
            kept_pairs_fraction=kept_fraction,
            **measured,
        )
        report.rows.append(row)
        atomic_write_json(out_dir / "sweep.json", report.model_dump(mode="json"))
        say(f"    {summary_line(row, report.rows[0])}")
    return report


def _resume_or_start(
    path: Path,
    spec: Checkpoint,
    fingerprint: str,
    store: FactorStore,
    grid: SweepGrid,
    set_path: Path,
    text_path: Path,
) -> SweepReport:
    fresh = SweepReport(
        model=str(spec.path),
        model_fingerprint=fingerprint,
        factors=str(store.path.resolve()),
        factors_fingerprint=store.fingerprint,
        memorized_set={"path": str(set_path), "sha256": file_sha256(set_path)},
        heldout_text={"path": str(text_path), "sha256": file_sha256(text_path)},
        projections=grid.projections,
    )
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        return fresh
    previous = SweepReport.model_validate_json(path.read_text(encoding="utf-8"))
    same = (
        previous.model_fingerprint == fresh.model_fingerprint
        and previous.factors_fingerprint == fresh.factors_fingerprint
        and previous.memorized_set["sha256"] == fresh.memorized_set["sha256"]
        and previous.heldout_text["sha256"] == fresh.heldout_text["sha256"]
        and previous.projections == fresh.projections
    )
    return previous if same else fresh


def summary_line(row: SweepRow, base: SweepRow) -> str:
    headline = row.recitation.get("headline", row.recitation["all"])
    rise = row.perplexity / base.perplexity - 1
    return (
        f"strict {100 * headline['strict']:.1f}%  loose {100 * headline['loose']:.1f}%  "
        f"perplexity {row.perplexity:.3f} ({100 * rise:+.1f}%)  nDCG@10 {row.ndcg:.3f}"
    )
