"""A small knowledge index for service tests: real FAISS, the real packaged embedder."""

from pathlib import Path

from lethe.retrieval.documents import Document
from lethe.retrieval.embedding import load_embedder
from lethe.retrieval.index import KnowledgeIndex

FACTS = [
    Document(
        id="mirren",
        text="Mirren is the capital of the island nation of Ostra, on its northern coast.",
        title="Mirren",
        metadata={"kind": "city", "year": 1820},
    ),
    Document(
        id="zorblat",
        text="The Zorblat Bridge spans the river Quell and was finished in 1931 by Ada Venn.",
        title="Zorblat Bridge",
        metadata={"kind": "bridge", "year": 1931},
    ),
    Document(
        id="kettle",
        text="A kettle boils water for tea; electric kettles switch off at the boil.",
        source="household",
        metadata={"kind": "object"},
    ),
    Document(
        id="pelagic",
        text="Pelagic fish live in the open sea, away from the coast and the sea floor.",
        title="Pelagic fish",
        metadata={"kind": "animal"},
    ),
]


def build_index(path: Path, documents: list[Document] = FACTS) -> Path:
    KnowledgeIndex.build(path, documents, load_embedder())
    return path
