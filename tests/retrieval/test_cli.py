"""`lethe index ...` round trip through the real CLI (the embedder is shared with the session)."""

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lethe.retrieval.embedding import TransformerEmbedder
from lethe.service.cli import app, main
from tests.retrieval.conftest import CITY_DOCS, NEW_DOC

runner = CliRunner()


def lethe(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result.stdout


def write_docs(path: Path, docs: list) -> Path:  # type: ignore[type-arg]
    path.write_text("".join(d.model_dump_json(exclude_none=True) + "\n" for d in docs), encoding="utf-8")
    return path


def test_cli_round_trip(tmp_path: Path, embedder: TransformerEmbedder) -> None:
    index = tmp_path / "idx"
    docs = write_docs(tmp_path / "docs.jsonl", CITY_DOCS)
    assert "4 documents" in lethe("index", "build", "--docs", str(docs), "--out", str(index))

    info = json.loads(lethe("index", "info", "--index", str(index), "--json"))
    assert (info["embedder"], info["dimension"], info["documents"]) == ("all-MiniLM-L6-v2", 384, 4)

    text = lethe("index", "search", "--index", str(index), "capital of Australia", "-k", "2")
    assert text.splitlines()[0].startswith("1. [") and "canberra#0" in text.splitlines()[0]

    single = json.loads(lethe("index", "search", "--index", str(index), "Eiffel Tower", "--json"))
    assert single["hits"][0]["doc_id"] == "paris"

    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"id": "q1", "query": "highest mountain in Africa"}\n{"id": 2, "query": "capital of Canada"}\n'
    )
    lethe("index", "add", "--index", str(index), "--docs", str(write_docs(tmp_path / "new.jsonl", [NEW_DOC])))
    out = lethe("index", "search", "--index", str(index), "--queries", str(queries), "-k", "3", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["id"] for line in lines] == ["q1", 2]
    assert lines[0]["hits"][0]["doc_id"] == "kilimanjaro"
    assert lines[1]["hits"][0]["doc_id"] == "ottawa"
    assert set(lines[1]["hits"][0]) >= {"id", "doc_id", "score", "text"} and len(lines[1]["hits"]) == 3

    filtered = lethe("index", "search", "--index", str(index), "capital", "--json", "--filter", "lang=de")
    assert [h["doc_id"] for h in json.loads(filtered)["hits"]] == ["kilimanjaro"]

    lethe("index", "delete", "--index", str(index), "--ids", "ottawa", "paris")
    info = json.loads(lethe("index", "info", "--index", str(index), "--json"))
    assert info["documents"] == 3 and info["snapshot"] == "000003"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "search", "--index", "{missing}", "query"], "no index at"),
        (["index", "search", "--index", "{index}", "   "], "query is empty"),
        (["index", "search", "--index", "{index}", "x", "-k", "0"], "k must be an integer"),
        (["index", "search", "--index", "{index}", "x", "-k", "1000"], "k must be an integer"),
        (["index", "add", "--index", "{index}", "--docs", "{bad}"], "malformed document"),
        (["index", "delete", "--index", "{index}", "--ids", "ghost"], "not in the index"),
        (["index", "build", "--docs", "{docs}", "--out", "{index}"], "already exists"),
        (["index", "search", "--index", "{index}", "--queries", "{bad}", "--json"], '"query"'),
    ],
)
def test_cli_errors_are_one_line_and_lose_nothing(
    tmp_path: Path,
    embedder: TransformerEmbedder,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    index = tmp_path / "idx"
    docs = write_docs(tmp_path / "docs.jsonl", CITY_DOCS)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "ottawa", "text": "Ottawa is the capital of Canada."}\n{"id": "x"}\n')
    lethe("index", "build", "--docs", str(docs), "--out", str(index))
    paths = {"missing": tmp_path / "nothing-here", "index": index, "bad": bad, "docs": docs}
    argv = ["lethe", *(a.format(**paths) for a in args)]
    monkeypatch.setattr(sys, "argv", argv)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and message in captured.err
    assert "Traceback" not in captured.err
    info = json.loads(lethe("index", "info", "--index", str(index), "--json"))
    assert (info["documents"], info["snapshot"]) == (4, "000001")


def test_another_model_directory_is_recorded_and_enforced(
    tmp_path: Path,
    embedder: TransformerEmbedder,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same weights under another directory name: a different embedder as far as indexes go.
    other = tmp_path / "minilm-copy"
    other.mkdir()
    for item in embedder.model_dir.iterdir():
        (other / item.name).symlink_to(item)
    index = tmp_path / "idx"
    docs = write_docs(tmp_path / "docs.jsonl", CITY_DOCS)
    lethe("index", "build", "--docs", str(docs), "--out", str(index), "--embedder", str(other))
    info = json.loads(lethe("index", "info", "--index", str(index), "--json"))
    assert (info["embedder"], info["dimension"]) == ("minilm-copy", 384)
    # Reopening without --embedder uses the model the manifest names.
    hits = json.loads(lethe("index", "search", "--index", str(index), "capital of Australia", "--json"))
    assert hits["hits"][0]["doc_id"] == "canberra"
    monkeypatch.setattr(
        sys,
        "argv",
        ["lethe", "index", "search", "--index", str(index), "x", "--embedder", "all-MiniLM-L6-v2"],
    )
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main()
    assert "built with embedder 'minilm-copy'" in capsys.readouterr().err
