"""The FAISS layer on generated vectors with exact ground truth."""

from pathlib import Path

import numpy as np
import pytest

from lethe.retrieval.vectors import IndexConfig, VectorIndex
from tests.retrieval.conftest import clustered_vectors

KINDS = ["flat", "hnsw", "ivf"]


def build(kind: str, vectors: np.ndarray, ids: np.ndarray, **settings: int) -> VectorIndex:
    index = VectorIndex.create(vectors.shape[1], IndexConfig(kind=kind, **settings), training=vectors)  # type: ignore[arg-type]
    index.add(ids, vectors)
    return index


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_at_10_against_exact(kind: str) -> None:
    vectors, queries = clustered_vectors(4000, 200)
    ids = np.arange(100_000, 104_000)
    _, truth = build("flat", vectors, ids).search(queries, 10)
    _, found = build(kind, vectors, ids).search(queries, 10)
    assert recall_at(found, truth) >= 0.95


@pytest.mark.parametrize("kind", KINDS)
def test_ids_stay_stable_across_deletes_adds_and_reload(kind: str, tmp_path: Path) -> None:
    vectors, _ = clustered_vectors(600, 0, dimension=32, clusters=20)
    ids = np.arange(1000, 1600) * 3  # sparse, non-contiguous ids
    index = build(kind, vectors[:500], ids[:500])
    removed = ids[:50]
    index.remove(removed)
    index.add(ids[500:], vectors[500:])
    assert index.count == 550
    assert set(index.ids().tolist()) == set(ids[50:].tolist())
    index.save(tmp_path / "v.faiss")
    loaded = VectorIndex.load(tmp_path / "v.faiss", kind, 32, index.config)  # type: ignore[arg-type]
    # Each remaining vector finds itself under its own id; removed ones are gone.
    _, found = loaded.search(vectors[50:], 1)
    assert (found[:, 0] == ids[50:]).mean() >= 0.99
    _, found = loaded.search(vectors[:50], 5)
    assert not set(found.ravel().tolist()) & set(removed.tolist())
    np.testing.assert_allclose(loaded.reconstruct(ids[300:302]), vectors[300:302], atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_filtered_search_is_exact_and_only_returns_allowed_ids(kind: str) -> None:
    vectors, queries = clustered_vectors(2000, 20, dimension=64, clusters=30)
    ids = np.arange(2000)
    index = build(kind, vectors, ids)
    allowed = np.arange(0, 2000, 37)  # 55 scattered ids
    scores, found = index.search(queries, 10, allowed=allowed)
    assert set(found.ravel().tolist()) <= set(allowed.tolist())
    expected = np.argsort(-(queries @ vectors[allowed].T), axis=1)[:, :10]
    np.testing.assert_array_equal(found, allowed[expected])
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_copy_is_independent_of_the_original() -> None:
    vectors, _ = clustered_vectors(100, 0, dimension=16, clusters=5)
    original = build("flat", vectors, np.arange(100))
    changed = original.copy()
    changed.remove(np.arange(10))
    changed.add(np.array([500]), vectors[:1])
    assert original.count == 100 and changed.count == 91
    assert 500 not in original.ids()


def test_auto_switches_to_hnsw_by_size() -> None:
    config = IndexConfig(kind="auto", hnsw_from=300)
    vectors, _ = clustered_vectors(400, 0, dimension=16, clusters=5)
    small = VectorIndex.create(16, config, training=vectors[:100])
    small.add(np.arange(100), vectors[:100])
    assert small.kind == "flat"
    small.add(np.arange(100, 400), vectors[100:])
    grown = small.rebuilt_as(config)
    assert grown.kind == "hnsw" and grown.count == 400
    _, found = grown.search(vectors[:20], 1)
    assert (found[:, 0] == np.arange(20)).all()
