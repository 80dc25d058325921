"""`lethe edit collect` and `lethe edit apply`."""

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Collect K-FAC factors and write memorization-pruned checkpoints.", no_args_is_help=True
)


def _int_list(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated block numbers like 10,11,12, got {value!r}"
        ) from None


def _str_list(value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Model name (see `lethe models list`) or checkpoint directory.")
]


@app.command()
def collect(
    model: ModelOption,
    corpus: Annotated[
        str,
        typer.Option(help="A .txt/.jsonl file (JSONL lines need 'text'), a directory of them, or 'self'."),
    ],
    out: Annotated[Path, typer.Option(help="Factor store directory to create.")],
    blocks: Annotated[
        str | None, typer.Option(help="Comma-separated transformer blocks to hook; default: all.")
    ] = None,
    projections: Annotated[
        str | None, typer.Option(help="Comma-separated MLP projections (gate,up,down); default: all.")
    ] = None,
    tokens: Annotated[int, typer.Option(help="Token budget: positions with a next-token label.")] = 200_000,
    labels: Annotated[
        str, typer.Option(help="'sampled' (from the model: true Fisher) or 'gold' (empirical Fisher).")
    ] = "sampled",
    seq_len: Annotated[int, typer.Option(help="Tokens per packed sequence.")] = 256,
    batch_size: Annotated[int, typer.Option(help="Sequences per batch.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed for sampled labels and self-sampled text.")] = 0,
    dtype: Annotated[str, typer.Option(help="Accumulation precision: float32 or float64.")] = "float32",
    device: Annotated[str, typer.Option(help="'auto', 'cpu', 'cuda' or 'cuda:N'.")] = "auto",
    model_dtype: Annotated[
        str, typer.Option(help="Model weights precision: auto (fp32 on CPU, bf16 on GPU), float32, bfloat16.")
    ] = "auto",
    flush_every: Annotated[
        int, typer.Option(help="Save partial sums every N batches, so a rerun resumes; 0 never.")
    ] = 20,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing store or partial collection.")] = False,
) -> None:
    """Collect K-FAC factors A = E(a aᵀ) over MLP projection inputs and G = E(g gᵀ) over output gradients."""
    from lethe.edits.collection_job import CollectRequest
    from lethe.edits.collection_job import collect as run_collect
    from lethe.edits.models import resolve_model

    request = _request(
        CollectRequest,
        model=resolve_model(model),
        corpus=corpus,
        out=out,
        blocks=_int_list(blocks),
        projections=_str_list(projections),
        tokens=tokens,
        labels=labels,
        seq_len=seq_len,
        batch_size=batch_size,
        seed=seed,
        dtype=dtype,
        device=device,
        model_dtype=model_dtype,
        flush_every=flush_every,
        overwrite=overwrite,
    )
    manifest = run_collect(request)
    typer.echo(
        f"factors: {out} ({manifest.tokens} tokens, blocks {manifest.settings.blocks}, "
        f"projections {manifest.settings.projections}, labels {manifest.settings.labels})"
    )


@app.command("reference-corpus")
def reference_corpus(
    out: Annotated[Path, typer.Option(help="Directory to write (refused if it exists).")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Write the collection corpus the shipped Gemma recipe was chosen on: the Python language
    reference (standard library) and, where Vim is installed, the Vim user manual."""
    from lethe.edits.reference_corpus import write_reference_corpus

    for path in write_reference_corpus(out, overwrite=overwrite):
        typer.echo(f"{path} ({path.stat().st_size:,} bytes)")


@app.command("sample-corpus")
def sample_corpus(
    model: ModelOption,
    out: Annotated[Path, typer.Option(help="JSONL file to write (one sampled row per line, field 'text').")],
    tokens: Annotated[int, typer.Option(help="Tokens to sample, at least.")] = 200_000,
    seq_len: Annotated[int, typer.Option(help="Tokens per sampled row, BOS included.")] = 256,
    batch_size: Annotated[int, typer.Option(help="Rows sampled together; larger is faster per token.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed; batch i uses a seed derived from (seed, i).")] = 0,
    device: Annotated[str, typer.Option(help="'auto', 'cpu', 'cuda' or 'cuda:N'.")] = "auto",
) -> None:
    """Sample a data-free collection corpus from the model (temperature 1 from BOS), resumably."""
    from tqdm import tqdm

    from lethe.edits.corpus_sampling import sample_corpus as run_sampling
    from lethe.edits.loading import load_causal_lm, resolve_device, resolve_dtype
    from lethe.edits.models import resolve_model

    torch_device = resolve_device(device)
    dtype = resolve_dtype("auto", torch_device)
    loaded, tokenizer = load_causal_lm(resolve_model(model), torch_device, dtype)
    with tqdm(total=-(-tokens // seq_len), desc="sampling", unit="row") as bar:
        rows = run_sampling(
            loaded,
            tokenizer,
            out,
            tokens=tokens,
            seq_len=seq_len,
            batch_size=batch_size,
            seed=seed,
            on_rows=bar.update,
        )
    typer.echo(f"corpus: {out} ({rows} rows of {seq_len} tokens)")


@app.command()
def apply(
    model: ModelOption,
    factors: Annotated[Path, typer.Option(help="Factor store written by `lethe edit collect`.")],
    out: Annotated[Path, typer.Option(help="Checkpoint directory to create.")],
    recipe: Annotated[
        Path | None, typer.Option(help="Recipe file (YAML or JSON); instead of --blocks/--keep-mass.")
    ] = None,
    blocks: Annotated[str | None, typer.Option(help="Comma-separated blocks to edit.")] = None,
    keep_mass: Annotated[
        float | None, typer.Option(help="Fraction of curvature mass to keep, in (0, 1].")
    ] = None,
    projections: Annotated[str, typer.Option(help="Comma-separated projections to edit.")] = "gate,up,down",
    eigen_dtype: Annotated[str, typer.Option(help="Eigendecomposition precision.")] = "float64",
    allow_other_model: Annotated[
        bool, typer.Option(help="Apply factors that were collected on a different model.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing checkpoint at --out.")] = False,
) -> None:
    """Prune the low-curvature part of MLP weights and write a new checkpoint."""
    import torch

    from lethe.edits.apply_job import apply_edit
    from lethe.edits.models import resolve_model
    from lethe.edits.recipe import Recipe

    if recipe is not None and (blocks is not None or keep_mass is not None):
        raise typer.BadParameter("give either --recipe or --blocks/--keep-mass, not both")
    if recipe is not None:
        parsed = Recipe.from_file(recipe)
    elif blocks is None or keep_mass is None:
        raise typer.BadParameter("give --recipe FILE, or both --blocks and --keep-mass")
    else:
        parsed = Recipe.parse(
            {"blocks": _int_list(blocks), "keep_mass": keep_mass, "projections": _str_list(projections)},
            source="the options",
        )
    result = apply_edit(
        resolve_model(model),
        factors,
        out,
        parsed,
        overwrite=overwrite,
        allow_other_model=allow_other_model,
        eigen_dtype=getattr(torch, eigen_dtype),
    )
    for matrix in result.manifest["matrices"]:
        typer.echo(
            f"  block {matrix['block']:>3} {matrix['projection']:<4} keep {matrix['keep_mass']:.3f} "
            f"-> mass {matrix['achieved_mass']:.4f}, {matrix['kept_pairs']}/{matrix['total_pairs']} pairs"
        )
    typer.echo(f"checkpoint: {result.checkpoint}")


def _block_sets(value: str) -> list[list[int]]:
    """'10-12;14' -> [[10, 11, 12], [14]]; each set is a comma list or a range a-b."""
    sets = []
    for part in value.split(";"):
        blocks: list[int] = []
        for piece in filter(None, (p.strip() for p in part.split(","))):
            low, _, high = piece.partition("-")
            try:
                blocks.extend(range(int(low), int(high or low) + 1))
            except ValueError:
                raise typer.BadParameter(
                    f"block sets look like '10-12;14,15', got {value!r}", param_hint="--blocks"
                ) from None
        if blocks:
            sets.append(blocks)
    if not sets:
        raise typer.BadParameter("give at least one block set, like '10-12'", param_hint="--blocks")
    return sets


@app.command()
def sweep(
    model: ModelOption,
    factors: Annotated[Path, typer.Option(help="Factor store holding every block of the grid.")],
    blocks: Annotated[str, typer.Option(help="Block sets separated by ';', each '10-12' or '10,12'.")],
    keep_mass: Annotated[str, typer.Option(help="Comma-separated kept masses rho, each in (0, 1].")],
    memorized_set: Annotated[
        Path, typer.Option("--set", help="Memorized prompt/target set (see `lethe eval memorization`).")
    ],
    text: Annotated[Path, typer.Option(help="Clean held-out text for perplexity and agreement.")],
    out: Annotated[Path, typer.Option(help="Directory for sweep.json, sweep.md and sweep.png.")],
    projections: Annotated[str, typer.Option(help="Comma-separated projections to edit.")] = "gate,up,down",
    batch_size: Annotated[int, typer.Option(help="Items per generation batch.", min=1)] = 16,
    max_text_tokens: Annotated[
        int | None, typer.Option(help="Use at most this many tokens of --text.", min=2)
    ] = None,
) -> None:
    """Measure every recipe of a grid (block sets x kept mass) without writing checkpoints; resumable."""
    from lethe.edits.models import resolve_model
    from lethe.edits.sweep import SweepGrid, SweepSettings, run_sweep
    from lethe.edits.sweep_report import sweep_plot, sweep_table

    try:
        masses = [float(v) for v in keep_mass.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected numbers like 0.99,0.999, got {keep_mass!r}") from None
    grid = _request(
        SweepGrid, block_sets=_block_sets(blocks), keep_masses=masses, projections=_str_list(projections)
    )
    settings = SweepSettings(batch_size=batch_size, max_text_tokens=max_text_tokens)
    report = run_sweep(resolve_model(model), factors, grid, memorized_set, text, out, settings, typer.echo)
    table = sweep_table(report)
    (out / "sweep.md").write_text(table, encoding="utf-8")
    sweep_plot(report, out / "sweep.png")
    typer.echo(table)
    typer.echo(f"wrote {out / 'sweep.json'}, sweep.md and sweep.png")


def _request(model_cls: type, **values: object) -> object:
    """Build a pydantic request; validation problems become one CLI error naming each option."""
    from pydantic import ValidationError

    from lethe.edits.errors import InvalidArgument, problems

    try:
        return model_cls(**values)
    except ValidationError as error:
        flags = "; ".join(
            f"--{where.split('.')[0].replace('_', '-')}: {message}" for where, message in problems(error)
        )
        raise InvalidArgument(flags) from None
