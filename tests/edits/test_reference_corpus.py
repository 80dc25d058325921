"""The reference collection corpus: rebuilt identically from what the machine ships, atomically."""

from pathlib import Path

import pytest

from lethe.edits.errors import AlreadyExists
from lethe.edits.reference_corpus import python_reference, vim_user_manual, write_reference_corpus


def test_python_reference_is_the_standard_library_s_topics() -> None:
    import pydoc_data.topics as topics

    text = python_reference()
    assert text == python_reference() and len(text) > 100_000
    assert topics.topics["assert"] in text and topics.topics["yield"] in text


def test_vim_manual_takes_the_newest_runtime_in_chapter_order(tmp_path: Path) -> None:
    for version, chapters in (("vim81", ["old"]), ("vim90", ["b", "a"])):
        (tmp_path / version / "doc").mkdir(parents=True)
        for number, text in enumerate(chapters, start=1):
            (tmp_path / version / "doc" / f"usr_0{number}.txt").write_text(text)
    assert vim_user_manual((str(tmp_path / "vim*" / "doc" / "usr_*.txt"),)) == "ba"
    assert vim_user_manual((str(tmp_path / "none" / "usr_*.txt"),)) is None


def test_written_once_and_never_replaced_unasked(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    files = write_reference_corpus(out)
    assert out / "python-reference.txt" in files
    assert (out / "python-reference.txt").read_text(encoding="utf-8") == python_reference()
    with pytest.raises(AlreadyExists):
        write_reference_corpus(out)
    assert write_reference_corpus(out, overwrite=True) == files
    assert not list(tmp_path.glob(".corpus*"))
