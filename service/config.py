"""Server configuration: a YAML file, then `LETHE_*` environment variables, then CLI flags.

Nested fields use `__` in the environment, e.g. `LETHE_AUTH__ADMIN_TOKEN_FILE=/run/secrets/admin`.
"""

from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from service.errors import InvalidRequest

EngineName = Literal["transformers", "vllm"]
_YAML_FILE: ContextVar[Path | None] = ContextVar("lethe_yaml_file", default=None)


class VariantSpec(BaseModel):
    """A variant to load: an edited checkpoint directory or a model (known name or directory)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    checkpoint: Path | None = None
    model: str | None = None
    engine: EngineName | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> "VariantSpec":
        if (self.checkpoint is None) == (self.model is None):
            raise ValueError(f"variant {self.name!r}: give exactly one of `checkpoint` or `model`")
        return self


class TokenSettings(BaseModel):
    """A bearer token, given inline (env) or in a file; unset means no auth for that service."""

    token: SecretStr | None = None
    token_file: Path | None = None

    def value(self) -> str | None:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            try:
                return self.token_file.read_text().strip()
            except OSError as error:
                raise InvalidRequest("token_file", f"cannot read {self.token_file}: {error}") from None
        return None


class AuthSettings(BaseModel):
    inference: TokenSettings = Field(default_factory=TokenSettings)
    admin: TokenSettings = Field(default_factory=TokenSettings)


class TlsSettings(BaseModel):
    cert_file: Path | None = None
    key_file: Path | None = None
    # When set, clients must present a certificate signed by this CA (mutual TLS).
    client_ca_file: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None

    @model_validator(mode="after")
    def _pair(self) -> "TlsSettings":
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls: give both cert_file and key_file")
        return self


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LETHE_", env_nested_delimiter="__", extra="forbid")

    host: str = "0.0.0.0"
    port: int = Field(50051, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"
    # None disables the metrics endpoint; 0 picks a free port.
    metrics_port: int | None = Field(9090, ge=0, le=65535)
    engine: EngineName = "transformers"
    # Served when `variants` is empty, together with its pruned variants under LETHE_HOME.
    model: str = "gemma3-270m"
    discover_variants: bool = True
    variants: list[VariantSpec] = Field(default_factory=list)
    default_variant: str | None = None
    default_max_tokens: int = Field(64, ge=1)
    max_tokens_limit: int = Field(1024, ge=1)
    max_batch_size: int = Field(8, ge=1)
    max_queue: int = Field(64, ge=0)
    grace_seconds: float = Field(10.0, ge=0)
    # Pruned variants of a loaded parent reuse its unchanged tensors; False loads each in full.
    share_parent_weights: bool = True
    # torch intra-op threads for the transformers engines (None: torch's default, one per core).
    # On an oversubscribed host, fewer threads avoid OpenMP barrier stalls in every matmul.
    torch_threads: int | None = Field(None, ge=1)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)

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


def load_settings(config_file: Path | None = None, **overrides: Any) -> ServeSettings:
    """Settings from `config_file` (YAML), `LETHE_*` variables and `overrides` (highest first)."""
    from pydantic import ValidationError

    if config_file is not None and not config_file.is_file():
        raise InvalidRequest("config", f"{config_file} does not exist")
    token = _YAML_FILE.set(config_file)
    try:
        return ServeSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        raise InvalidRequest("config", _explain(error)) from None
    finally:
        _YAML_FILE.reset(token)


def _explain(error: Any) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
