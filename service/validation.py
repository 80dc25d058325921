"""Checks on request fields; every error names the field so the caller knows what to fix."""

import math
import uuid

from lethe.service.config import ServeSettings
from lethe.service.engines.base import Sampling
from lethe.service.errors import InvalidRequest
from lethe.service.protocol import SamplingInput


def request_id(given: str, *, max_chars: int) -> str:
    if len(given) > max_chars:
        raise InvalidRequest("request_id", f"at most {max_chars} characters, got {len(given)}")
    return given or uuid.uuid4().hex


def validate_sampling(params: SamplingInput, settings: ServeSettings) -> Sampling:
    default_max_tokens, max_tokens_limit = settings.default_max_tokens, settings.max_tokens_limit
    if params.max_tokens < 0:
        raise InvalidRequest("sampling.max_tokens", f"must be >= 0, got {params.max_tokens}")
    if params.max_tokens > max_tokens_limit:
        raise InvalidRequest(
            "sampling.max_tokens",
            f"{params.max_tokens} is above this server's limit of {max_tokens_limit}",
        )
    temperature = params.temperature if params.temperature is not None else 1.0
    if not math.isfinite(temperature) or temperature < 0:
        raise InvalidRequest("sampling.temperature", f"must be >= 0, got {temperature}")
    top_p = params.top_p if params.top_p is not None else 1.0
    if not (0 < top_p <= 1):
        raise InvalidRequest("sampling.top_p", f"must be in (0, 1], got {top_p}")
    if params.top_k < 0:
        raise InvalidRequest("sampling.top_k", f"must be >= 0 (0 disables), got {params.top_k}")
    if len(params.stop) > settings.max_stop_strings:
        raise InvalidRequest(
            "sampling.stop", f"at most {settings.max_stop_strings} stop strings, got {len(params.stop)}"
        )
    if any(not s for s in params.stop):
        raise InvalidRequest("sampling.stop", "stop strings must not be empty")
    longest = max((len(s) for s in params.stop), default=0)
    if longest > settings.max_stop_chars:
        raise InvalidRequest(
            "sampling.stop", f"a stop string has at most {settings.max_stop_chars} characters, got {longest}"
        )
    return Sampling(
        max_tokens=params.max_tokens or min(default_max_tokens, max_tokens_limit),
        temperature=float(temperature),
        top_p=float(top_p),
        top_k=params.top_k,
        seed=params.seed,
        stop=tuple(params.stop),
    )


def check_prompt(prompt: str, *, max_chars: int) -> None:
    if not prompt:
        raise InvalidRequest("prompt", "must not be empty")
    if len(prompt) > max_chars:
        raise InvalidRequest("prompt", f"{len(prompt)} characters, above this server's limit of {max_chars}")
