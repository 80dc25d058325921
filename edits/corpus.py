"""Token batches for factor collection: text files, JSONL, directories of them, or the model itself.

Every source is addressed by batch index, so a resumed collection can start at batch `i` and see
exactly the batches an uninterrupted run would have seen from there on.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from lethe.edits.errors import InvalidArgument, NotFound
from lethe.edits.fingerprint import hash_files, text_fingerprint

SELF = "self"
_TEXT_SUFFIXES = (".txt", ".md")
_JSONL_SUFFIXES = (".jsonl",)
_SEGMENT_CHARS = 200_000  # tokenize huge documents in pieces to bound tokenizer memory


class BatchSource(Protocol):
    """Token batches by index; what identifies a corpus is `corpus_fingerprint`, not the source."""

    def batches(self, start: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield `(index, input_ids)` for batches `start, start + 1, ...` until the source ends."""
        ...


def corpus_files(path: Path) -> list[Path]:
    """The text and JSONL files a corpus path names, in a stable order."""
    if not path.exists():
        raise NotFound(
            f"corpus {str(path)!r} does not exist; give a .txt/.jsonl file, a directory "
            f"of them, or '{SELF}' to sample text from the model"
        )
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    files = [p for p in files if p.suffix in _TEXT_SUFFIXES + _JSONL_SUFFIXES]
    if not files:
        raise InvalidArgument(f"corpus {str(path)!r} holds no .txt, .md or .jsonl files")
    return files


def iter_documents(files: list[Path]) -> Iterator[str]:
    """Whole text files are one document each; JSONL files give one document per line's `text`."""
    for path in files:
        if path.suffix in _TEXT_SUFFIXES:
            yield path.read_text(encoding="utf-8", errors="replace")
            continue
        with path.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    text = record["text"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise InvalidArgument(
                        f"{path}:{line_number}: each JSONL line must be an object with a 'text' field"
                    ) from None
                if isinstance(text, str) and text:
                    yield text


@dataclass
class PackedTextSource:
    """Documents tokenized, joined with EOS, and cut into fixed-length rows that start with BOS."""

    root: Path
    tokenizer: object
    seq_len: int
    batch_size: int

    def __post_init__(self) -> None:
        self.files = corpus_files(self.root)

    def _token_stream(self) -> Iterator[int]:
        eos = getattr(self.tokenizer, "eos_token_id", None)
        for document in iter_documents(self.files):
            for start in range(0, len(document), _SEGMENT_CHARS):
                segment = document[start : start + _SEGMENT_CHARS]
                yield from self.tokenizer(segment, add_special_tokens=False)["input_ids"]
            if eos is not None:
                yield eos

    def _rows(self) -> Iterator[list[int]]:
        bos = getattr(self.tokenizer, "bos_token_id", None)
        prefix = [bos] if bos is not None else []
        body = self.seq_len - len(prefix)
        row: list[int] = []
        for token in self._token_stream():
            row.append(token)
            if len(row) == body:
                yield prefix + row
                row = []

    def batches(self, start: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
        rows: list[list[int]] = []
        index = 0
        for row in self._rows():
            rows.append(row)
            if len(rows) == self.batch_size:
                if index >= start:
                    yield index, torch.tensor(rows, dtype=torch.long)
                rows, index = [], index + 1
        if rows and index >= start:
            yield index, torch.tensor(rows, dtype=torch.long)


@dataclass
class SelfSampledSource:
    """Text sampled from the model itself (ancestral sampling from BOS): the data-free default.

    Batch `i` is drawn with a seed derived from `(seed, i)`, so any batch can be regenerated alone.
    """

    model: torch.nn.Module
    tokenizer: object
    seq_len: int
    batch_size: int
    seed: int

    def batches(self, start: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
        index = start
        while True:
            yield index, self._generate(index)
            index += 1

    @torch.no_grad()
    def _generate(self, index: int) -> torch.Tensor:
        start_token = getattr(self.tokenizer, "bos_token_id", None)
        if start_token is None:
            start_token = self.tokenizer.eos_token_id
        device = next(self.model.parameters()).device
        prompt = torch.full((self.batch_size, 1), start_token, dtype=torch.long, device=device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(derived_seed(self.seed, index))
            generated = self.model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=self.seq_len - 1,
                min_new_tokens=self.seq_len - 1,
                pad_token_id=self.tokenizer.eos_token_id,
            )
        return generated[:, : self.seq_len].cpu()


def text_corpus_fingerprint(root: Path) -> str:
    """The bytes and relative names of a text corpus's files."""
    return hash_files(corpus_files(root), root=root if root.is_dir() else root.parent)


def self_corpus_fingerprint(model_fingerprint: str, seq_len: int, seed: int) -> str:
    """Self-sampled text is fixed by the model, the row length and the seed."""
    return text_fingerprint(f"self:{model_fingerprint}:{seq_len}:{seed}")


def corpus_fingerprint(corpus: str, model_fingerprint: str, seq_len: int, seed: int) -> str:
    """What a corpus spec will produce, known without loading the model."""
    if corpus == SELF:
        return self_corpus_fingerprint(model_fingerprint, seq_len, seed)
    return text_corpus_fingerprint(Path(corpus))


def derived_seed(seed: int, index: int) -> int:
    """A per-batch seed: distinct for every (seed, index) pair, stable across runs."""
    return (seed * 1_000_003 + index * 7_919 + 12_345) % (2**63 - 1)
