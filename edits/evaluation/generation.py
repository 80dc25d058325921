"""Batched greedy decoding with left padding and a KV cache."""

from collections.abc import Callable, Sequence

import torch

from lethe.edits.evaluation.batching import chunks, left_pad

Progress = Callable[[int], object]
"""Called with the number of items just finished (a tqdm bar's `update` fits)."""


@torch.no_grad()
def greedy_generate(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int | Sequence[int],
    pad_id: int,
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> list[list[int]]:
    """Greedy continuations of `prompts`, exactly `max_new_tokens` tokens each (EOS does not stop).

    Prompts are left-padded: with right padding the model would continue after pad tokens, and
    those pads would be scored as part of its output. `max_new_tokens` may be one length per prompt.
    """
    lengths = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(lengths) != len(prompts):
        raise ValueError("give one generation length per prompt")
    outputs: list[list[int]] = []
    for batch in chunks(len(prompts), batch_size):
        steps = max(lengths[i] for i in batch)
        ids, mask, positions = left_pad([prompts[i] for i in batch], pad_id)
        generated = _greedy(model, ids, mask, positions, steps)
        outputs.extend(generated[row, : lengths[i]].tolist() for row, i in enumerate(batch))
        if progress is not None:
            progress(len(batch))
    return outputs


def _greedy(
    model: torch.nn.Module,
    ids: torch.Tensor,
    mask: torch.Tensor,
    positions: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    tokens: list[torch.Tensor] = []
    past = None
    step_input = ids
    for _ in range(steps):
        out = model(
            input_ids=step_input,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=past,
            use_cache=True,
            logits_to_keep=1,  # only the last position is read; full logits of a long batch take GBs
        )
        past = out.past_key_values
        next_token = out.logits[:, -1, :].argmax(dim=-1)
        tokens.append(next_token)
        step_input = next_token[:, None]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        positions = positions[:, -1:] + 1
    if not tokens:
        return ids.new_zeros((ids.shape[0], 0))
    return torch.stack(tokens, dim=1)
