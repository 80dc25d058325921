"""Texts as one token stream cut into fixed-length blocks (for perplexity and agreement)."""

from collections.abc import Sequence
from typing import Any

import torch

from lethe.edits.errors import InvalidArgument


def special_prefix(tokenizer: Any) -> list[int]:
    """The tokens the tokenizer puts before any text (Gemma's BOS), so inputs start as in training."""
    return list(tokenizer("", add_special_tokens=True)["input_ids"])


def token_blocks(
    tokenizer: Any, texts: Sequence[str], seq_len: int, max_tokens: int | None = None
) -> list[list[int]]:
    """Each text tokenized with the model's special tokens, joined, cut into `seq_len` blocks; a
    block that does not start with the tokens the tokenizer puts before any text (Gemma's BOS; none
    for many models) gets them prepended.

    Every block then starts as a document does in training: Gemma, whose training sequences all start
    with BOS, is lost without it (perplexity ~350 instead of ~30 on plain prose). The leading tokens
    are context, never predicted. The last block may be shorter; a block of one token is dropped.
    """
    lead = special_prefix(tokenizer)
    if seq_len < len(lead) + 2:
        raise InvalidArgument(f"--seq-len must be at least {len(lead) + 2}")
    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=True)["input_ids"])
        if max_tokens is not None and len(stream) >= max_tokens:
            stream = stream[:max_tokens]
            break
    blocks: list[list[int]] = []
    position = 0
    while position < len(stream):
        starts_as_document = stream[position : position + len(lead)] == lead
        room = seq_len if starts_as_document else seq_len - len(lead)
        chunk = stream[position : position + room]
        blocks.append(chunk if starts_as_document else lead + chunk)
        position += room
    blocks = [block for block in blocks if len(block) >= 2]
    if not blocks:
        raise InvalidArgument("the text is too short: it needs at least two tokens")
    return blocks


def right_pad(blocks: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask); right padding is right here: nothing is generated."""
    width = max(len(block) for block in blocks)
    ids = torch.full((len(blocks), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, block in enumerate(blocks):
        ids[i, : len(block)] = torch.tensor(list(block), dtype=torch.long)
        mask[i, : len(block)] = 1
    return ids, mask
