"""Token-weighted perplexity: exp of the mean loss over every predicted token of the text.

The paper's code averages exp(batch loss) over batches, which weights short batches like long ones
and is not a perplexity of the text; here every token counts once.
"""

import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from lethe.edits.evaluation.batching import chunks
from lethe.edits.evaluation.datasets import load_texts
from lethe.edits.evaluation.generation import Progress
from lethe.edits.evaluation.loading import LoadedModel
from lethe.edits.evaluation.schema import DataRef, EvalResult
from lethe.edits.evaluation.token_stream import right_pad, token_blocks


class PerplexitySettings(BaseModel):
    seq_len: int = Field(128, ge=2)
    batch_size: int = Field(8, ge=1)
    max_tokens: int | None = Field(None, ge=2)


@torch.no_grad()
def total_loss(
    model: torch.nn.Module,
    blocks: Sequence[Sequence[int]],
    pad_id: int,
    *,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> tuple[float, int]:
    """(sum of next-token losses in nats, number of predicted tokens) over all blocks."""
    loss_sum, count = 0.0, 0
    for batch in chunks(len(blocks), batch_size):
        ids, mask = right_pad([blocks[i] for i in batch], pad_id)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        loss_sum += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum"
        ).item()
        count += int((labels != -100).sum())
        if progress is not None:
            progress(len(batch))
    return loss_sum, count


def perplexity_blocks(tokenizer: object, path: Path, settings: PerplexitySettings) -> list[list[int]]:
    return token_blocks(tokenizer, load_texts(path), settings.seq_len, settings.max_tokens)


def evaluate_perplexity(
    loaded: LoadedModel,
    text_path: Path,
    settings: PerplexitySettings | None = None,
    progress: Progress | None = None,
    blocks: list[list[int]] | None = None,
) -> EvalResult:
    settings = settings or PerplexitySettings()
    started = time.perf_counter()
    blocks = blocks or perplexity_blocks(loaded.tokenizer, text_path, settings)
    loss_sum, count = total_loss(
        loaded.model, blocks, loaded.pad_id, batch_size=settings.batch_size, progress=progress
    )
    mean = loss_sum / count
    return EvalResult(
        command="perplexity",
        model=loaded.ref,
        data=DataRef.of(text_path, blocks),
        settings=settings.model_dump(),
        metrics={"perplexity": math.exp(mean), "mean_loss": mean, "predicted_tokens": float(count)},
        seconds=time.perf_counter() - started,
    )
