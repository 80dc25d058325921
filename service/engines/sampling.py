"""Per-request token selection and incremental detokenization with stop strings."""

import torch

from lethe.service.engines.base import Sampling


def make_generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def choose_token(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> int:
    """One token id from a row of logits (1-D), following `sampling`."""
    if sampling.greedy:
        return int(torch.argmax(logits))
    scores = logits.float() / sampling.temperature
    if 0 < sampling.top_k < scores.numel():
        kth = torch.topk(scores, sampling.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        cumulative = torch.softmax(sorted_scores, dim=-1).cumsum(dim=-1)
        # Drop tokens once the mass before them already reaches top_p (the first always stays).
        drop = cumulative - torch.softmax(sorted_scores, dim=-1) >= sampling.top_p
        scores = scores.scatter(0, order[drop], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


class TextTracker:
    """Turns the growing list of generated ids into safe-to-emit text deltas.

    Text that could still become a stop string, or ends in an incomplete UTF-8 sequence, is
    held back until the next token decides it.
    """

    def __init__(self, tokenizer, stop: tuple[str, ...]) -> None:
        self._tokenizer = tokenizer
        self._stop = tuple(s for s in stop if s)
        self._longest_stop = max((len(s) for s in self._stop), default=0)
        self._emitted = 0
        self.text = ""

    def update(self, token_ids: list[int]) -> tuple[str, bool]:
        """The new delta and whether a stop string was reached (the text is then cut before it)."""
        text = self._tokenizer.decode(token_ids, skip_special_tokens=True)
        # A stop string not found before cannot start earlier than this: only the tail is searched.
        start = max(0, self._emitted - self._longest_stop)
        cut = min((i for i in (text.find(s, start) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text = text[:cut]
            return self._take(len(self.text)), True
        self.text = text
        end = len(text)
        if text.endswith("\ufffd"):
            end = len(text.rstrip("\ufffd"))
        end -= self._held_for_stop(text[:end])
        return self._take(max(end, self._emitted)), False

    def flush(self) -> str:
        return self._take(len(self.text))

    def _held_for_stop(self, text: str) -> int:
        held = 0
        for stop in self._stop:
            for k in range(min(len(stop) - 1, len(text)), held, -1):
                if text.endswith(stop[:k]):
                    held = k
                    break
        return held

    def _take(self, end: int) -> str:
        delta = self.text[self._emitted : end]
        self._emitted = max(self._emitted, end)
        return delta
