import json
from pathlib import Path

import pytest

from lethe.retrieval.documents import load_documents, parse_documents, parse_metadata_json
from lethe.retrieval.errors import InvalidArgument, NotFound
from lethe.retrieval.limits import DocumentLimits


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
        ('{"id": "a", "text": "x", "metadata": {"k": {"nested": 1}}}', "metadata: 'k' must be a string"),
        ('{"id": "a", "text": "x", "metadata": [1]}', "metadata: Input should be a valid dictionary"),
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


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "a\\u0000b", "text": "x"}', "id: contains a NUL character"),
        ('{"id": "a", "text": "x\\u0000"}', "text: contains a NUL character"),
        ('{"id": "\\ud800", "text": "x"}', "id: contains a lone surrogate (U+D800)"),
        ('{"id": "a", "text": "x \\udc00"}', "text: contains a lone surrogate (U+DC00)"),
        ('{"id": "a", "text": "x", "title": "\\ud800"}', "title: contains a lone surrogate"),
        ('{"id": "a", "text": "x", "source": "s\\u0000"}', "source: contains a NUL character"),
        ('{"id": "a", "text": "x", "metadata": {"k\\u0000": 1}}', "metadata: key 'k\\x00' contains a NUL"),
        (
            '{"id": "a", "text": "x", "metadata": {"k": "\\ud800"}}',
            "metadata: 'k': contains a lone surrogate",
        ),
        ('{"id": "a", "text": "x", "metadata": {"k": ["ok", "\\udfff"]}}', "'k': contains a lone surrogate"),
        ('{"id": "a", "text": "x", "metadata": {"k": NaN}}', "NaN is not allowed"),
        ('{"id": "a", "text": "x", "metadata": {"k": 1e999}}', "'k': numbers must be finite"),
        (
            '{"id": "a", "text": "x", "metadata": {"k": 36893488147419103232}}',
            "'k': integers must fit in 64 bits",
        ),
        (
            '{"id": "a", "text": "x", "metadata": ' + '{"k": ' * 1000 + "1" + "}" * 1001,
            "nested deeper than 16",
        ),
        ("[" * 5000 + "]" * 5000, "nested deeper than 16 levels"),
        (
            '{"id": "a", "text": "x", "title": "' + "t" * 1001 + '"}',
            "title: 1001 characters; the limit is 1000",
        ),
        (
            '{"id": "a", "text": "x", "source": "' + "s" * 2001 + '"}',
            "source: 2001 characters; the limit is 2000",
        ),
        ('{"id": "a", "text": "x", "metadata": {"k": "' + "v" * 70_000 + '"}}', "the limit is 65536"),
        (json.dumps({"id": "a", "text": "x", "metadata": {f"k{n}": n for n in range(129)}}), "129 keys"),
        (
            json.dumps({"id": "a", "text": "x", "metadata": {"k" * 257: 1}}),
            "has 257 characters; the limit is 256",
        ),
    ],
)
def test_unusable_text_and_oversized_fields_name_line_and_field(
    tmp_path: Path, line: str, message: str
) -> None:
    path = write(tmp_path / "docs.jsonl", ['{"id": "ok", "text": "fine"}', line])
    with pytest.raises(InvalidArgument) as error:
        load_documents(path)
    assert str(error.value).startswith(f"{path}:2: "), str(error.value)
    assert message in str(error.value)
    assert len(str(error.value)) < 1000, "the client's value is not echoed in full"


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": "a", "text": "x"}\n{"id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(InvalidArgument, match=r"latin1.jsonl:2: not UTF-8 text"):
        load_documents(path)


def test_request_documents_are_named_by_field_path() -> None:
    records = [("documents[0]", {"id": "ok", "text": "fine"}), ("documents[1]", {"id": "b", "text": "x\x00"})]
    with pytest.raises(InvalidArgument, match=r"^documents\[1\]\.text: contains a NUL character$"):
        parse_documents(records, field_paths=True)
    with pytest.raises(InvalidArgument, match=r"^documents\[1\]\.id: duplicate document id 'ok'"):
        parse_documents([records[0], ("documents[1]", {"id": "ok", "text": "y"})], field_paths=True)


def test_document_limits_are_settings() -> None:
    narrow = DocumentLimits(max_text_chars=5, max_metadata_keys=1)
    with pytest.raises(InvalidArgument, match=r"^d\[0\]\.text: 6 characters; the limit is 5$"):
        parse_documents([("d[0]", {"id": "a", "text": "sixsix"})], narrow, field_paths=True)
    with pytest.raises(InvalidArgument, match=r"^d\[0\]\.metadata: 2 keys; the limit is 1$"):
        parse_documents(
            [("d[0]", {"id": "a", "text": "x", "metadata": {"a": 1, "b": 2}})], narrow, field_paths=True
        )
    [document] = parse_documents([("d[0]", {"id": "a", "text": "x" * 1000})])
    assert len(document.text) == 1000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"k": ' * 1000 + "1" + "}" * 1000, "m: nested deeper than 2 levels"),
        ('{"k": [[1]]}', "m: nested deeper than 2 levels"),
        ('{"k": {"a": 1}}', "m: 'k' must be a string, number, boolean, null or a list"),
        ('{"k": ["a", null]}', "m: 'k' must be a string"),
        ('{"k\\u0000": 1}', "m: key 'k\\x00' contains a NUL character"),
        ('{"k": "\\ud800"}', "m: 'k': contains a lone surrogate"),
        ('{"k": "' + "v" * 70_000 + '"}', "m: 70009 characters; the limit is 65536"),
        ("[1]", "m: must be a JSON object"),
    ],
)
def test_metadata_json_is_checked_before_it_is_parsed(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        parse_metadata_json(text, "m")
    assert str(error.value).startswith(message), str(error.value)


def test_good_metadata_json_parses() -> None:
    metadata = {"lang": "en", "year": 2020, "tags": ["a", "b"], "none": None, "score": 0.5}
    assert parse_metadata_json(json.dumps(metadata), "m") == metadata
