"""Loading and unloading variants: the catalog's entries get their source, manifest and engine.

A variant is added to the catalog as LOADING at once and loads in a background task (the call can
wait for it); an alias waits for its target and serves the same engine object; an edited
checkpoint of a loaded parent shares the parent's tensors (`engines.weight_cache`). Engine options
are typed and checked before anything is added (`ServeSettings.engine_options`).
"""

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lethe.edits.errors import LetheError, shorten
from lethe.retrieval.augment import RetrievalPolicy
from lethe.service.catalog import Catalog, Lifecycle, Variant
from lethe.service.config import ServeSettings, VariantSpec
from lethe.service.confinement import confine
from lethe.service.engines import factory
from lethe.service.engines.weight_cache import WeightCache
from lethe.service.errors import (
    InvalidRequest,
    ShuttingDown,
    UnknownIndex,
    UnknownVariant,
    VariantInUse,
    VariantLoadFailed,
    VariantUnavailable,
)

if TYPE_CHECKING:
    from lethe.service.indexes import IndexRegistry

log = logging.getLogger(__name__)


def resolve_source(spec: VariantSpec) -> Path:
    """The directory a variant's weights come from (a known model name is prepared first)."""
    from lethe.edits.models.resolve import resolve_model

    if spec.checkpoint is not None:
        path = spec.checkpoint.expanduser().resolve()
        if not (path / "config.json").is_file():
            raise InvalidRequest("checkpoint", f"{path} is not a checkpoint (no config.json)")
        return path
    assert spec.model is not None
    return Path(resolve_model(spec.model)).resolve()


def discover_variants(model_dir: Path, home: Path) -> list[VariantSpec]:
    """Edited checkpoints under `home/checkpoints/` whose manifest names `model_dir` as parent."""
    from lethe.edits.edit_manifest import find_edits

    return [
        VariantSpec(name=name, checkpoint=path)
        for name, path in find_edits(home / "checkpoints", model_dir.resolve())
    ]


def _describe(error: Exception, variant: Variant) -> str:
    """What went wrong, without the checkpoint's resolved path (the client named it otherwise)."""
    message = str(error) or type(error).__name__
    if not isinstance(error, LetheError):
        message = f"the checkpoint cannot be loaded ({type(error).__name__}: {message.splitlines()[0]})"
    if variant.source is not None:
        message = message.replace(str(variant.source), "<checkpoint>")
    return message


def load_error(variant: Variant) -> LetheError:
    """The error a waiting client gets for a variant that failed to load."""
    failure = variant.failure
    if isinstance(failure, LetheError):
        failure.args = (variant.error,)
        return failure
    return VariantLoadFailed(f"variant {variant.name!r}: {variant.error}")


class VariantManager:
    def __init__(
        self, settings: ServeSettings, catalog: Catalog, indexes: "IndexRegistry | None" = None
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        # Checks that retrieval policies name a configured index (None: not checked).
        self._indexes = indexes
        self.weights = WeightCache(share_parents=settings.share_parent_weights)
        self._tasks: set[asyncio.Task] = set()

    # -- loading ------------------------------------------------------------------------------
    async def load(self, spec: VariantSpec, *, wait: bool = True) -> Variant:
        if self.catalog.closing:
            raise ShuttingDown("the server is shutting down")
        self.catalog.check_free(spec.name)
        if spec.retrieval is not None and self._indexes is not None:
            self._check_policy(spec.name, spec.retrieval, self._indexes)
        if spec.alias_of is not None:
            target = self._alias_target(spec)
            variant = Variant(name=spec.name, spec=spec, engine_name=target.engine_name, alias_of=target.name)
        else:
            self.settings.engine_options(spec)  # refuse bad options before anything is added
            variant = Variant(name=spec.name, spec=spec, engine_name=spec.engine or self.settings.engine)
        self.catalog.add(variant)
        task = asyncio.create_task(self._load(variant), name=f"load-{spec.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if wait:
            await variant.settled.wait()
        return variant

    async def load_requested(self, spec: VariantSpec, *, wait: bool = True) -> Variant:
        """A load a client asked for (Admin): only from the allowed roots, never downloading; when
        waited for, a failure is an error with its status and leaves nothing registered."""
        self.catalog.check_free(spec.name)  # before confinement: a taken name is the first answer
        variant = await self.load(confine(spec, self.settings), wait=wait)
        if wait and variant.lifecycle is Lifecycle.FAILED:
            self.catalog.remove(variant.name)
            raise load_error(variant)
        return variant

    def _alias_target(self, spec: VariantSpec) -> Variant:
        assert spec.alias_of is not None
        if spec.alias_of not in self.catalog:
            raise UnknownVariant(
                f"alias_of: variant {spec.name!r} names {shorten(spec.alias_of)!r}, which is not loaded "
                f"(loaded: {self.catalog.known()})"
            )
        target = self.catalog.get(spec.alias_of)
        while target.alias_of:  # an alias of an alias serves the same engine
            target = self.catalog.get(target.alias_of)
        return target

    async def _load(self, variant: Variant) -> None:
        try:
            if variant.alias_of:
                await self._follow(variant)
            else:
                await self._build(variant)
            if variant.lifecycle is Lifecycle.LOADING:
                self.catalog.set_lifecycle(variant, Lifecycle.READY)
                log.info("variant %s ready (%s)", variant.name, variant.engine_name)
        except Exception as error:
            log.exception("variant %s failed to load", variant.name)
            variant.failure = error
            variant.error = _describe(error, variant)
            self.catalog.set_lifecycle(variant, Lifecycle.FAILED)
        finally:
            variant.settled.set()

    async def _build(self, variant: Variant) -> None:
        from lethe.edits.edit_manifest import EditManifest

        source = await asyncio.to_thread(resolve_source, variant.spec)
        variant.source = source
        variant.manifest = EditManifest.read(source)
        variant.engine = await factory.build(
            variant.engine_name,
            source,
            self.settings.engine_options(variant.spec),
            label=variant.name,
            manifest=variant.manifest,
            weights=self.weights,
        )
        shared = variant.engine.shares_weights_of
        if shared is not None:
            variant.weights_from = self.catalog.served_name_of(shared) or str(shared)

    async def _follow(self, alias: Variant) -> None:
        """Serve the target's engine once it is ready: the same object, no second load."""
        target = self.catalog.get(alias.alias_of)
        await target.settled.wait()
        if not target.serving:
            detail = f": {target.error}" if target.error else ""
            raise VariantUnavailable(f"variant {target.name!r} it serves is {target.lifecycle}{detail}")
        alias.source, alias.manifest, alias.engine = target.source, target.manifest, target.engine

    @staticmethod
    def _check_policy(name: str, policy: RetrievalPolicy, indexes: "IndexRegistry") -> None:
        if policy.index not in indexes.names:
            raise UnknownIndex(
                f"retrieval.index: variant {name!r} names index {shorten(policy.index)!r}, which is not "
                f"configured (configured: {', '.join(indexes.names) or 'none'})"
            )
        max_k = indexes.spec(policy.index).limits.max_k
        if policy.k > max_k:
            raise InvalidRequest("retrieval.k", f"{policy.k} is above index {policy.index!r}'s max_k {max_k}")

    # -- unloading ----------------------------------------------------------------------------
    async def unload(self, name: str) -> None:
        variant = self.catalog.get(name)
        if variant.lifecycle is Lifecycle.UNLOADING:
            raise VariantUnavailable(f"variant {name!r} is already unloading")
        aliases = self.catalog.aliases_of(name)
        if aliases:
            raise VariantInUse(f"variant {name!r} is also served as {', '.join(aliases)}; unload that first")
        if variant.lifecycle is Lifecycle.LOADING:
            await variant.settled.wait()
        self.catalog.set_lifecycle(variant, Lifecycle.UNLOADING)
        engine, variant.engine = variant.engine, None
        if engine is not None and not variant.alias_of:
            await engine.close()
        self.catalog.remove(name)
        self.weights.release(self._directories_in_use())

    def _directories_in_use(self) -> set[Path]:
        in_use: set[Path] = set()
        for variant in self.catalog.list():
            if variant.source is not None:
                in_use.add(variant.source)
            if variant.manifest is not None and variant.manifest.parent_path is not None:
                in_use.add(variant.manifest.parent_path)
        return in_use

    async def close(self) -> None:
        self.catalog.closing = True
        for task in list(self._tasks):
            task.cancel()
        for variant in self.catalog.list():
            if variant.engine is not None and not variant.alias_of:
                await variant.engine.close()
        self.weights.clear()
