"""Which variants and indexes `lethe serve` opens at start-up.

Variants and indexes declared in the configuration are served as given. With no variants
declared, the server serves `settings.model` (default `gemma3-270m`, prepared on first start)
plus every pruned variant of it found under `LETHE_HOME/checkpoints/`. `--variant
NAME=CHECKPOINT` adds more. With no variants and no indexes declared (and `demo_index` on), it
also serves the demo fact index, built into `LETHE_HOME/indexes/demo` on first start, and offers
`NAME+rag` for each discovered pruned variant: the same engine, with prompts augmented from it.
"""

from pathlib import Path

from lethe.retrieval.augment import RetrievalPolicy
from lethe.service.config import IndexSpec, ServeSettings, VariantSpec
from lethe.service.errors import InvalidRequest
from lethe.service.variants import discover_variants

DEMO_INDEX = "demo"
RAG_SUFFIX = "+rag"
# What `lethe eval facts` measures by default: 5 passages, laid out by `RetrievalPolicy`'s default
# template and passage format.
DEMO_POLICY = RetrievalPolicy(index=DEMO_INDEX, k=5)


def model_directory(model: str) -> Path:
    """Where `model` lives (a known name's prepared directory, even before preparation)."""
    from lethe.edits.models import KNOWN_MODELS, prepared_path

    if model in KNOWN_MODELS:
        return prepared_path(model)
    return Path(model).expanduser().resolve()


def variant_name_for(model: str) -> str:
    from lethe.edits.models import KNOWN_MODELS

    return model if model in KNOWN_MODELS else Path(model).name or "model"


def parse_variant_flag(value: str) -> VariantSpec:
    name, sep, checkpoint = value.partition("=")
    if not sep or not name or not checkpoint:
        raise InvalidRequest("--variant", f"expected NAME=CHECKPOINT, got {value!r}")
    return VariantSpec(name=name, checkpoint=Path(checkpoint))


def initial_variants(settings: ServeSettings, extra: list[VariantSpec] = ()) -> list[VariantSpec]:
    from lethe.edits.home import lethe_home

    specs = list(settings.variants)
    if not specs:
        specs.append(VariantSpec(name=variant_name_for(settings.model), model=settings.model))
        if settings.discover_variants:
            specs.extend(discover_variants(model_directory(settings.model), lethe_home()))
    by_name = {spec.name: spec for spec in specs}
    for spec in extra:
        by_name[spec.name] = spec
    return list(by_name.values())


def _unconfigured(settings: ServeSettings) -> bool:
    return not settings.variants and not settings.indexes and settings.demo_index


def initial_indexes(settings: ServeSettings) -> list[IndexSpec]:
    """The configured indexes, or with no configuration the demo index under LETHE_HOME."""
    from lethe.edits.home import lethe_home

    if not _unconfigured(settings):
        return list(settings.indexes)
    return [IndexSpec(name=DEMO_INDEX, path=lethe_home() / "indexes" / DEMO_INDEX, demo=True)]


def demo_rag_variants(settings: ServeSettings, variants: list[VariantSpec]) -> list[VariantSpec]:
    """`NAME+rag` (an alias with the demo policy) for each discovered pruned variant in
    `variants`, when the server runs without configuration."""
    from lethe.edits.home import lethe_home

    if not _unconfigured(settings) or not settings.discover_variants:
        return []
    names = {spec.name for spec in variants}
    pruned = [
        spec.name
        for spec in discover_variants(model_directory(settings.model), lethe_home())
        if spec.name in names
    ]
    return [
        VariantSpec(name=name + RAG_SUFFIX, alias_of=name, retrieval=DEMO_POLICY)
        for name in pruned
        if name + RAG_SUFFIX not in names
    ]


def check_references(
    settings: ServeSettings, variants: list[VariantSpec], indexes: list[IndexSpec]
) -> None:
    """What the server would refuse at start-up, found without loading anything: an alias of a
    variant not listed before it, a policy naming an index that is not served or a `k` above its
    `max_k`, a default variant that is not served."""
    index_by_name = {index.name: index for index in indexes}
    seen: set[str] = set()
    for spec in variants:
        if spec.alias_of is not None and spec.alias_of not in seen:
            raise InvalidRequest(
                f"variants.{spec.name}.alias_of", f"{spec.alias_of!r} is not a variant listed before it"
            )
        policy = spec.retrieval
        if policy is not None:
            if policy.index not in index_by_name:
                served = ", ".join(index_by_name) or "none"
                raise InvalidRequest(
                    f"variants.{spec.name}.retrieval.index", f"{policy.index!r} is not served ({served})"
                )
            max_k = index_by_name[policy.index].limits.max_k
            if policy.k > max_k:
                raise InvalidRequest(
                    f"variants.{spec.name}.retrieval.k", f"{policy.k} is above index {policy.index!r}'s max_k"
                )
        seen.add(spec.name)
    if settings.default_variant is not None and settings.default_variant not in seen:
        raise InvalidRequest("default_variant", f"{settings.default_variant!r} is not a served variant")
