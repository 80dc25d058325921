"""Retrieval fixtures: the real packaged embedder (loaded once) and small document sets."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lethe.retrieval.documents import Document
from lethe.retrieval.embedding import TransformerEmbedder, load_embedder
from lethe.retrieval.index import KnowledgeIndex

CITY_DOCS = [
    Document(
        id="paris",
        text="Paris is the capital of France. The Eiffel Tower was completed there in 1889.",
        title="Paris",
        source="test",
        metadata={"lang": "en", "kind": "city", "tags": ["europe", "capital"]},
    ),
    Document(
        id="canberra",
        text="Canberra is the capital city of Australia, chosen as a compromise between Sydney "
        "and Melbourne.",
        title="Canberra",
        metadata={"lang": "en", "kind": "city", "tags": ["oceania", "capital"]},
    ),
    Document(
        id="potassium",
        text="Bananas are a good source of potassium, an element with the symbol K.",
        metadata={"lang": "en", "kind": "food", "year": 2020},
    ),
    Document(
        id="kilimanjaro",
        text="Mount Kilimanjaro in Tanzania is the highest mountain in Africa.",
        metadata={"lang": "de", "kind": "mountain", "year": 2021},
    ),
]

NEW_DOC = Document(
    id="ottawa",
    text="Ottawa, on the Ottawa River, is the capital of Canada.",
    title="Ottawa",
    metadata={"lang": "en", "kind": "city"},
)


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """On a shared 2-core machine, two intra-op threads per tiny query batch oversubscribe the
    cores (measured ~0.5 s vs ~0.03 s per query under load); restored for other packages."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def embedder() -> TransformerEmbedder:
    return load_embedder()


@pytest.fixture
def city_index(tmp_path: Path, embedder: TransformerEmbedder) -> KnowledgeIndex:
    return KnowledgeIndex.build(tmp_path / "cities", CITY_DOCS, embedder)


def clustered_vectors(
    count: int, queries: int, dimension: int = 384, clusters: int = 200, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around random centres (like embeddings: topical, not uniform), plus queries
    drawn from the same distribution."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dimension)).astype(np.float32)

    def draw(n: int) -> np.ndarray:
        points = centres[rng.integers(0, clusters, n)] + 1.2 * rng.standard_normal((n, dimension))
        points = points.astype(np.float32)
        return points / np.linalg.norm(points, axis=1, keepdims=True)

    return draw(count), draw(queries)
