"""The curvature-mass edit: keep the K-FAC eigen-pairs that carry the top `keep_mass` of curvature.

In the Kronecker eigenbasis the Fisher of a weight W (d_out x d_in) is diagonal with entries
lambda_i * mu_j (lambda from G, the output-gradient factor; mu from A, the input factor). Pairs are
ranked by that product and kept, largest first, until their sum reaches `keep_mass` of the total
(sum lambda)(sum mu). The low-curvature remainder, which carries memorized specifics, is zeroed:
W' = U_G (C * M) U_A^T with C = U_G^T W U_A.
"""

from dataclasses import dataclass

import torch

from lethe.edits.errors import InvalidArgument
from lethe.edits.spectral import Eigen


@dataclass(frozen=True)
class PairSelection:
    mask: torch.Tensor
    """Boolean (d_out, d_in): which eigen-pairs are kept."""
    kept_pairs: int
    achieved_mass: float
    """Kept curvature mass as a fraction of the total."""

    @property
    def total_pairs(self) -> int:
        return self.mask.numel()


def select_pairs(g_values: torch.Tensor, a_values: torch.Tensor, keep_mass: float) -> PairSelection:
    """The smallest set of pairs, taken in decreasing lambda_i * mu_j, whose mass reaches `keep_mass`.

    `keep_mass == 1` keeps every pair (the identity edit), including pairs of zero curvature.
    """
    if not 0 < keep_mass <= 1:
        raise InvalidArgument(f"keep_mass must be in (0, 1], got {keep_mass}")
    shape = (g_values.numel(), a_values.numel())
    if keep_mass == 1:
        return PairSelection(torch.ones(shape, dtype=torch.bool), shape[0] * shape[1], 1.0)
    products = torch.outer(g_values.double(), a_values.double()).flatten()
    total = float(g_values.double().sum() * a_values.double().sum())
    if total <= 0:
        raise InvalidArgument("the factors carry no curvature mass (all eigenvalues are zero)")
    order = torch.argsort(products, descending=True, stable=True)
    cumulative = torch.cumsum(products[order], dim=0)
    target = torch.tensor([keep_mass * total], dtype=cumulative.dtype)
    kept = min(int(torch.searchsorted(cumulative, target)) + 1, products.numel())
    mask = torch.zeros(products.numel(), dtype=torch.bool)
    mask[order[:kept]] = True
    return PairSelection(mask.view(shape), kept, float(cumulative[kept - 1]) / total)


def prune_weight(
    weight: torch.Tensor,
    eigen_a: Eigen,
    eigen_g: Eigen,
    keep_mass: float,
    *,
    transposed: bool = False,
) -> tuple[torch.Tensor, PairSelection]:
    """Apply the edit to one weight; returns the new weight (same dtype and layout) and the selection.

    `transposed` is for weights stored (d_in, d_out), as GPT-2's Conv1D stores them.
    """
    matrix = weight.T if transposed else weight
    d_out, d_in = matrix.shape
    if eigen_g.vectors.shape[0] != d_out or eigen_a.vectors.shape[0] != d_in:
        raise InvalidArgument(
            f"factor shapes (G {tuple(eigen_g.vectors.shape)}, A {tuple(eigen_a.vectors.shape)}) do "
            f"not match the weight ({d_out} x {d_in}); were the factors collected on another model?"
        )
    selection = select_pairs(eigen_g.values, eigen_a.values, keep_mass)
    compute = eigen_g.vectors.dtype
    u_g, u_a = eigen_g.vectors, eigen_a.vectors.to(compute)
    coefficients = u_g.T @ matrix.to(compute) @ u_a
    edited = u_g @ (coefficients * selection.mask.to(compute)) @ u_a.T
    edited = edited.to(weight.dtype)
    return (edited.T.contiguous() if transposed else edited), selection
