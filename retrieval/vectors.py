"""FAISS vector index with stable int64 ids: exact (flat), HNSW or IVF, all inner product.

Flat and HNSW are wrapped in `IndexIDMap2`; IVF stores ids itself and keeps a hashtable direct
map (an `IndexIDMap2` around IVF mis-numbers ids after a removal). Either way ids survive adds
and deletes and vectors can be read back, to rebuild an HNSW graph after a delete or to switch
kinds as the index grows.
"""

import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lethe.retrieval.errors import IndexCorrupt, InvalidArgument

IndexKind = Literal["flat", "hnsw", "ivf"]


class IndexConfig(BaseModel):
    """Which FAISS index to build and how to search it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        default="auto",
        description="flat = exact; hnsw/ivf = approximate; auto = flat until `hnsw_from` vectors.",
    )
    hnsw_from: int = Field(
        default=1_000_000,
        gt=0,
        description="With kind=auto, switch from flat to HNSW at this many vectors.",
    )
    hnsw_m: int = Field(default=32, ge=4, le=128, description="HNSW graph degree (M).")
    hnsw_ef_construction: int = Field(default=80, gt=0, description="HNSW build-time beam width.")
    hnsw_ef_search: int = Field(default=128, gt=0, description="HNSW search beam width.")
    ivf_nlist: int | None = Field(
        default=None, gt=0, description="IVF lists; default 4*sqrt(N), at most N/39."
    )
    ivf_nprobe: int = Field(default=32, gt=0, description="IVF lists visited per query.")
    exact_filter_limit: int = Field(
        default=50_000,
        ge=0,
        description="A filtered search over at most this many vectors is done exactly, even on "
        "an approximate index (graph and list search miss results under narrow filters).",
    )

    def kind_for(self, count: int) -> IndexKind:
        if self.kind != "auto":
            return self.kind
        return "hnsw" if count >= self.hnsw_from else "flat"


def _faiss():  # type: ignore[no-untyped-def]
    import faiss

    return faiss


def _as_matrix(vectors: np.ndarray, dimension: int) -> np.ndarray:
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != dimension:
        raise InvalidArgument(f"expected vectors of shape (n, {dimension}), got {matrix.shape}")
    return matrix


def _as_ids(ids: np.ndarray | list[int]) -> np.ndarray:
    return np.ascontiguousarray(ids, dtype=np.int64)


class VectorIndex:
    """One FAISS index plus the knowledge of how it was built. Not thread-safe for writes;
    the store copies an index before changing it, so readers of the old one are unaffected."""

    def __init__(self, index, kind: IndexKind, dimension: int, config: IndexConfig):  # type: ignore[no-untyped-def]
        self._index = index
        self.kind: IndexKind = kind
        self.dimension = dimension
        self.config = config
        self._apply_search_params()

    @classmethod
    def create(cls, dimension: int, config: IndexConfig, training: np.ndarray | None = None) -> "VectorIndex":
        """An empty index of the kind `config` picks for `training`'s size (IVF trains on it)."""
        count = 0 if training is None else len(training)
        kind = config.kind_for(count)
        faiss = _faiss()
        if kind == "flat":
            inner = faiss.IndexFlatIP(dimension)
        elif kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dimension, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = config.hnsw_ef_construction
        else:
            if training is None or count == 0:
                raise InvalidArgument("an IVF index needs vectors to train on; add documents")
            nlist = config.ivf_nlist or max(1, int(4 * math.sqrt(count)))
            nlist = max(1, min(nlist, count // 39 or 1))  # FAISS wants ~39 points per list
            quantizer = faiss.IndexFlatIP(dimension)
            inner = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
            inner.cp.seed = 1234
            inner.train(_as_matrix(training, dimension))
            # A hashtable direct map keeps `reconstruct` working after removals.
            inner.set_direct_map_type(faiss.DirectMap.Hashtable)
            return cls(inner, kind, dimension, config)
        return cls(faiss.IndexIDMap2(inner), kind, dimension, config)

    @classmethod
    def load(cls, path: Path, kind: IndexKind, dimension: int, config: IndexConfig) -> "VectorIndex":
        try:
            index = _faiss().read_index(str(path))
        except RuntimeError as error:
            raise IndexCorrupt(f"cannot read FAISS index {path}: {error}") from None
        if index.d != dimension:
            raise IndexCorrupt(f"{path} holds {index.d}-d vectors, the manifest says {dimension}")
        return cls(index, kind, dimension, config)

    def save(self, path: Path) -> None:
        _faiss().write_index(self._index, str(path))

    def copy(self) -> "VectorIndex":
        return VectorIndex(_faiss().clone_index(self._index), self.kind, self.dimension, self.config)

    def _apply_search_params(self) -> None:
        faiss = _faiss()
        if self.kind == "hnsw":
            faiss.downcast_index(self._index.index).hnsw.efSearch = self.config.hnsw_ef_search
        elif self.kind == "ivf":
            self._index.nprobe = min(self.config.ivf_nprobe, self._index.nlist)

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    @property
    def nlist(self) -> int | None:
        return int(self._index.nlist) if self.kind == "ivf" else None

    def ids(self) -> np.ndarray:
        faiss = _faiss()
        if self.kind != "ivf":
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        lists = self._index.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(number), lists.list_size(number)).copy()
            for number in range(lists.nlist)
            if lists.list_size(number)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        ids_array = _as_ids(ids)
        matrix = _as_matrix(vectors, self.dimension)
        if len(ids_array) != len(matrix):
            raise InvalidArgument(f"{len(ids_array)} ids for {len(matrix)} vectors")
        if len(ids_array):
            self._index.add_with_ids(matrix, ids_array)

    def reconstruct(self, ids: np.ndarray | list[int]) -> np.ndarray:
        ids_array = _as_ids(ids)
        out = np.empty((len(ids_array), self.dimension), dtype=np.float32)
        for row, vector_id in enumerate(ids_array):
            out[row] = self._index.reconstruct(int(vector_id))
        return out

    def _reconstruct_present(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of those `ids` the index holds (unknown ids are skipped, not an error)."""
        present, vectors = [], []
        for vector_id in ids:
            try:
                vectors.append(self._index.reconstruct(int(vector_id)))
            except RuntimeError:
                continue
            present.append(int(vector_id))
        if not present:
            return np.empty(0, dtype=np.int64), np.empty((0, self.dimension), dtype=np.float32)
        return np.asarray(present, dtype=np.int64), np.stack(vectors).astype(np.float32)

    def remove(self, ids: np.ndarray | list[int]) -> None:
        ids_array = _as_ids(ids)
        if not len(ids_array):
            return
        if self.kind == "hnsw":
            # HNSW graphs cannot drop nodes: rebuild from the vectors that stay.
            keep = np.setdiff1d(self.ids(), ids_array)
            vectors = self.reconstruct(keep)
            fresh = VectorIndex.create(self.dimension, self.config.model_copy(update={"kind": "hnsw"}))
            fresh.add(keep, vectors)
            self._index = fresh._index
            return
        faiss = _faiss()
        if self.kind == "ivf":
            # The hashtable direct map accepts only an array selector (of ids that exist).
            present = np.intersect1d(ids_array, self.ids())
            self._index.remove_ids(faiss.IDSelectorArray(len(present), faiss.swig_ptr(present)))
        else:
            self._index.remove_ids(faiss.IDSelectorBatch(ids_array))

    def rebuilt_as(self, config: IndexConfig) -> "VectorIndex":
        """The same vectors and ids in the index `config` picks for their number."""
        ids = self.ids()
        vectors = self.reconstruct(ids)
        fresh = VectorIndex.create(self.dimension, config, training=vectors)
        fresh.add(ids, vectors)
        return fresh

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; missing results have id -1. `allowed` restricts the
        search to those ids."""
        matrix = _as_matrix(queries, self.dimension)
        faiss = _faiss()
        if allowed is None:
            return self._index.search(matrix, k)
        allowed = _as_ids(allowed)
        if self.kind != "flat" and len(allowed) <= self.config.exact_filter_limit:
            present, vectors = self._reconstruct_present(allowed)
            return _exact_search(matrix, present, vectors, k)
        selector = faiss.IDSelectorBatch(allowed)
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.config.hnsw_ef_search)
        elif self.kind == "ivf":
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self._index.nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        return self._index.search(matrix, k, params=params)


def _exact_search(
    queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    found = np.full((len(queries), k), -1, dtype=np.int64)
    if not len(ids):
        return scores, found
    similarity = queries @ vectors.T
    top = min(k, len(ids))
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :top]
    scores[:, :top] = np.take_along_axis(similarity, order, axis=1)
    found[:, :top] = ids[order]
    return scores, found
