"""`lethe edit collect` / `lethe edit apply` as a user runs them: real processes, real files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def lethe(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"LETHE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "lethe.service.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def factors(tiny_llama: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "factors"
    done = lethe(
        "edit",
        "collect",
        "--model",
        str(tiny_llama),
        "--corpus",
        str(tiny_corpus),
        "--out",
        str(out),
        "--blocks",
        "1,2",
        "--tokens",
        "200",
        "--seq-len",
        "16",
        "--batch-size",
        "4",
        home=out.parent,
    )
    assert done.returncode == 0, done.stderr
    assert "factors:" in done.stdout
    return out


def test_collect_writes_a_described_store(factors: Path) -> None:
    manifest = json.loads((factors / "manifest.json").read_text())
    assert manifest["settings"]["blocks"] == [1, 2]
    assert manifest["settings"]["labels"] == "sampled"
    assert manifest["tokens"] >= 200 and manifest["model"]["family"] == "llama"
    assert manifest["corpus"]["fingerprint"] and manifest["model"]["fingerprint"]
    assert sorted(manifest["entries"]) == ["1.down", "1.gate", "1.up", "2.down", "2.gate", "2.up"]


def test_apply_with_a_yaml_recipe(tiny_llama: Path, factors: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "blocks: [1, 2]\nprojections: [gate, up]\nkeep_mass: 0.7\noverrides:\n  2: {keep_mass: 0.9}\n"
    )
    done = lethe(
        "edit",
        "apply",
        "--model",
        str(tiny_llama),
        "--factors",
        str(factors),
        "--out",
        str(tmp_path / "ckpt"),
        "--recipe",
        str(recipe),
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "ckpt" / "lethe_edit.json").read_text())
    assert [m["keep_mass"] for m in manifest["matrices"]] == [0.7, 0.7, 0.9, 0.9]


def test_apply_with_options(tiny_llama: Path, factors: Path, tmp_path: Path) -> None:
    done = lethe(
        "edit",
        "apply",
        "--model",
        str(tiny_llama),
        "--factors",
        str(factors),
        "--out",
        str(tmp_path / "ckpt"),
        "--blocks",
        "2",
        "--keep-mass",
        "0.6",
        "--projections",
        "down",
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "block   2 down" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--blocks", "9", "--keep-mass", "0.5"], "blocks [9] do not exist"),
        (["--blocks", "1", "--keep-mass", "2"], "keep_mass"),
        (["--blocks", "0", "--keep-mass", "0.5"], "no factors for"),
        (["--recipe", "/nonexistent.yaml"], "does not exist"),
    ],
)
def test_bad_input_is_a_message_not_a_traceback(
    tiny_llama: Path, factors: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    done = lethe(
        "edit",
        "apply",
        "--model",
        str(tiny_llama),
        "--factors",
        str(factors),
        "--out",
        str(tmp_path / "ckpt"),
        *args,
        home=tmp_path,
    )
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "ckpt").exists()


def test_unknown_model_and_architecture_errors(tmp_path: Path, tiny_corpus: Path) -> None:
    done = lethe(
        "edit",
        "collect",
        "--model",
        str(tmp_path / "missing"),
        "--corpus",
        str(tiny_corpus),
        "--out",
        str(tmp_path / "f"),
        home=tmp_path,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and "config.json" in done.stderr

    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"model_type": "mamba", "num_hidden_layers": 2}))
    done = lethe(
        "edit",
        "collect",
        "--model",
        str(odd),
        "--corpus",
        str(tiny_corpus),
        "--out",
        str(tmp_path / "f"),
        home=tmp_path,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'mamba' is not supported" in done.stderr and "gpt_neox" in done.stderr and "gemma3" in done.stderr
