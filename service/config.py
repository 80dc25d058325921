"""Server configuration: a YAML file, then `LETHE_*` environment variables, then CLI flags.

Nested fields use `__` in the environment, e.g. `LETHE_AUTH__ADMIN__TOKEN_FILE=/run/secrets/admin`.
Every section rejects keys it does not know, in the YAML file and in `LETHE_*` variables alike: a
typo is an error that names the key, never a setting silently left at its default.
"""

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from lethe.edits.errors import explain
from lethe.retrieval.augment import RetrievalPolicy
from lethe.retrieval.index import SearchLimits
from lethe.retrieval.limits import DocumentLimits
from lethe.service.engines.options import EngineName, EngineOptions, options_model
from lethe.service.errors import InvalidRequest

_YAML_FILE: ContextVar[Path | None] = ContextVar("lethe_yaml_file", default=None)
NAME_PATTERN = r"^[A-Za-z0-9._+-]+$"
# A variant's name goes into messages, health service names and metric labels.
NAME_MAX_CHARS = 128


class VariantSpec(BaseModel):
    """A variant to serve: an edited checkpoint directory, a model (known name or directory), or
    an alias of another variant (its engine, not a second copy of its weights)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX_CHARS, pattern=NAME_PATTERN)
    checkpoint: Path | None = None
    model: str | None = None
    alias_of: str | None = Field(
        default=None, min_length=1, description="A variant listed before this one; its engine is reused."
    )
    engine: EngineName | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    retrieval: RetrievalPolicy | None = Field(
        default=None, description="Augment prompts with passages from an index (requests may opt out)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> "VariantSpec":
        sources = [s for s in (self.checkpoint, self.model, self.alias_of) if s is not None]
        if len(sources) != 1:
            raise ValueError(
                f"variant {self.name!r}: give exactly one of `checkpoint`, `model` or `alias_of`"
            )
        if self.alias_of is not None and (self.engine is not None or self.options):
            raise ValueError(f"variant {self.name!r}: an alias uses its target's engine and options")
        return self


class IndexSpec(BaseModel):
    """A knowledge index the server opens at start-up (built by `lethe index build`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=NAME_PATTERN)
    path: Path = Field(description="The index directory.")
    embedder: str | None = Field(
        default=None, description="Embedder name or model directory; default: the one the index names."
    )
    limits: SearchLimits = Field(default_factory=SearchLimits, description="Bounds on search requests.")
    demo: bool = Field(
        default=False, description="Build the shipped demo fact corpus into `path` if it holds no index."
    )


class TokenSettings(BaseModel):
    """A bearer token, given inline (env) or in a file; unset means no auth for that service."""

    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> "TokenSettings":
        if self.token is not None and self.token_file is not None:
            raise ValueError("give `token` or `token_file`, not both")
        if self.token is not None and not self.token.get_secret_value().strip():
            raise ValueError("`token` is empty: set a secret or remove the key")
        return self

    def value(self) -> str | None:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            try:
                secret = self.token_file.read_text().strip()
            except OSError as error:
                raise InvalidRequest("token_file", f"cannot read {self.token_file}: {error}") from None
            if not secret:
                raise InvalidRequest("token_file", f"{self.token_file} is empty: write the token into it")
            return secret
        return None


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inference: TokenSettings = Field(default_factory=TokenSettings)
    admin: TokenSettings = Field(default_factory=TokenSettings)


class TlsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cert_file: Path | None = None
    key_file: Path | None = None
    # When set, clients must present a certificate signed by this CA (mutual TLS).
    client_ca_file: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        """(key, certificate, client CA or None), read now; an unreadable file is InvalidRequest."""
        assert self.cert_file is not None and self.key_file is not None
        try:
            key, cert = self.key_file.read_bytes(), self.cert_file.read_bytes()
            ca = self.client_ca_file.read_bytes() if self.client_ca_file else None
        except OSError as error:
            raise InvalidRequest("tls", f"cannot read a TLS file: {error}") from None
        return key, cert, ca

    @model_validator(mode="after")
    def _pair(self) -> "TlsSettings":
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls: give both cert_file and key_file")
        return self


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LETHE_", env_nested_delimiter="__", extra="forbid")

    host: str = "0.0.0.0"
    port: int = Field(50051, ge=0, le=65535)
    # None: the metrics endpoint binds `host`.
    metrics_host: str | None = None
    # None disables the metrics endpoint; 0 picks a free port.
    metrics_port: int | None = Field(9090, ge=0, le=65535)
    engine: EngineName = "transformers"
    # Served when `variants` is empty, together with its pruned variants under LETHE_HOME.
    model: str = "gemma3-270m"
    discover_variants: bool = True
    variants: list[VariantSpec] = Field(default_factory=list)
    default_variant: str | None = None
    # Knowledge indexes served by `lethe.v1.Retrieval` and used by variants' retrieval policies.
    indexes: list[IndexSpec] = Field(default_factory=list)
    # With no variants and no indexes configured: serve the demo fact index (built under
    # LETHE_HOME on first start) and a `NAME+rag` alias of every discovered pruned variant.
    demo_index: bool = True
    # Most documents one AddDocuments call may carry, and the bounds on each of them.
    max_documents_per_add: int = Field(10_000, ge=1)
    document_limits: DocumentLimits = Field(default_factory=DocumentLimits)
    default_max_tokens: int = Field(64, ge=1)
    max_tokens_limit: int = Field(1024, ge=1)
    # Request bounds, checked before any heavy work (a prompt longer than this is refused before
    # it is tokenized; the token bound is the variant's context).
    max_prompt_chars: int = Field(200_000, ge=1)
    max_stop_strings: int = Field(16, ge=0)
    max_stop_chars: int = Field(256, ge=1)
    max_request_id_chars: int = Field(128, ge=1)
    max_batch_size: int = Field(8, ge=1)
    max_queue: int = Field(64, ge=0)
    grace_seconds: float = Field(10.0, ge=0)
    # How often engines are asked whether they can still serve (readiness follows the answer).
    engine_health_interval_s: float = Field(5.0, gt=0)
    # Pruned variants of a loaded parent reuse its unchanged tensors; False loads each in full.
    share_parent_weights: bool = True
    # torch intra-op threads for the transformers engines (None: torch's default, one per core).
    # On an oversubscribed host, fewer threads avoid OpenMP barrier stalls in every matmul.
    torch_threads: int | None = Field(None, ge=1)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    # Directories Admin's LoadVariant may load checkpoints and models from, besides
    # LETHE_HOME/checkpoints and LETHE_HOME/models. Configured variants are not confined.
    variant_roots: list[Path] = Field(default_factory=list)
    # vLLM engines' memory unless a variant's options say otherwise (Admin-loaded ones included):
    # GiB of KV cache on CPU hosts, the fraction of the GPU on GPU hosts.
    vllm_cpu_kvcache_space_gib: int = Field(2, ge=1)
    vllm_gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    # Where edit jobs, experiments and exposures are kept (a SQLAlchemy URL). None: an SQLite file
    # under LETHE_HOME; replicas that must share them use PostgreSQL (`postgresql+psycopg://...`).
    database_url: str | None = Field(None, min_length=1)

    def engine_options(self, spec: VariantSpec) -> EngineOptions:
        """The typed options of `spec`'s engine: its `options` over the server-wide defaults.
        Raises InvalidRequest naming `options.KEY` for a key or value the engine does not take."""
        from pydantic import ValidationError

        engine = spec.engine or self.engine
        values = dict(spec.options)
        if engine == "transformers":
            values.setdefault("max_batch_size", self.max_batch_size)
            values.setdefault("max_queue", self.max_queue)
        else:
            values.setdefault("cpu_kvcache_space_gib", self.vllm_cpu_kvcache_space_gib)
            values.setdefault("gpu_memory_utilization", self.vllm_gpu_memory_utilization)
        try:
            return options_model(engine).model_validate(values)
        except ValidationError as error:
            raise InvalidRequest(f"variants.{spec.name}.options", explain(error)) from None

    def check_secrets(self) -> None:
        """Read the token and TLS files now (an unreadable or empty one is an InvalidRequest), as
        the server does at start; `lethe serve --check-config` uses it."""
        self.auth.inference.value()
        self.auth.admin.value()
        if self.tls.enabled:
            self.tls.read()

    @property
    def metrics_bind_host(self) -> str:
        return self.metrics_host if self.metrics_host is not None else self.host

    @model_validator(mode="after")
    def _engine_options(self) -> "ServeSettings":
        for spec in self.variants:
            if spec.alias_of is None:
                self.engine_options(spec)
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> "ServeSettings":
        for kind, names in (
            ("variants", [v.name for v in self.variants]),
            ("indexes", [i.name for i in self.indexes]),
        ):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{kind}: names must be unique, repeated: {', '.join(repeated)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        yaml_file = _YAML_FILE.get()
        if yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)


# `LETHE_*` variables that are not server settings: the home folder, the CLI client's target and
# token, and the benchmarks' scratch folder.
NOT_SETTINGS = frozenset({"LETHE_HOME", "LETHE_TARGET", "LETHE_TOKEN", "LETHE_BENCH_TMP"})


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """`LETHE_*` variables that name no setting (pydantic-settings ignores them silently)."""
    fields = {name.upper() for name in ServeSettings.model_fields}
    return sorted(
        key
        for key in environ
        if key.startswith("LETHE_")
        and key not in NOT_SETTINGS
        and key.removeprefix("LETHE_").split("__")[0] not in fields
    )


def load_settings(config_file: Path | None = None, **overrides: Any) -> ServeSettings:
    """Settings from `config_file` (YAML), `LETHE_*` variables and `overrides` (highest first)."""
    import os

    from pydantic import ValidationError

    if config_file is not None and not config_file.is_file():
        raise InvalidRequest("config", f"{config_file} does not exist")
    unknown = unknown_variables(os.environ)
    if unknown:
        raise InvalidRequest(
            "config", f"{', '.join(unknown)}: no such setting (see `lethe serve --help` and docs/service.md)"
        )
    token = _YAML_FILE.set(config_file)
    try:
        return ServeSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        raise InvalidRequest("config", explain(error)) from None
    finally:
        _YAML_FILE.reset(token)

