"""Loaded models shared between variants: each parent is loaded once per (directory, dtype, device).

A pruned checkpoint differs from its parent only in its edited tensors (`lethe_edit.json`); its
model reuses every other parameter of the loaded parent (`weights.derive_variant`), so N pruned
variants cost one model plus N times the edited matrices. A parent stays loaded while any variant
uses it; `release` forgets the ones no variant needs, and their memory is freed.
"""

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lethe.edits.edit_manifest import EditManifest

log = logging.getLogger(__name__)

ModelKey = tuple[Path, str, str]  # (directory, dtype, device)


class WeightCache:
    def __init__(self, *, share_parents: bool = True) -> None:
        self.share_parents = share_parents
        self._models: dict[ModelKey, tuple[Any, Any]] = {}
        self._locks: dict[ModelKey, asyncio.Lock] = {}

    async def load(self, path: Path, dtype: str, device: str) -> tuple[Any, Any]:
        """(model, tokenizer) of `path`, loaded in a worker thread the first time it is asked for."""
        key = (path, dtype, device)
        async with self._locks.setdefault(key, asyncio.Lock()):
            if key not in self._models:
                import torch

                from lethe.service.engines.weights import load_model

                self._models[key] = await asyncio.to_thread(load_model, path, getattr(torch, dtype), device)
            return self._models[key]

    async def derive(
        self, source: Path, manifest: "EditManifest | None", dtype: str, device: str, label: str
    ) -> tuple[Any, Any, Any] | None:
        """(model, tokenizer, parent model) of an edited checkpoint sharing its parent's tensors, or
        None when it must be loaded in full (sharing off, not an edit, parent gone or different)."""
        from lethe.service.engines.weights import CannotShare, derive_variant

        parent_path = manifest.parent_path if manifest is not None else None
        if not self.share_parents or manifest is None or parent_path is None or parent_path == source:
            return None
        if not (parent_path / "config.json").is_file():
            log.warning("variant %s: parent %s is gone; loading in full", label, parent_path)
            return None
        parent_model, tokenizer = await self.load(parent_path, dtype, device)
        try:
            model = await asyncio.to_thread(derive_variant, parent_model, source, manifest.edited_tensors)
        except CannotShare as reason:
            log.warning("variant %s cannot share its parent (%s); full load", label, reason)
            return None
        return model, tokenizer, parent_model

    def loaded(self) -> list[ModelKey]:
        return list(self._models)

    def release(self, in_use: Iterable[Path]) -> None:
        """Forget models whose directory no loaded variant uses (as itself or as its parent)."""
        keep = set(in_use)
        for key in [k for k in self._models if k[0] not in keep]:
            del self._models[key]
            self._locks.pop(key, None)

    def clear(self) -> None:
        self._models.clear()
        self._locks.clear()
