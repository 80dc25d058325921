"""Greedy text completions of text prompts, for instruments that score what a model answers."""

from collections.abc import Sequence

from lethe.edits.evaluation.generation import Progress, greedy_generate
from lethe.edits.evaluation.loading import LoadedModel


def complete(
    loaded: LoadedModel,
    prompts: Sequence[str],
    max_new_tokens: int,
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> list[str]:
    """The greedy continuation of each prompt as text, cut at the end-of-sequence token.

    Prompts are tokenized with the model's special tokens (a BOS where the model expects one) and
    batched in order of length, so a batch of short prompts is not padded to a long one's width.
    """
    tokenizer = loaded.tokenizer
    ids = [tokenizer(prompt, add_special_tokens=True)["input_ids"] for prompt in prompts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    generated = greedy_generate(
        loaded.model,
        [ids[i] for i in order],
        max_new_tokens,
        loaded.pad_id,
        batch_size=batch_size,
        progress=progress,
    )
    eos = tokenizer.eos_token_id
    texts = [""] * len(prompts)
    for i, output in zip(order, generated, strict=True):
        if eos is not None and eos in output:
            output = output[: output.index(eos)]
        texts[i] = tokenizer.decode(output, skip_special_tokens=True)
    return texts
