"""Padding token-id lists into batches."""

from collections.abc import Iterator, Sequence

import torch


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad rows to one length: (input_ids, attention_mask, position_ids).

    Left padding puts every row's last real token in the last column, so the next token of every
    row is predicted at the same position; positions restart at 0 on each row's first real token.
    """
    if not rows or any(len(row) == 0 for row in rows):
        raise ValueError("every row must hold at least one token")
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(list(row), dtype=torch.long)
        mask[i, width - len(row) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return ids, mask, positions


def chunks(count: int, size: int) -> Iterator[range]:
    """Consecutive index ranges of at most `size` covering range(count)."""
    if size < 1:
        raise ValueError("the batch size must be at least 1")
    for start in range(0, count, size):
        yield range(start, min(start + size, count))
