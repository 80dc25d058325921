import itertools

import pytest
from pydantic import ValidationError

from lethe.retrieval.chunking import ChunkerConfig, chunk_document
from lethe.retrieval.documents import Document
from lethe.retrieval.embedding import TransformerEmbedder


def long_document() -> Document:
    sentences = [f"Sentence number {n} talks about lighthouse keeper {n * 7}." for n in range(60)]
    return Document(id="long", text=" ".join(sentences), title="Long", metadata={"k": "v"})


def test_passages_respect_the_token_budget_and_overlap(embedder: TransformerEmbedder) -> None:
    document = long_document()
    config = ChunkerConfig(max_tokens=50, overlap_tokens=10)
    passages = chunk_document(document, embedder, config)
    total_tokens = len(embedder.token_spans(document.text))
    assert total_tokens > 200  # the document really needs several windows
    assert len(passages) >= total_tokens // 40
    for number, passage in enumerate(passages):
        assert passage.id == f"long#{number}"
        assert passage.doc_id == "long" and passage.title == "Long" and passage.metadata == {"k": "v"}
        assert document.text[passage.start : passage.end] == passage.text
        # Snapping to whole words may add a word piece or two, never a whole window.
        assert len(embedder.token_spans(passage.text)) <= 50 + 4
    for left, right in itertools.pairwise(passages):
        assert right.start < left.end, "consecutive passages must overlap"
        assert right.start > left.start
    assert passages[0].start == 0 and passages[-1].end == len(document.text.rstrip())


def test_windows_start_and_end_on_word_boundaries(embedder: TransformerEmbedder) -> None:
    document = Document(id="w", text="Antidisestablishmentarianism " * 40)
    for passage in chunk_document(document, embedder, ChunkerConfig(max_tokens=7, overlap_tokens=2)):
        assert passage.text.startswith("Antidisestablishmentarianism")
        assert passage.text.endswith("Antidisestablishmentarianism")


def test_short_document_is_one_passage(embedder: TransformerEmbedder) -> None:
    document = Document(id="s", text="  Short text.  ")
    [passage] = chunk_document(document, embedder, ChunkerConfig())
    assert passage.text == "Short text." and (passage.start, passage.end) == (2, 13)


def test_overlap_must_be_smaller_than_window() -> None:
    with pytest.raises(ValidationError, match="overlap_tokens"):
        ChunkerConfig(max_tokens=10, overlap_tokens=10)
