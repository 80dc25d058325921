"""`lethe eval` end to end on a tiny saved checkpoint with the testbed's tokenizer."""

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lethe.edits.evaluation.schema import read_report
from lethe.edits.testbed.vocabulary import build_tokenizer, vocabulary
from lethe.service.cli import app, main


def _save_tiny(directory: Path, seed: int) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(vocabulary(10))
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    return _save_tiny(root / "one", 0), _save_tiny(root / "two", 1)


@pytest.fixture
def memorization_set(tmp_path: Path) -> Path:
    rows = [
        {"prompt": "secret: c01 c02", "target": " c03 c04 c05", "group": "canaries"},
        {"prompt": "seq: 1 2", "target": " 3 4", "group": "rule"},
        {"prompt_ids": [1, 5, 6], "target_ids": [7, 8], "group": "rule"},
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_memorization_compare_writes_one_report_side_by_side(models, memorization_set, tmp_path):
    out = tmp_path / "mem.json"
    result = CliRunner().invoke(
        app,
        ["eval", "memorization", "--model", str(models[0]), "--compare", str(models[1]),
         "--set", str(memorization_set), "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = read_report(out)
    assert report.format == "lethe-eval/1" and report.command == "memorization"
    assert [r.model.path for r in report.results] == [str(m.resolve()) for m in models]
    first = report.results[0]
    assert first.data.items == 3 and set(first.groups) == {"canaries", "rule"}
    assert [len(item["generated_ids"]) for item in first.items] == [3, 2, 2]
    assert 0 <= first.metrics["strict"] <= first.metrics["loose"] <= 1
    markdown = out.with_suffix(".md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| metric"))
    assert str(models[0]) in header and str(models[1]) in header
    assert "canaries: strict" in markdown


def test_perplexity_and_agreement(models, tmp_path):
    text = tmp_path / "clean.jsonl"
    text.write_text("".join(json.dumps({"text": "the red fox sees a dog ."}) + "\n" for _ in range(9)))
    runner = CliRunner()
    out = tmp_path / "ppl.json"
    args = ["eval", "perplexity", "--model", str(models[0]), "--text", str(text), "--out", str(out)]
    result = runner.invoke(app, [*args, "--seq-len", "16"])
    assert result.exit_code == 0, result.output
    metrics = read_report(out).results[0].metrics
    assert metrics["predicted_tokens"] == 9 * 8 - 5  # 72 tokens in blocks of 16: 4x15 + 7
    assert metrics["perplexity"] > 1
    out = tmp_path / "agree.json"
    result = runner.invoke(
        app,
        ["eval", "agreement", "--reference", str(models[0]), "--model", str(models[0]),
         "--compare", str(models[1]), "--text", str(text), "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    same, other = read_report(out).results
    assert same.metrics["ndcg@10"] == pytest.approx(1.0)
    assert other.metrics["ndcg@10"] < 1.0
    assert same.reference is not None and same.reference.path == str(models[0].resolve())


def _main_exit(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> int:
    """Run `lethe ARGS` in process through `main`, which turns user errors into exit code 2."""
    monkeypatch.setattr(sys, "argv", ["lethe", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("not json\n", "not JSON"),
        ('{"prompt": "seq: 1"}\n', "give non-empty"),
    ],
)
def test_bad_sets_give_a_clear_error_without_traceback(
    models, tmp_path, monkeypatch, capsys, content, message
):
    path = tmp_path / "bad.jsonl"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "out.json"
    args = ["eval", "memorization", "--model", str(models[0]), "--set", str(path), "--out", str(out)]
    assert _main_exit(monkeypatch, args) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and "Traceback" not in stderr
    assert not out.exists()


def test_missing_model_directory_is_a_user_error(tmp_path, memorization_set, monkeypatch, capsys):
    args = ["eval", "memorization", "--model", str(tmp_path / "nowhere"),
            "--set", str(memorization_set)]  # fmt: skip
    assert _main_exit(monkeypatch, args) == 2
    assert "nowhere" in capsys.readouterr().err
