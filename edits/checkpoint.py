"""Writing an edited checkpoint: the parent's files with some tensors replaced, plus `lethe_edit.json`.

Every tensor that was not edited is copied byte for byte. The checkpoint is built in a hidden
temporary directory and renamed into place (`atomic_directory`), so a loader never finds a
half-written checkpoint. The manifest's schema is `edit_manifest.EditManifest`.
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lethe.edits.atomic import atomic_directory
from lethe.edits.edit_manifest import EDIT_MANIFEST, EditManifest
from lethe.edits.errors import NotFound

_NOT_INHERITED = {EDIT_MANIFEST, "lethe_model.json"}


def tensor_files(model_dir: Path) -> dict[str, str]:
    """Tensor name -> the safetensors file (relative name) that holds it."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        return dict(json.loads(index.read_text())["weight_map"])
    locations = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            locations.update(dict.fromkeys(handle.keys(), path.name))
    if not locations:
        raise NotFound(f"{model_dir} holds no .safetensors weights; Lethe edits safetensors checkpoints")
    return locations


def read_tensors(model_dir: Path, names: list[str]) -> dict[str, torch.Tensor]:
    locations = tensor_files(model_dir)
    missing = [name for name in names if name not in locations]
    if missing:
        raise NotFound(f"{model_dir} has no tensors named {missing}")
    tensors = {}
    for name in names:
        with safe_open(str(model_dir / locations[name]), framework="pt") as handle:
            tensors[name] = handle.get_tensor(name)
    return tensors


def write_checkpoint(
    parent: Path,
    out: Path,
    replacements: dict[str, torch.Tensor],
    manifest: EditManifest,
    *,
    overwrite: bool = False,
) -> Path:
    """Write `parent` with `replacements` swapped in, and `manifest` as lethe_edit.json, to `out`."""
    locations = tensor_files(parent)
    touched = {locations[name] for name in replacements}
    with atomic_directory(out, overwrite=overwrite) as staging:
        for source in sorted(parent.iterdir()):
            if source.name in _NOT_INHERITED or source.name.startswith("."):
                continue
            target = staging / source.name
            if source.name in touched:
                _rewrite_shard(source, target, replacements)
            elif source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        manifest.write(staging)
    return out


def _rewrite_shard(source: Path, target: Path, replacements: dict[str, torch.Tensor]) -> None:
    with safe_open(str(source), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    for name, tensor in replacements.items():
        if name in tensors:
            original = tensors[name]
            if tensor.shape != original.shape:
                raise ValueError(
                    f"edited {name} changed shape {tuple(original.shape)} -> {tuple(tensor.shape)}"
                )
            tensors[name] = tensor.to(original.dtype).contiguous()
    save_file(tensors, str(target), metadata=metadata)
