"""`lethe edit collect`: resolve the model and corpus, collect resumably, write the factor store.

Partial sums live in `OUT.partial/sums.safetensors`, replaced atomically every `flush_every`
batches. Rerunning the same command continues from there; the finished store appears at OUT in one
rename, so a reader never sees a half-written store.
"""

import json
import shutil
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from lethe.edits.atomic import atomic_directory, atomic_file
from lethe.edits.collect import Collector, FactorSums, OnBatch
from lethe.edits.corpus import SELF, BatchSource, PackedTextSource, SelfSampledSource, corpus_fingerprint
from lethe.edits.errors import AlreadyExists, InvalidArgument
from lethe.edits.factor_store import (
    MANIFEST,
    CollectSettings,
    CorpusInfo,
    FactorManifest,
    ModelInfo,
    write_factor_store,
)
from lethe.edits.fingerprint import model_fingerprint
from lethe.edits.loading import Checkpoint, load_causal_lm, resolve_device, resolve_dtype

SUMS_FILE = "sums.safetensors"


class CollectRequest(BaseModel):
    """What `lethe edit collect` was asked to do."""

    model_config = ConfigDict(frozen=True)
    model: Path = Field(description="Checkpoint directory of the model (names are resolved before).")
    corpus: str = Field(description="A .txt/.jsonl file, a directory of them, or 'self'.")
    out: Path
    blocks: list[int] | None = Field(None, description="Blocks to hook; None means all.")
    projections: list[str] | None = Field(None, description="None means every MLP projection.")
    tokens: int = Field(200_000, gt=0, description="Token budget (positions with a next-token label).")
    labels: Literal["sampled", "gold"] = "sampled"
    seq_len: int = Field(256, ge=2)
    batch_size: int = Field(4, gt=0)
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"
    device: str = "auto"
    model_dtype: str = "auto"
    flush_every: int = Field(20, ge=0, description="Batches between flushes of partial sums; 0 never.")
    overwrite: bool = False
    progress: bool = True


def partial_dir(out: Path) -> Path:
    return out.parent / f"{out.name}.partial"


def _settings(request: CollectRequest, spec: Checkpoint) -> CollectSettings:
    blocks = request.blocks if request.blocks is not None else list(range(spec.num_blocks))
    projections = request.projections or list(spec.layout.projections)
    bad_blocks = [b for b in blocks if not 0 <= b < spec.num_blocks]
    if bad_blocks:
        raise InvalidArgument(
            f"blocks {bad_blocks} do not exist: the model has blocks 0..{spec.num_blocks - 1}"
        )
    unknown = [p for p in projections if p not in spec.layout.projections]
    if unknown:
        raise InvalidArgument(
            f"projections {unknown} do not exist in a {spec.layout.family} MLP; "
            f"it has {list(spec.layout.projections)}"
        )
    return CollectSettings(
        blocks=sorted(set(blocks)),
        projections=[p for p in spec.layout.projections if p in projections],
        labels=request.labels,
        seq_len=request.seq_len,
        batch_size=request.batch_size,
        seed=request.seed,
        dtype=request.dtype,
    )


def _identity(model: ModelInfo, corpus: CorpusInfo, settings: CollectSettings) -> dict[str, str]:
    """What must match for partial sums to be resumed or a finished store to be reused."""
    return {
        "model": model.fingerprint,
        "corpus": corpus.fingerprint,
        "settings": settings.model_dump_json(),
    }


def _reusable_store(out: Path, identity: dict[str, str], tokens: int) -> FactorManifest:
    """The finished store at `out` if it answers this request, else an error saying why not."""
    manifest_path = out / MANIFEST
    if not manifest_path.is_file():
        raise AlreadyExists(f"{out} exists and is not a factor store; choose another --out")
    manifest = FactorManifest.model_validate(json.loads(manifest_path.read_text()))
    if _identity(manifest.model, manifest.corpus, manifest.settings) != identity:
        raise AlreadyExists(
            f"{out} already exists and was collected with other settings (model, corpus or options); "
            "choose another --out or pass --overwrite"
        )
    if manifest.tokens < tokens:
        raise AlreadyExists(
            f"{out} holds {manifest.tokens} tokens, fewer than --tokens {tokens}; "
            "pass --overwrite to collect again with the larger budget"
        )
    return manifest


def collect(request: CollectRequest, on_batch: OnBatch | None = None) -> FactorManifest:
    """Run (or resume) a collection; `on_batch(batches, tokens)` is called after every batch."""
    spec = Checkpoint.read(request.model)
    settings = _settings(request, spec)
    model_info = ModelInfo(
        path=str(spec.path),
        fingerprint=model_fingerprint(spec.path),
        model_type=spec.model_type,
        family=spec.layout.family,
        num_blocks=spec.num_blocks,
    )
    corpus_info = CorpusInfo(
        spec=request.corpus,
        fingerprint=corpus_fingerprint(
            request.corpus, model_info.fingerprint, settings.seq_len, settings.seed
        ),
    )
    identity = _identity(model_info, corpus_info, settings)
    if request.out.exists() and not request.overwrite:  # decided before the model is loaded
        finished = _reusable_store(request.out, identity, request.tokens)
        _say(request, f"factors already collected at {request.out} ({finished.tokens} tokens)")
        return finished

    device = resolve_device(request.device)
    model, tokenizer = load_causal_lm(spec.path, device, resolve_dtype(request.model_dtype, device))
    source = _source(request, model, tokenizer)

    targets = [(block, proj) for block in settings.blocks for proj in settings.projections]
    sums = _resume(request, identity, device)
    collector = Collector(
        model,
        spec.layout,
        targets,
        labels=settings.labels,
        seed=settings.seed,
        dtype=getattr(torch, settings.dtype),
    )
    work = partial_dir(request.out)
    work.mkdir(parents=True, exist_ok=True)

    def flush(current: FactorSums) -> None:
        with atomic_file(work / SUMS_FILE) as staging:
            current.save(staging, identity)

    with tqdm(
        total=request.tokens,
        initial=min(sums.tokens, request.tokens),
        unit="tok",
        unit_scale=True,
        desc="collect",
        disable=not request.progress,
        dynamic_ncols=True,
    ) as bar:

        def advance(batches: int, tokens: int) -> None:
            bar.update(min(tokens, request.tokens) - bar.n)
            if on_batch:
                on_batch(batches, tokens)

        collector.run(
            source, request.tokens, sums, on_batch=advance, flush=flush, flush_every=request.flush_every
        )
    if sums.tokens < request.tokens:
        _say(request, f"corpus ended after {sums.tokens} tokens (budget {request.tokens})")
    flush(sums)
    with atomic_directory(request.out, overwrite=request.overwrite) as staging:
        manifest = write_factor_store(
            staging,
            sums.means(),
            model=model_info,
            corpus=corpus_info,
            settings=settings,
            tokens=sums.tokens,
            sequences=sums.sequences,
        )
    shutil.rmtree(work, ignore_errors=True)
    return manifest


def _resume(request: CollectRequest, identity: dict[str, str], device: torch.device) -> FactorSums:
    sums = FactorSums()
    saved = partial_dir(request.out) / SUMS_FILE
    if not saved.is_file():
        return sums
    metadata = sums.load(saved, device)
    if any(metadata.get(key) != value for key, value in identity.items()):
        if request.overwrite:
            return FactorSums()
        raise AlreadyExists(
            f"{saved.parent} holds a partial collection with other settings (model, corpus or "
            "options differ); rerun the original command to resume it, or pass --overwrite"
        )
    _say(request, f"resuming at batch {sums.batches} ({sums.tokens} tokens already collected)")
    return sums


def _source(request: CollectRequest, model: torch.nn.Module, tokenizer: object) -> BatchSource:
    if request.corpus == SELF:
        return SelfSampledSource(model, tokenizer, request.seq_len, request.batch_size, request.seed)
    return PackedTextSource(Path(request.corpus), tokenizer, request.seq_len, request.batch_size)


def _say(request: CollectRequest, message: str) -> None:
    if request.progress:
        tqdm.write(message)
