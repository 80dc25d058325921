"""Load a model to measure: a known name or a local Hugging Face directory (`resolve_model`), with
the one loader (`load_causal_lm`), in fp32 on the CPU."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lethe.edits.edit_manifest import EditManifest
from lethe.edits.evaluation.schema import ModelRef
from lethe.edits.loading import load_causal_lm
from lethe.edits.models.resolve import resolve_model


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


def edit_summary(path: Path) -> dict[str, Any] | None:
    """The recipe and parent of an edited checkpoint (`lethe_edit.json`), or None."""
    manifest = EditManifest.read(path)
    if manifest is None:
        return None
    return {"recipe": manifest.recipe.model_dump(mode="json"), "parent": manifest.parent.path}


def load_model(name_or_path: str) -> LoadedModel:
    """Model in fp32 and eval mode, with its tokenizer."""
    path = resolve_model(name_or_path)
    model, tokenizer = load_causal_lm(path, "cpu", torch.float32)
    ref = ModelRef(name=name_or_path, path=str(path), edit=edit_summary(path))
    return LoadedModel(ref=ref, model=model, tokenizer=tokenizer)
