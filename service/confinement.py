"""Where Admin may load variants from: configured roots only, and nothing is downloaded.

A path a client names is resolved (symlinks and `..` included) and must lie under a root:
`LETHE_HOME/checkpoints`, `LETHE_HOME/models`, or a directory listed in `variant_roots`. A relative
path is taken under each root in turn (`forget-x` is `LETHE_HOME/checkpoints/forget-x`). Messages
name what the client sent, never the resolved system path, so they do not reveal what exists
outside the roots.
"""

from pathlib import Path

from lethe.edits.errors import shorten
from lethe.service.config import ServeSettings, VariantSpec
from lethe.service.errors import InvalidRequest, UnknownVariant

ROOTS_HELP = "LETHE_HOME/checkpoints, LETHE_HOME/models or a directory in `variant_roots`"


def allowed_roots(settings: ServeSettings) -> list[Path]:
    from lethe.edits.home import lethe_home

    home = lethe_home()
    roots = [home / "checkpoints", home / "models", *settings.variant_roots]
    return [root.expanduser().resolve() for root in roots]


class CheckpointNotFound(UnknownVariant):
    """No checkpoint of that name under the roots (NOT_FOUND, like an unknown variant)."""


def confine(spec: VariantSpec, settings: ServeSettings) -> VariantSpec:
    """`spec` with its checkpoint or model turned into a directory under the roots, or an error."""
    if spec.alias_of is not None:
        return spec
    if spec.checkpoint is not None:
        field, given = "checkpoint", str(spec.checkpoint)
    else:
        assert spec.model is not None
        field, given = "model", spec.model
        known = _prepared_model(given)
        if known is not None:
            return spec.model_copy(update={"model": None, "checkpoint": known})
    directory = _under_roots(field, given, allowed_roots(settings))
    return spec.model_copy(update={"model": None, "checkpoint": directory})


def _prepared_model(name: str) -> Path | None:
    """A known model's prepared directory; a known but unprepared one is refused, not fetched."""
    from lethe.edits.models import KNOWN_MODELS
    from lethe.edits.models.resolve import is_prepared, prepared_path

    if name not in KNOWN_MODELS:
        return None
    target = prepared_path(name)
    if not is_prepared(target):
        raise CheckpointNotFound(
            f"model: {name!r} is not prepared on this server (Admin never downloads); "
            f"run `lethe models prepare {name}` on the host"
        )
    return target.resolve()


def _under_roots(field: str, given: str, roots: list[Path]) -> Path:
    shown = shorten(given)
    if not given or "\x00" in given:
        raise InvalidRequest(field, "must name a checkpoint directory")
    try:
        path = Path(given).expanduser()
    except RuntimeError:  # `~user` of a user this host does not have: a name like any other
        path = Path(given)
    candidates = [path] if path.is_absolute() else [root / path for root in roots]
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError):
            continue
        if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
            if path.is_absolute():
                raise InvalidRequest(
                    field, f"{shown!r} is outside the directories this server loads from ({ROOTS_HELP})"
                )
            continue
        try:
            if (resolved / "config.json").is_file():
                return resolved
        except OSError:  # e.g. a name too long for the filesystem: no checkpoint there
            continue
    raise CheckpointNotFound(f"{field}: no checkpoint {shown!r} under {ROOTS_HELP}")
