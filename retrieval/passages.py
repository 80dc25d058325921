"""Domain types shared by the store, the index and its callers (no FAISS, no SQLite)."""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Passage:
    """A chunk of one document. `start`/`end` are character offsets into the document text."""

    id: str
    doc_id: str
    text: str
    start: int
    end: int
    title: str | None = None
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def embedding_text(self) -> str:
        """What the embedder sees: the title (when there is one) gives short chunks context."""
        return f"{self.title}. {self.text}" if self.title else self.text


@dataclass(frozen=True)
class Hit:
    """One search result: a passage and its cosine similarity to the query."""

    passage: Passage
    score: float

    def to_json(self) -> dict[str, Any]:
        p = self.passage
        return {
            "id": p.id,
            "doc_id": p.doc_id,
            "score": round(self.score, 6),
            "text": p.text,
            "title": p.title,
            "source": p.source,
            "metadata": p.metadata,
            "start": p.start,
            "end": p.end,
        }
