"""Loading a causal LM (the one loader: the edits, the evaluation and the service use it) and what
the edits need to know about a checkpoint."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lethe.edits.architectures import MlpLayout, layout_for
from lethe.edits.errors import InvalidArgument, NotFound


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint directory and its MLP layout, read from config.json without loading weights."""

    path: Path
    model_type: str
    num_blocks: int
    layout: MlpLayout

    @classmethod
    def read(cls, path: Path) -> "Checkpoint":
        config_path = Path(path) / "config.json"
        if not config_path.is_file():
            raise NotFound(f"{path} is not a Hugging Face checkpoint directory (no config.json)")
        config = json.loads(config_path.read_text())
        config = config.get("text_config", config) if "num_hidden_layers" not in config else config
        model_type = config.get("model_type", "")
        num_blocks = config.get("num_hidden_layers", config.get("n_layer"))
        return cls(Path(path).resolve(), model_type, int(num_blocks or 0), layout_for(model_type))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def load_causal_lm(path: Path, device: torch.device | str, dtype: torch.dtype) -> tuple[torch.nn.Module, Any]:
    """Model and tokenizer of the Hugging Face checkpoint directory `path`, for inference.

    The model is on `device` in `dtype`, in eval mode, with no parameter requiring grad (callers
    that need gradients w.r.t. activations make their own leaves, as `collect` does).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise InvalidArgument(f"{path} is not a Hugging Face checkpoint directory (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    model.eval().requires_grad_(False)
    return model, tokenizer
