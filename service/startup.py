"""Which variants `lethe serve` loads at start-up.

Variants declared in the configuration are loaded as given. With none declared, the server
serves `settings.model` (default `gemma3-270m`, prepared on first start) plus every pruned
variant of it found under `LETHE_HOME/checkpoints/`. `--variant NAME=CHECKPOINT` adds more.
"""

from pathlib import Path

from service.config import ServeSettings, VariantSpec
from service.errors import InvalidRequest
from service.registry import discover_variants


def model_directory(model: str) -> Path:
    """Where `model` lives (a known name's prepared directory, even before preparation)."""
    from edits.models import KNOWN_MODELS, prepared_path

    if model in KNOWN_MODELS:
        return prepared_path(model)
    return Path(model).expanduser().resolve()


def variant_name_for(model: str) -> str:
    from edits.models import KNOWN_MODELS

    return model if model in KNOWN_MODELS else Path(model).name or "model"


def parse_variant_flag(value: str) -> VariantSpec:
    name, sep, checkpoint = value.partition("=")
    if not sep or not name or not checkpoint:
        raise InvalidRequest("--variant", f"expected NAME=CHECKPOINT, got {value!r}")
    return VariantSpec(name=name, checkpoint=Path(checkpoint))


def initial_variants(settings: ServeSettings, extra: list[VariantSpec] = ()) -> list[VariantSpec]:
    from edits.home import lethe_home

    specs = list(settings.variants)
    if not specs:
        specs.append(VariantSpec(name=variant_name_for(settings.model), model=settings.model))
        if settings.discover_variants:
            specs.extend(discover_variants(model_directory(settings.model), lethe_home()))
    by_name = {spec.name: spec for spec in specs}
    for spec in extra:
        by_name[spec.name] = spec
    return list(by_name.values())
