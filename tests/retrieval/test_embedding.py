from pathlib import Path

import numpy as np
import pytest

from lethe.retrieval.embedding import DEFAULT_EMBEDDER, TransformerEmbedder, load_embedder
from lethe.retrieval.errors import NotFound


def test_packaged_model_is_minilm_with_unit_vectors(embedder: TransformerEmbedder) -> None:
    assert embedder.name == DEFAULT_EMBEDDER
    assert embedder.dimension == 384
    vectors = embedder.embed(["The cat sat on the mat.", "A feline rested on a rug.", "Stock markets fell."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.5 > unrelated


def test_batching_and_order_do_not_change_vectors(embedder: TransformerEmbedder) -> None:
    texts = ["short", "a considerably longer sentence about rivers and mountains", "medium length text"]
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    together = embedder.embed(texts, batch_size=2)
    np.testing.assert_allclose(alone, together, atol=1e-5)


def test_progress_reports_every_batch(embedder: TransformerEmbedder) -> None:
    calls: list[tuple[int, int]] = []
    embedder.embed([f"text {n}" for n in range(5)], batch_size=2, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_loaded_once_per_process(embedder: TransformerEmbedder) -> None:
    assert load_embedder(DEFAULT_EMBEDDER) is embedder


def test_unknown_embedder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="neither"):
        load_embedder(str(tmp_path / "nope"))
    with pytest.raises(NotFound, match=r"config\.json"):
        TransformerEmbedder(tmp_path)
