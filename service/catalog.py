"""The catalog: which variants this server knows, their lifecycle, and which one is the default.

It holds no engines' logic and loads nothing (that is `variants.VariantManager`); it answers
"what is `name`, and can it serve now?" and tells listeners (health, metrics) when a variant
changes state. Aliases and lineage are separate facts: `alias_of` names the variant whose engine an
alias serves (`pruned+rag` serves `pruned`); the manifest's `parent_path` is the directory an edited
checkpoint was made from; `weights_from` names the served variant whose unedited tensors it shares.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lethe.edits.errors import shorten
from lethe.retrieval.augment import RetrievalPolicy
from lethe.service.config import VariantSpec
from lethe.service.engines.base import Engine, MemoryReport
from lethe.service.errors import ShuttingDown, UnknownVariant, VariantExists, VariantUnavailable

if TYPE_CHECKING:
    from lethe.edits.edit_manifest import EditManifest


class Lifecycle(enum.StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    UNLOADING = "unloading"


@dataclass
class Variant:
    name: str
    spec: VariantSpec
    engine_name: str
    lifecycle: Lifecycle = Lifecycle.LOADING
    # The checkpoint directory its weights come from (an alias: its target's).
    source: Path | None = None
    manifest: EditManifest | None = None
    # The served variant (else directory) whose unedited tensors this edited checkpoint shares.
    weights_from: str = ""
    # Alias: the variant whose engine this one serves ("" for a variant with weights of its own).
    alias_of: str = ""
    error: str = ""
    # The exception a failed load raised (its kind becomes the status of a waiting LoadVariant).
    failure: Exception | None = None
    engine: Engine | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def edited_tensors(self) -> list[str]:
        return list(self.manifest.edited_tensors) if self.manifest is not None else []

    @property
    def parent_path(self) -> Path | None:
        """Lineage: the model directory this edited checkpoint was made from."""
        return self.manifest.parent_path if self.manifest is not None else None

    @property
    def retrieval(self) -> RetrievalPolicy | None:
        return self.spec.retrieval

    @property
    def serving(self) -> bool:
        return self.lifecycle is Lifecycle.READY and self.engine is not None

    def memory(self) -> MemoryReport:
        if self.engine is None:
            return MemoryReport(0)
        report = self.engine.memory()
        if self.alias_of:  # every byte belongs to the variant it aliases
            return MemoryReport(report.parameter_bytes, report.parameter_bytes)
        return report


# Called with (variant name, its new lifecycle, or None once it is removed).
Listener = Callable[[str, Lifecycle | None], None]


class Catalog:
    def __init__(self, default_name: str | None = None) -> None:
        self._variants: dict[str, Variant] = {}
        self._listeners: list[Listener] = []
        self.default_name = default_name
        self.closing = False

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # -- lookup -------------------------------------------------------------------------------
    def list(self) -> list[Variant]:
        return list(self._variants.values())

    def names(self) -> set[str]:
        return set(self._variants)

    def known(self) -> str:
        """The loaded names for a message, cut short when there are many."""
        return shorten(", ".join(sorted(self._variants)) or "none", 1000)

    def __contains__(self, name: str) -> bool:
        return name in self._variants

    def get(self, name: str) -> Variant:
        variant = self._variants.get(name)
        if variant is None:
            raise UnknownVariant(f"unknown variant {shorten(name)!r} (loaded: {self.known()})")
        return variant

    def for_request(self, name: str) -> Variant:
        """The variant a request names (empty: the default), ready to serve, or a clear error."""
        if self.closing:
            raise ShuttingDown("the server is shutting down; retry on another replica")
        if not name:
            if self.default_name is None:
                raise UnknownVariant("no variant named and no default variant configured")
            name = self.default_name
        variant = self.get(name)
        if not variant.serving:
            detail = f": {variant.error}" if variant.error else ""
            raise VariantUnavailable(f"variant {name!r} is {variant.lifecycle}{detail}")
        return variant

    def aliases_of(self, name: str) -> list[str]:
        return [v.name for v in self._variants.values() if v.alias_of == name]

    def served_name_of(self, source: Path) -> str | None:
        """The variant serving `source` with weights of its own, if any."""
        return next((v.name for v in self._variants.values() if v.source == source and not v.alias_of), None)

    # -- changes ------------------------------------------------------------------------------
    def check_free(self, name: str) -> None:
        """Raise VariantExists if `name` is taken."""
        if name in self._variants:
            raise VariantExists(f"variant {name!r} is already loaded; unload it first")

    def add(self, variant: Variant) -> None:
        self.check_free(variant.name)
        self._variants[variant.name] = variant
        if self.default_name is None:
            self.default_name = variant.name
        self._notify(variant.name, variant.lifecycle)

    def set_lifecycle(self, variant: Variant, lifecycle: Lifecycle) -> None:
        variant.lifecycle = lifecycle
        self._notify(variant.name, lifecycle)

    def remove(self, name: str) -> None:
        del self._variants[name]
        if self.default_name == name:
            self.default_name = next(iter(self._variants), None)
        self._notify(name, None)

    def _notify(self, name: str, lifecycle: Lifecycle | None) -> None:
        for listener in self._listeners:
            listener(name, lifecycle)
