"""Before/after and sweep reports of the testbed, and the demo's input checks."""

import sys

import pytest

from lethe.edits.testbed.report import before_after_table, sweep_plot, sweep_table
from lethe.service.cli import main

BEFORE = {"canaries": 1.0, "rule": 0.9, "open_book": 1.0, "perplexity": 4.0}
AFTER = {"canaries": 0.025, "rule": 0.88, "open_book": 0.995, "perplexity": 4.2}


def test_before_after_table_has_a_column_per_model() -> None:
    table = before_after_table({"before": BEFORE, "edited": AFTER})
    lines = table.splitlines()
    assert lines[0] == "| task | before | edited |"
    canaries = next(line for line in lines if "canaries" in line)
    assert "100.0 %" in canaries and "2.5 %" in canaries
    assert "| 4.000 | 4.200 |" in table
    assert "| (a) facts, closed-book | - | - |" in table  # not measured: shown as missing


def test_sweep_table_and_plot(tmp_path) -> None:
    sweep = {0.99: AFTER, 0.9: {**AFTER, "rule": 0.1, "perplexity": 9.0}}
    rows = sweep_table(BEFORE, sweep).splitlines()
    assert [row.split(" | ")[0] for row in rows[2:]] == ["| before", "| 0.9", "| 0.99"]
    path = tmp_path / "sweep.png"
    sweep_plot(BEFORE, sweep, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("sweep", ["2", "0.9,x"])
def test_demo_refuses_a_bad_sweep_before_training(tmp_path, monkeypatch, capsys, sweep) -> None:
    out = tmp_path / "testbed"
    monkeypatch.setattr(sys, "argv", ["lethe", "demo", "testbed", "--out", str(out), "--sweep", sweep])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "--sweep" in capsys.readouterr().err
    assert not out.exists()
