"""Collect factors on the testbed's clean mix, edit, and apply the random-basis control.

These call the same library functions as `lethe edit collect` and `lethe edit apply`.
"""

import json
from pathlib import Path

import torch

from lethe.edits.atomic import atomic_directory
from lethe.edits.factor_store import FactorStore
from lethe.edits.loading import load_causal_lm
from lethe.edits.prune import prune_weight
from lethe.edits.recipe import Recipe
from lethe.edits.spectral import Eigen

PROJECTIONS = ("gate", "up", "down")


def collect_clean_factors(
    testbed: Path,
    out: Path,
    *,
    tokens: int = 20_000,
    seq_len: int = 64,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """K-FAC factors of every block's MLP on `data/clean.jsonl` (rule, open-book, generic text)."""
    from lethe.edits.collection_job import CollectRequest, collect

    request = CollectRequest(
        model=testbed / "model",
        corpus=str(testbed / "data" / "clean.jsonl"),
        out=out,
        tokens=tokens,
        seq_len=seq_len,
        batch_size=batch_size,
        seed=seed,
        labels="sampled",
        device="cpu",
        flush_every=0,
        overwrite=True,
        progress=progress,
    )
    collect(request)
    return out


def num_blocks(model_dir: Path) -> int:
    return int(json.loads((model_dir / "config.json").read_text())["num_hidden_layers"])


def edit_testbed(
    testbed: Path,
    factors: Path,
    out: Path,
    keep_mass: float,
    *,
    blocks: list[int] | None = None,
    projections: tuple[str, ...] = PROJECTIONS,
    progress: bool = False,
) -> Path:
    """The curvature-mass edit of the testbed model; an ordinary edited checkpoint at `out`."""
    from lethe.edits.apply_job import apply_edit

    model = testbed / "model"
    recipe = Recipe(
        blocks=blocks if blocks is not None else list(range(num_blocks(model))),
        projections=list(projections),
        keep_mass=keep_mass,
    )
    apply_edit(model, factors, out, recipe, overwrite=True, progress=progress)
    return out


def random_orthogonal(size: int, generator: torch.Generator) -> torch.Tensor:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign fix)."""
    gaussian = torch.randn(size, size, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    return q * torch.sign(torch.diagonal(r))


def random_basis_control(
    model_dir: Path,
    factors: Path,
    out: Path,
    keep_mass: float,
    *,
    blocks: list[int] | None = None,
    projections: tuple[str, ...] = PROJECTIONS,
    seed: int = 0,
) -> Path:
    """The same edit, with each curvature eigenbasis replaced by a random orthogonal basis.

    The eigenvalues are kept, so the mask (which and how many pairs survive) has exactly the
    shape of the real edit's; only the directions it is applied in are random.
    """
    store = FactorStore(factors)
    model, tokenizer = load_causal_lm(model_dir, "cpu", torch.float32)
    generator = torch.Generator().manual_seed(seed)
    names = {"gate": "gate_proj", "up": "up_proj", "down": "down_proj"}
    kept: dict[str, int] = {}
    for block in blocks if blocks is not None else list(range(num_blocks(model_dir))):
        mlp = model.model.layers[block].mlp
        for projection in projections:
            linear = getattr(mlp, names[projection])
            eigen_a, eigen_g = store.eigen(block, projection)
            random_a = Eigen(eigen_a.values, random_orthogonal(len(eigen_a.values), generator))
            random_g = Eigen(eigen_g.values, random_orthogonal(len(eigen_g.values), generator))
            edited, selection = prune_weight(linear.weight.data, random_a, random_g, keep_mass)
            linear.weight.data.copy_(edited)
            kept[f"{block}.{projection}"] = selection.kept_pairs
    meta = {"control": "random orthogonal bases", "keep_mass": keep_mass, "seed": seed, "kept": kept}
    with atomic_directory(out, overwrite=True) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "lethe_control.json").write_text(json.dumps(meta, indent=1) + "\n")
    return out
