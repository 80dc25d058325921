"""The curvature-mass edit: identity at rho = 1, minimal mass-reaching selection, staircase shape."""

import pytest
import torch

from lethe.edits.errors import InvalidArgument
from lethe.edits.prune import prune_weight, select_pairs
from lethe.edits.spectral import eigendecompose


def _random_factor(size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(4 * size, size, generator=generator, dtype=torch.float64)
    x = x * torch.logspace(0, -3, size, dtype=torch.float64)  # a spread spectrum, as real factors have
    return x.T @ x / x.shape[0]


@pytest.fixture
def factors() -> tuple:
    d_out, d_in = 12, 8
    return eigendecompose(_random_factor(d_in, 1)), eigendecompose(_random_factor(d_out, 2)), (d_out, d_in)


def test_keep_mass_one_returns_the_weight(factors: tuple) -> None:
    eigen_a, eigen_g, shape = factors
    weight = torch.randn(shape, dtype=torch.float32)
    edited, selection = prune_weight(weight, eigen_a, eigen_g, 1.0)
    assert selection.kept_pairs == weight.numel() and selection.achieved_mass == 1.0
    torch.testing.assert_close(edited, weight, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("keep_mass", [0.05, 0.3, 0.6, 0.9, 0.99, 0.9999])
def test_selection_reaches_keep_mass_and_is_minimal(factors: tuple, keep_mass: float) -> None:
    eigen_a, eigen_g, _ = factors
    selection = select_pairs(eigen_g.values, eigen_a.values, keep_mass)
    products = torch.outer(eigen_g.values, eigen_a.values)
    total = products.sum()
    kept_mass = products[selection.mask].sum()
    assert kept_mass / total >= keep_mass
    assert selection.achieved_mass == pytest.approx(float(kept_mass / total), rel=1e-12)
    assert selection.kept_pairs == int(selection.mask.sum())
    smallest_kept = products[selection.mask].min()
    assert (kept_mass - smallest_kept) / total < keep_mass, "dropping the last kept pair must fall below rho"
    assert products[~selection.mask].max() <= smallest_kept, "pairs are kept in decreasing curvature"


@pytest.mark.parametrize("keep_mass", [0.2, 0.5, 0.8, 0.95])
def test_kept_set_is_a_staircase(factors: tuple, keep_mass: float) -> None:
    eigen_a, eigen_g, _ = factors
    mask = select_pairs(eigen_g.values, eigen_a.values, keep_mass).mask
    widths = mask.sum(dim=1)
    for row, width in enumerate(widths.tolist()):
        assert mask[row, :width].all() and not mask[row, width:].any(), "each row keeps a prefix"
    assert (widths[:-1] >= widths[1:]).all(), "prefixes shrink as lambda decreases"


def test_edit_equals_the_sum_over_kept_eigen_pairs(factors: tuple) -> None:
    eigen_a, eigen_g, shape = factors
    weight = torch.randn(shape, dtype=torch.float64)
    edited, selection = prune_weight(weight, eigen_a, eigen_g, 0.7)
    expected = torch.zeros(shape, dtype=torch.float64)
    for i, j in selection.mask.nonzero().tolist():
        u, v = eigen_g.vectors[:, i], eigen_a.vectors[:, j]
        expected += (u @ weight @ v) * torch.outer(u, v)
    torch.testing.assert_close(edited, expected)
    assert 0 < selection.kept_pairs < weight.numel()


def test_transposed_weights_are_edited_in_their_own_layout(factors: tuple) -> None:
    eigen_a, eigen_g, shape = factors
    weight = torch.randn(shape, dtype=torch.float64)
    plain, _ = prune_weight(weight, eigen_a, eigen_g, 0.7)
    stored_transposed, _ = prune_weight(weight.T.contiguous(), eigen_a, eigen_g, 0.7, transposed=True)
    torch.testing.assert_close(stored_transposed, plain.T)


@pytest.mark.parametrize("keep_mass", [0.0, -0.1, 1.01])
def test_keep_mass_outside_the_interval_is_refused(factors: tuple, keep_mass: float) -> None:
    eigen_a, eigen_g, _ = factors
    with pytest.raises(InvalidArgument, match="keep_mass"):
        select_pairs(eigen_g.values, eigen_a.values, keep_mass)


def test_mismatched_factor_shapes_are_refused(factors: tuple) -> None:
    eigen_a, eigen_g, shape = factors
    with pytest.raises(InvalidArgument, match="do not match"):
        prune_weight(torch.randn(shape[1], shape[0]), eigen_a, eigen_g, 0.5)
