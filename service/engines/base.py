"""The engine interface: one loaded variant that turns prompts into streams of text deltas."""

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

FinishReason = Literal["stop", "length"]


GREEDY_BELOW = 1e-5


@dataclass(frozen=True)
class Sampling:
    """Validated sampling parameters (see `service.validation.sampling_from_request`)."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        # Below this, dividing logits by the temperature overflows float32 (inf - inf = nan in the
        # softmax); greedy decoding is what such a temperature means anyway.
        return self.temperature < GREEDY_BELOW


@dataclass(frozen=True)
class GenerationRequest:
    request_id: str
    prompt: str
    sampling: Sampling
    # The prompt's tokens when the caller has them (the data plane tokenizes once, to fit the
    # context); engines then skip their own tokenization.
    prompt_token_ids: tuple[int, ...] | None = None


@dataclass
class Chunk:
    """A text delta; the last chunk of a stream has `finish_reason` and the token counts."""

    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Seconds the request waited before its prefill started (engines that know it).
    queue_seconds: float | None = None


@dataclass(frozen=True)
class MemoryReport:
    parameter_bytes: int
    shared_bytes: int = 0

    @property
    def own_bytes(self) -> int:
        return self.parameter_bytes - self.shared_bytes


@dataclass
class EngineStats:
    running: int = 0
    waiting: int = 0
    extra: dict[str, float] = field(default_factory=dict)


class Engine(abc.ABC):
    """A loaded variant. `generate` is an async generator: closing it cancels the request.

    Lifecycle: the engine factory builds it (weights loaded), `start()` begins serving,
    `check_health()` raises `EngineDead` once it cannot serve any more, `close()` frees it.
    """

    name: str = "engine"
    # The parent directory whose loaded tensors this engine's model reuses (None: its own weights).
    shares_weights_of: Path | None = None

    async def start(self) -> None:  # noqa: B027 - engines without a start-up step keep this
        """Begin serving (worker threads, engine processes). Called once, before `generate`."""

    @abc.abstractmethod
    async def check_health(self) -> None:
        """Return if the engine can serve; raise `EngineDead` (with the reason) if not."""

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """The prompt tokens of `text`, as `generate` would see them. Blocking: call off the loop."""

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Stream the completion. Raises `QueueFull` before the first chunk when saturated."""

    @property
    @abc.abstractmethod
    def context_length(self) -> int:
        """Most tokens (prompt plus completion) a request may use."""

    @abc.abstractmethod
    def memory(self) -> MemoryReport: ...

    def stats(self) -> EngineStats:
        return EngineStats()

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop accepting work, cancel what runs, and free the weights."""
