"""Token-aware chunking of documents into overlapping passages."""

from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lethe.retrieval.documents import Document
from lethe.retrieval.passages import Passage

Span = tuple[int, int]


class Tokenizer(Protocol):
    """Anything that can split text into tokens given as character spans."""

    def token_spans(self, text: str) -> list[Span]: ...


class ChunkerConfig(BaseModel):
    """How documents are split into passages."""

    model_config = ConfigDict(frozen=True)

    max_tokens: int = Field(
        default=200,
        gt=0,
        le=100_000,
        description="Most tokens per passage (the embedder truncates at 256 word pieces).",
    )
    overlap_tokens: int = Field(
        default=40, ge=0, description="Tokens shared by consecutive passages of one document."
    )

    @model_validator(mode="after")
    def _overlap_smaller_than_window(self) -> "ChunkerConfig":
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be smaller than max_tokens ({self.max_tokens})"
            )
        return self


def _word_start(text: str, position: int) -> int:
    """Move back to the start of the word containing `position` (word pieces split words)."""
    while position > 0 and text[position - 1].isalnum() and text[position].isalnum():
        position -= 1
    return position


def _word_end(text: str, position: int) -> int:
    while (
        position < len(text) and position > 0 and text[position - 1].isalnum() and (text[position].isalnum())
    ):
        position += 1
    return position


def window_spans(text: str, spans: Sequence[Span], config: ChunkerConfig) -> list[Span]:
    """Character ranges of overlapping windows of at most `max_tokens` tokens."""
    if not spans:
        return []
    stride = config.max_tokens - config.overlap_tokens
    windows: list[Span] = []
    first = 0
    while True:
        last = min(first + config.max_tokens, len(spans)) - 1
        start = _word_start(text, spans[first][0])
        end = _word_end(text, spans[last][1])
        windows.append((start, end))
        if last == len(spans) - 1:
            return windows
        first += stride


def chunk_document(document: Document, tokenizer: Tokenizer, config: ChunkerConfig) -> list[Passage]:
    """Split one document into passages; ids are `<doc id>#<n>`, offsets index `document.text`."""
    spans = tokenizer.token_spans(document.text)
    passages = []
    for number, (start, end) in enumerate(window_spans(document.text, spans, config)):
        passages.append(
            Passage(
                id=f"{document.id}#{number}",
                doc_id=document.id,
                text=document.text[start:end],
                start=start,
                end=end,
                title=document.title,
                source=document.source,
                metadata=dict(document.metadata),
            )
        )
    return passages


def chunk_documents(
    documents: Sequence[Document], tokenizer: Tokenizer, config: ChunkerConfig
) -> list[Passage]:
    return [p for document in documents for p in chunk_document(document, tokenizer, config)]
