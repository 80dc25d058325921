"""Sample a data-free corpus from the model once, as JSONL, so several collections can reuse it.

`lethe edit collect --corpus self` samples while it collects, one small batch at a time; sampling
in large batches is several times faster per token, and a file can be fingerprinted, inspected and
fed to collections over other blocks. Rows are drawn in batches seeded by `(seed, batch index)` and
appended to a hidden partial file, so an interrupted run resumes where it stopped; the corpus
appears at its path only when complete.
"""

import json
from collections.abc import Callable
from pathlib import Path

import torch

from lethe.edits.atomic import atomic_write_text, commit_file
from lethe.edits.corpus import SelfSampledSource
from lethe.edits.errors import AlreadyExists, InvalidArgument

OnRows = Callable[[int], None]


def partial_corpus_path(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def sample_corpus(
    model: torch.nn.Module,
    tokenizer: object,
    out: Path,
    *,
    tokens: int,
    seq_len: int = 256,
    batch_size: int = 32,
    seed: int = 0,
    on_rows: OnRows | None = None,
) -> int:
    """Write at least `tokens` sampled tokens to `out` (one JSONL line per row); return the row count."""
    if tokens <= 0 or seq_len < 2 or batch_size <= 0:
        raise InvalidArgument("--tokens and --batch-size must be positive and --seq-len at least 2")
    if out.exists():
        raise AlreadyExists(f"{out} already exists; choose another path or remove it")
    rows_needed = -(-tokens // seq_len)
    batches_needed = -(-rows_needed // batch_size)
    partial = partial_corpus_path(out)
    partial.parent.mkdir(parents=True, exist_ok=True)
    done_rows = _complete_rows(partial, batch_size)
    if on_rows is not None and done_rows:
        on_rows(done_rows)
    source = SelfSampledSource(model, tokenizer, seq_len, batch_size, seed)
    with partial.open("a", encoding="utf-8") as handle:
        for index, batch in source.batches(start=done_rows // batch_size):
            if index >= batches_needed:
                break
            for row in batch.tolist():
                handle.write(json.dumps({"text": tokenizer.decode(row, skip_special_tokens=True)}) + "\n")
            handle.flush()
            if on_rows is not None:
                on_rows(len(batch))
    commit_file(partial, out)
    return batches_needed * batch_size


def _complete_rows(partial: Path, batch_size: int) -> int:
    """Rows of whole batches already in the partial file; a torn last batch is cut off."""
    if not partial.exists():
        return 0
    lines = partial.read_text(encoding="utf-8").splitlines(keepends=True)
    whole = [line for line in lines if line.endswith("\n")]
    keep = len(whole) - len(whole) % batch_size
    atomic_write_text(partial, "".join(whole[:keep]))
    return keep
