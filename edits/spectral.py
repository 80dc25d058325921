"""Eigendecompositions of K-FAC factors, sorted by decreasing eigenvalue."""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Eigen:
    values: torch.Tensor
    """Eigenvalues in decreasing order, clamped at zero (round-off makes the smallest slightly negative)."""
    vectors: torch.Tensor
    """Orthonormal eigenvectors as columns, in the order of `values`."""


def eigendecompose(matrix: torch.Tensor, dtype: torch.dtype = torch.float64) -> Eigen:
    symmetric = matrix.to(dtype)
    symmetric = (symmetric + symmetric.T) / 2
    values, vectors = torch.linalg.eigh(symmetric)
    return Eigen(values.flip(0).clamp_min(0).contiguous(), vectors.flip(1).contiguous())
