"""`lethe edit sweep`: in-place edits measure exactly what written checkpoints measure, the model is
restored between recipes, a rerun resumes, and bad grids are refused before any work."""

import json
from pathlib import Path

import pytest

from lethe.edits.apply_job import apply_edit
from lethe.edits.collection_job import CollectRequest, collect
from lethe.edits.errors import InvalidArgument
from lethe.edits.evaluation.generation import greedy_generate
from lethe.edits.evaluation.loading import load_model
from lethe.edits.evaluation.perplexity import PerplexitySettings, evaluate_perplexity
from lethe.edits.recipe import Recipe
from lethe.edits.sweep import (
    BASE,
    SweepGrid,
    SweepSettings,
    exact_items,
    item_groups,
    recitation_shares,
    run_sweep,
)
from lethe.edits.sweep_report import sweep_plot, sweep_table
from tests.edits.test_edit_cli import lethe

# Block 1 alone comes after blocks 0-1: an unrestored block 0 would leak into its rows.
GRID = SweepGrid(block_sets=[[0, 1], [1]], keep_masses=[0.5, 0.9])


@pytest.fixture(scope="module")
def factors(tiny_llama: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "factors"
    collect(
        CollectRequest(
            model=tiny_llama, corpus=str(tiny_corpus), out=out, blocks=[0, 1], tokens=300, seq_len=16,
            progress=False,
        )
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def recited_set(tiny_llama: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Targets are the unedited model's own greedy continuations, so it recites every item."""
    loaded = load_model(str(tiny_llama))
    lines = tiny_corpus.read_text().splitlines()[:12]
    prompts = [loaded.tokenizer(" ".join(line.split()[:4]))["input_ids"] for line in lines]
    outputs = greedy_generate(loaded.model, prompts, [6] * len(prompts), loaded.pad_id)
    path = tmp_path_factory.mktemp("set") / "set.jsonl"
    rows = [
        {"id": f"i{n}", "prompt_ids": p, "target_ids": o, "kind": "rule" if n < 3 else "recitation"}
        for n, (p, o) in enumerate(zip(prompts, outputs, strict=True))
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def sweep(tiny_llama: Path, factors: Path, recited_set: Path, tiny_corpus: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep-out")
    report = run_sweep(tiny_llama, factors, GRID, recited_set, tiny_corpus, out, SweepSettings(seq_len=16))
    return out, report


def test_every_recipe_is_measured_after_the_parent(sweep) -> None:
    _, report = sweep
    assert [row.label for row in report.rows] == [
        BASE, "blocks 0-1 rho 0.5", "blocks 0-1 rho 0.9", "blocks 1 rho 0.5", "blocks 1 rho 0.9"
    ]  # fmt: skip
    base = report.rows[0]
    assert base.recitation["headline"]["strict"] == 1.0 and base.recitation["all"]["items"] == 12
    assert base.recitation["headline"]["items"] == 9 and base.recitation["rule"]["items"] == 3
    assert base.ndcg == pytest.approx(1.0) and base.kept_pairs_fraction == 1.0
    assert all(0 < row.kept_pairs_fraction < 1 for row in report.rows[1:])
    heavy = report.row("blocks 0-1 rho 0.5")
    assert heavy.ndcg < 1.0 and heavy.perplexity != base.perplexity


@pytest.mark.parametrize("blocks,keep", [([1], 0.5), ([0, 1], 0.9)])
def test_in_place_edit_equals_the_written_checkpoint(
    sweep, blocks: list[int], keep: float, tiny_llama: Path, factors: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    """Rows measured after other recipes match a fresh checkpoint, so the model was restored."""
    _, report = sweep
    recipe = Recipe.parse({"blocks": blocks, "keep_mass": keep})
    result = apply_edit(tiny_llama, factors, tmp_path / "edited", recipe, progress=False)

    measured = evaluate_perplexity(
        load_model(str(result.checkpoint)), tiny_corpus, PerplexitySettings(seq_len=16)
    ).metrics["perplexity"]
    row = next(r for r in report.rows if r.blocks == blocks and r.keep_mass == keep)
    assert row.perplexity == pytest.approx(measured, rel=1e-6)


def test_a_rerun_resumes_without_measuring_again(
    sweep, tiny_llama: Path, factors: Path, recited_set: Path, tiny_corpus: Path
) -> None:
    out, report = sweep
    said: list[str] = []
    again = run_sweep(
        tiny_llama, factors, GRID, recited_set, tiny_corpus, out, SweepSettings(seq_len=16), said.append
    )
    assert all("already measured" in line for line in said) and len(said) == len(report.rows)
    assert again.model_dump() == report.model_dump()


def test_table_and_plot(sweep, tmp_path: Path) -> None:
    _, report = sweep
    table = sweep_table(report)
    assert table.count("\n") == 2 + len(report.rows)
    assert "| unedited | 100.0 % | 100.0 % | 100.0 %" in table
    plot = tmp_path / "sweep.png"
    sweep_plot(report, plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_headline_leaves_out_rule_items() -> None:
    items = [{"id": "a", "strict": True, "loose": True, "similarity": 1.0},
             {"id": "b", "strict": False, "loose": True, "similarity": 0.8}]  # fmt: skip
    shares = recitation_shares(items, {"a": {"kind": "rule"}, "b": {"kind": "quote"}}, "rule")
    assert shares["headline"]["strict"] == 0.0 and shares["all"]["strict"] == 0.5
    assert shares["rule"]["strict"] == 1.0 and "exact" not in shares


def test_exact_group_is_the_parent_s_exact_recitations_without_rules(tmp_path: Path) -> None:
    rows = [{"id": "a", "kind": "rule", "strict": True}, {"id": "b", "kind": "recitation", "strict": True},
            {"id": "c", "kind": "recitation", "strict": False}]  # fmt: skip
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    exact = exact_items(path, "strict")
    assert exact == {"a", "b"}
    items = [{"id": key, "strict": key == "c", "loose": True, "similarity": 1.0} for key in "abc"]
    shares = recitation_shares(items, item_groups(path, ["kind"]), "rule", exact)
    assert shares["exact"] == {"items": 1.0, "strict": 0.0, "loose": 1.0, "similarity": 1.0}
    assert shares["headline"]["strict"] == 0.5


def test_a_grid_with_missing_factors_is_refused_before_work(
    tiny_llama: Path, factors: Path, recited_set: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    grid = SweepGrid(block_sets=[[2]], keep_masses=[0.9])
    with pytest.raises(InvalidArgument, match="no factors"):
        run_sweep(tiny_llama, factors, grid, recited_set, tiny_corpus, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_errors_are_messages(tiny_llama: Path, factors: Path, tmp_path: Path) -> None:
    done = lethe("edit", "sweep", "--model", str(tiny_llama), "--factors", str(factors),
                 "--blocks", "x-y", "--keep-mass", "0.9", "--set", "s.jsonl", "--text", "t.txt",
                 "--out", str(tmp_path / "o"), home=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "block sets look like" in done.stderr and "Traceback" not in done.stderr
    done = lethe("edit", "sweep", "--model", str(tiny_llama), "--factors", str(factors),
                 "--blocks", "1", "--keep-mass", "1.5", "--set", "s.jsonl", "--text", "t.txt",
                 "--out", str(tmp_path / "o"), home=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "(0, 1]" in done.stderr and "Traceback" not in done.stderr
