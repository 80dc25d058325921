"""The application core's request and response types: what the adapters (gRPC, CLI, and later
HTTP) convert their messages to and from. No protobuf here."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingInput:
    """Sampling fields as the client sent them; `None` means "not given" (the default applies)."""

    max_tokens: int = 0
    temperature: float | None = None
    top_p: float | None = None
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerateCall:
    """One generation request, before validation."""

    prompt: str
    variant: str = ""
    sampling: SamplingInput = SamplingInput()
    request_id: str = ""
    # The retrieval switch (None: follow the variant's policy), k override (0: the policy's) and
    # the text to search for (empty: the end of the prompt).
    retrieval: bool | None = None
    retrieval_k: int = 0
    retrieval_query: str = ""


@dataclass(frozen=True)
class UsedPassage:
    """A passage that was put into the prompt."""

    id: str
    doc_id: str
    score: float
    index: str


@dataclass(frozen=True)
class GenerateChunk:
    """A text delta of a routed request; the last one has `finish_reason`, the token counts and
    the passages used."""

    variant: str
    request_id: str
    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    passages: tuple[UsedPassage, ...] = ()
