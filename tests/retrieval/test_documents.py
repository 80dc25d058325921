import json
from pathlib import Path

import pytest

from lethe.retrieval.documents import load_documents
from lethe.retrieval.errors import InvalidArgument, NotFound


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_loads_documents_with_optional_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path / "docs.jsonl",
        [
            json.dumps({"id": "a", "text": "alpha", "title": "A", "source": "s", "metadata": {"x": 1}}),
            "",
            json.dumps({"id": "b", "text": "beta"}),
        ],
    )
    docs = load_documents(path)
    assert [d.id for d in docs] == ["a", "b"]
    assert docs[0].title == "A" and docs[0].metadata == {"x": 1}
    assert docs[1].title is None and docs[1].metadata == {}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "a"}', "text: Field required"),
        ('{"id": "a", "text": "   "}', "text:"),
        ('{"id": "", "text": "x"}', "id:"),
        ('{"id": "a", "text": "x", "colour": "red"}', "colour"),
        ('{"id": "a", "text": "x", "metadata": {"k": {"nested": 1}}}', "metadata.k"),
        ('["a", "x"]', "must be a JSON object"),
        ('{"id": "a", "text": "x"', "not valid JSON"),
        ('{"id": 7, "text": "x"}', "id:"),
    ],
)
def test_malformed_document_names_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "docs.jsonl", ['{"id": "ok", "text": "fine"}', line])
    with pytest.raises(InvalidArgument) as error:
        load_documents(path)
    assert f"{path}:2" in str(error.value)
    assert message in str(error.value)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", ['{"id": "a", "text": "x"}', '{"id": "a", "text": "y"}'])
    with pytest.raises(InvalidArgument, match="duplicate document id 'a'"):
        load_documents(path)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="no documents"):
        load_documents(write(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(NotFound):
        load_documents(tmp_path / "absent.jsonl")
