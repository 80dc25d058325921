"""The proof on a model trained to memorize: the K-FAC edit removes verbatim memorization and keeps
the rule and open-book answering; the same masks in random bases destroy them.

A testbed (edits.testbed, default settings) is trained once and cached in pytest's cache directory;
factors are collected with `lethe edit collect` on the clean mix (rule, open-book and generic text,
never the facts or canaries), the edit is made with `lethe edit apply`, and every model is measured
with `lethe eval`. Thresholds are fixed by issue 3; they are never tuned to the results.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edits.evaluation.schema import read_report
from edits.testbed.build import build_testbed, config_key, is_built
from edits.testbed.config import TestbedConfig
from edits.testbed.pipeline import random_basis_control
from edits.testbed.report import before_after_table
from edits.testbed.tasks import task_accuracy

pytestmark = pytest.mark.slow

CONFIG = TestbedConfig()
KEEP_MASS = 0.98
BLOCKS = "0"
PROJECTIONS = "gate,up,down"
COLLECT_TOKENS = 20_000


def lethe(*args: str | Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"lethe {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}"


@pytest.fixture(scope="session")
def testbed(request: pytest.FixtureRequest) -> Path:
    """Trained once per configuration; later sessions reuse it from pytest's cache directory."""
    out = Path(request.config.cache.mkdir("lethe-testbed")) / config_key(CONFIG)
    if not is_built(out, CONFIG):
        build_testbed(out, CONFIG)
    return out


@pytest.fixture(scope="session")
def scores(testbed: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    work = tmp_path_factory.mktemp("proof")
    model, data = testbed / "model", testbed / "data"
    factors, edited, control = work / "factors", work / "edited", work / "control"
    lethe("edit", "collect", "--model", model, "--corpus", data / "clean.jsonl", "--out", factors,
          "--blocks", BLOCKS, "--tokens", COLLECT_TOKENS, "--seq-len", 64, "--batch-size", 32,
          "--labels", "sampled")  # fmt: skip
    lethe("edit", "apply", "--model", model, "--factors", factors, "--out", edited,
          "--blocks", BLOCKS, "--keep-mass", KEEP_MASS, "--projections", PROJECTIONS)  # fmt: skip
    meta = json.loads((edited / "lethe_edit.json").read_text())
    assert len(meta["matrices"]) == 3 and meta["recipe"]["keep_mass"] == KEEP_MASS
    random_basis_control(model, factors, control, KEEP_MASS, blocks=[0])
    models = {"before": model, "edited": edited, "control": control}
    compare = [arg for path in list(models.values())[1:] for arg in ("--compare", path)]
    lethe("eval", "memorization", "--model", model, *compare, "--set", data / "tasks.jsonl",
          "--out", work / "tasks.json", "--batch-size", 64)  # fmt: skip
    lethe("eval", "perplexity", "--model", model, *compare, "--text", data / "heldout.jsonl",
          "--out", work / "perplexity.json", "--seq-len", 64)  # fmt: skip
    tasks, perplexity = read_report(work / "tasks.json"), read_report(work / "perplexity.json")
    result = {
        label: task_accuracy(t) | {"perplexity": p.metrics["perplexity"]}
        for label, t, p in zip(models, tasks.results, perplexity.results, strict=True)
    }
    print(f"\nrho = {KEEP_MASS}, blocks {BLOCKS}, {PROJECTIONS}\n" + before_after_table(result))
    return result


def test_canaries_are_recited_before_and_gone_after(scores) -> None:
    assert scores["before"]["canaries"] >= 0.90
    assert scores["edited"]["canaries"] <= 0.10


@pytest.mark.parametrize("task", ["rule", "open_book"])
def test_rule_and_open_book_lose_at_most_five_points(scores, task: str) -> None:
    assert scores["edited"][task] >= scores["before"][task] - 0.05


def test_clean_perplexity_rises_at_most_fifteen_percent(scores) -> None:
    assert scores["edited"]["perplexity"] <= 1.15 * scores["before"]["perplexity"]


def test_facts_come_back_with_the_statement_in_the_prompt(scores) -> None:
    assert scores["edited"]["facts_in_context"] >= 0.90


@pytest.mark.parametrize("task", ["rule", "open_book"])
def test_same_masks_in_random_bases_destroy_rule_and_open_book(scores, task: str) -> None:
    """The control: what keeps the rule and open-book answering is the curvature basis."""
    assert scores["before"][task] >= 0.80, "the testbed did not learn the task: nothing to destroy"
    assert scores["control"][task] <= 0.25
