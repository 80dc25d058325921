"""Loading HF causal-LM weights, and deriving pruned variants that share the parent's tensors.

An edited checkpoint (its `lethe_edit.json`, `lethe.edits.edit_manifest.EditManifest`, is written
by `lethe edit apply`) differs from its parent only in `edited_tensors`. `derive_variant` copies
the parent module but reuses every unchanged parameter object, so N variants cost one model plus
N times the edited matrices. Loading itself is `lethe.edits.loading.load_causal_lm`.
"""

import copy
import json
import logging
from pathlib import Path
from typing import Any

import torch

from lethe.edits.loading import load_causal_lm

log = logging.getLogger(__name__)


def load_model(path: Path, dtype: torch.dtype = torch.float32, device: str = "cpu") -> tuple[Any, Any]:
    """Model (eval mode, no grad, on `device`) and tokenizer from an HF directory: the one loader,
    `load_causal_lm`, with the service's argument order."""
    return load_causal_lm(path, device, dtype)


def _safetensors_files(checkpoint: Path) -> list[Path]:
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        names = set(json.loads(index.read_text())["weight_map"].values())
        return sorted(checkpoint / name for name in names)
    return sorted(checkpoint.glob("*.safetensors"))


def _checkpoint_tensors(checkpoint: Path, names: set[str] | None) -> dict[str, torch.Tensor]:
    """Tensors of the checkpoint (only `names` when given), read one file at a time."""
    from safetensors import safe_open

    found: dict[str, torch.Tensor] = {}
    for file in _safetensors_files(checkpoint):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                if names is None or key in names:
                    found[key] = handle.get_tensor(key)
    return found


class CannotShare(Exception):
    """The checkpoint cannot share the parent's tensors (names or values differ)."""


def derive_variant(parent: torch.nn.Module, checkpoint: Path, edited: list[str]) -> torch.nn.Module:
    """A copy of `parent` whose `edited` parameters come from `checkpoint`; all others shared.

    Every unchanged tensor stored in the checkpoint is compared with the parent's, so a
    checkpoint made from another parent (or a parent changed on disk) is never served wrongly.
    """
    params = dict(parent.named_parameters())
    missing = [name for name in edited if name not in params]
    if missing:
        raise CannotShare(f"edited tensors not in the parent model: {missing[:3]}")
    stored = set()
    for file in _safetensors_files(checkpoint):
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118
                stored.add(key)
                if key in edited or key not in params:
                    continue
                stored_tensor = handle.get_tensor(key).to(params[key].device, params[key].dtype)
                if not torch.equal(stored_tensor, params[key]):
                    raise CannotShare(f"{key} differs from the parent but is not listed as edited")
    if not set(edited) <= stored:
        raise CannotShare("edited tensors missing from the checkpoint files")
    replacements = _checkpoint_tensors(checkpoint, set(edited))
    memo: dict[int, Any] = {}
    for name, param in params.items():
        if name in replacements:
            tensor = replacements[name].to(device=param.device, dtype=param.dtype)
            if tensor.shape != param.shape:
                raise CannotShare(f"{name}: shape {tuple(tensor.shape)} != {tuple(param.shape)}")
            memo[id(param)] = torch.nn.Parameter(tensor, requires_grad=False)
        else:
            memo[id(param)] = param
    return copy.deepcopy(parent, memo)


def parameter_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def shared_bytes(model: torch.nn.Module, parent: torch.nn.Module | None) -> int:
    """Bytes of `model`'s parameters that are the very same storage as `parent`'s."""
    if parent is None:
        return 0
    parent_ptrs = {p.data_ptr() for p in parent.parameters()}
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.data_ptr() in parent_ptrs)
