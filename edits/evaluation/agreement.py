"""nDCG@k of a model's top-k next tokens against a reference model's (Merullo et al. 2025, §6).

At every position, the reference's top-k tokens carry relevance k - r + 1 by their rank r; the
model's top-k list is scored by DCG with discount 1/log2(i + 1) and normalized by the reference's
own DCG, so identical rankings score 1.
"""

import time
from pathlib import Path

import torch
from pydantic import BaseModel, Field

from lethe.edits.errors import InvalidArgument
from lethe.edits.evaluation.batching import chunks
from lethe.edits.evaluation.datasets import load_texts
from lethe.edits.evaluation.generation import Progress
from lethe.edits.evaluation.loading import LoadedModel
from lethe.edits.evaluation.schema import DataRef, EvalResult
from lethe.edits.evaluation.token_stream import right_pad, token_blocks


class AgreementSettings(BaseModel):
    k: int = Field(10, ge=1)
    seq_len: int = Field(128, ge=2)
    batch_size: int = Field(8, ge=1)
    max_tokens: int | None = Field(None, ge=2)


def ndcg_at_k(model_top: torch.Tensor, reference_top: torch.Tensor) -> torch.Tensor:
    """nDCG per row of two (N, k) tensors of token ids, each row ranked best first."""
    k = reference_top.shape[-1]
    relevance = torch.arange(k, 0, -1, dtype=torch.float64)  # rank r -> k - r + 1
    discount = 1.0 / torch.log2(torch.arange(k, dtype=torch.float64) + 2.0)
    matches = (model_top[:, :, None] == reference_top[:, None, :]).to(torch.float64)
    gains = (matches * relevance).sum(dim=-1)
    return (gains * discount).sum(dim=-1) / (relevance * discount).sum()


@torch.no_grad()
def agreement_sums(
    model: torch.nn.Module,
    reference: torch.nn.Module,
    blocks: list[list[int]],
    pad_id: int,
    settings: AgreementSettings,
    progress: Progress | None = None,
) -> tuple[float, float, int]:
    """(sum of nDCG@k, number of equal top-1 tokens, positions) over every real position."""
    ndcg_sum, top1_sum, count = 0.0, 0.0, 0
    for batch in chunks(len(blocks), settings.batch_size):
        ids, mask = right_pad([blocks[i] for i in batch], pad_id)
        real = mask.bool().reshape(-1)
        ours = model(input_ids=ids, attention_mask=mask).logits
        theirs = reference(input_ids=ids, attention_mask=mask).logits
        ours_top = ours.topk(settings.k, dim=-1).indices.reshape(-1, settings.k)[real]
        theirs_top = theirs.topk(settings.k, dim=-1).indices.reshape(-1, settings.k)[real]
        ndcg_sum += float(ndcg_at_k(ours_top, theirs_top).sum())
        top1_sum += float((ours_top[:, 0] == theirs_top[:, 0]).sum())
        count += int(real.sum())
        if progress is not None:
            progress(len(batch))
    return ndcg_sum, top1_sum, count


def check_same_vocabulary(loaded: LoadedModel, reference: LoadedModel) -> None:
    ours, theirs = loaded.model.config.vocab_size, reference.model.config.vocab_size
    if ours != theirs or loaded.tokenizer.get_vocab() != reference.tokenizer.get_vocab():
        raise InvalidArgument(
            f"{loaded.ref.name} and the reference {reference.ref.name} use different vocabularies;"
            " agreement compares next-token rankings and needs the same tokenizer"
        )


def agreement_blocks(tokenizer: object, path: Path, settings: AgreementSettings) -> list[list[int]]:
    return token_blocks(tokenizer, load_texts(path), settings.seq_len, settings.max_tokens)


def evaluate_agreement(
    loaded: LoadedModel,
    reference: LoadedModel,
    text_path: Path,
    settings: AgreementSettings | None = None,
    progress: Progress | None = None,
    blocks: list[list[int]] | None = None,
) -> EvalResult:
    settings = settings or AgreementSettings()
    check_same_vocabulary(loaded, reference)
    started = time.perf_counter()
    blocks = blocks or agreement_blocks(reference.tokenizer, text_path, settings)
    ndcg_sum, top1_sum, count = agreement_sums(
        loaded.model, reference.model, blocks, reference.pad_id, settings, progress
    )
    return EvalResult(
        command="agreement",
        model=loaded.ref,
        reference=reference.ref,
        data=DataRef.of(text_path, blocks),
        settings=settings.model_dump(),
        metrics={
            f"ndcg@{settings.k}": ndcg_sum / count,
            "top1_agreement": top1_sum / count,
            "positions": float(count),
        },
        seconds=time.perf_counter() - started,
    )
