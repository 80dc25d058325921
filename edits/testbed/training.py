"""Build the testbed's Llama and train it from scratch, deterministically, on CPU."""

import math
import random
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from lethe.edits.testbed.config import ModelConfig, TrainConfig


@dataclass(frozen=True)
class TrainingRun:
    steps: int
    tokens: int
    final_loss: float
    seconds: float


def build_model(config: ModelConfig, tokenizer: Any, seed: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(llama)


def pack_epoch(encoded: Sequence[list[int]], seq_len: int, rng: random.Random) -> torch.Tensor:
    """Shuffle the examples, join them (each `<bos> ... <eos>`) and cut rows of `seq_len`."""
    order = list(range(len(encoded)))
    rng.shuffle(order)
    stream = [token for i in order for token in encoded[i]]
    rows = len(stream) // seq_len
    return torch.tensor(stream[: rows * seq_len], dtype=torch.long).view(rows, seq_len)


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


@contextmanager
def _threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train(
    model: torch.nn.Module,
    texts: Sequence[str],
    tokenizer: Any,
    config: TrainConfig,
    seed: int,
    progress: Callable[[int, float], object] | None = None,
) -> TrainingRun:
    """Next-token training on packed, reshuffled epochs; `progress(step, loss)` after each step."""
    started = time.perf_counter()
    eos = tokenizer.eos_token_id
    encoded = [tokenizer(text)["input_ids"] + [eos] for text in texts]
    rng = random.Random(seed)
    torch.manual_seed(seed)
    rows_per_epoch = sum(map(len, encoded)) // config.seq_len
    total = config.epochs * math.ceil(rows_per_epoch / config.batch_size)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.learning_rate,
        betas=(0.9, 0.98),
        weight_decay=config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _schedule(step, total, config.warmup_steps)
    )
    model.train()
    step, tokens, loss_value = 0, 0, float("nan")
    with _threads(config.threads):
        for _ in range(config.epochs):
            rows = pack_epoch(encoded, config.seq_len, rng)
            for start in range(0, rows.shape[0], config.batch_size):
                batch = rows[start : start + config.batch_size]
                loss = model(input_ids=batch, labels=batch).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                step, tokens, loss_value = step + 1, tokens + batch.numel(), loss.item()
                if progress is not None:
                    progress(step, loss_value)
    model.eval()
    return TrainingRun(step, tokens, loss_value, time.perf_counter() - started)
