"""Load a model to measure: a known name (via `edits.models`) or a local Hugging Face directory."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lethe.edits.errors import InvalidArgument, NotFound
from lethe.edits.evaluation.schema import ModelRef


@dataclass
class LoadedModel:
    ref: ModelRef
    model: Any
    tokenizer: Any

    @property
    def pad_id(self) -> int:
        for token_id in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id):
            if token_id is not None:
                return int(token_id)
        return 0


def resolve_path(name_or_path: str) -> Path:
    """A directory as given, else a known model name through `edits.models` where it exists."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        from lethe.edits.models import resolve_model
    except ImportError:
        raise NotFound(
            f"model {name_or_path!r}: no such directory (give the path of a Hugging Face "
            "checkpoint directory)"
        ) from None
    return Path(resolve_model(name_or_path)).resolve()


def edit_summary(path: Path) -> dict[str, Any] | None:
    """The recipe and parent of an edited checkpoint (`lethe_edit.json`), or None."""
    meta = path / "lethe_edit.json"
    if not meta.is_file():
        return None
    data = json.loads(meta.read_text(encoding="utf-8"))
    return {"recipe": data.get("recipe"), "parent": data.get("parent", {}).get("path")}


def load_model(name_or_path: str) -> LoadedModel:
    """Model in fp32 and eval mode, with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_path(name_or_path)
    if not (path / "config.json").is_file():
        raise InvalidArgument(f"{path} holds no config.json: not a Hugging Face checkpoint")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    ref = ModelRef(name=name_or_path, path=str(path), edit=edit_summary(path))
    return LoadedModel(ref=ref, model=model, tokenizer=tokenizer)
