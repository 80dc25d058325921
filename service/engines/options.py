"""Each engine's options as typed models, importable without torch or vLLM.

A variant's `options` are validated against its engine's model when the configuration loads (and
when Admin loads a variant), so a typo fails at start, not minutes later when the variant loads.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TransformersOptions(BaseModel):
    """Options of the transformers engine."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(8, ge=1, description="Rows decoded together in one forward pass.")
    max_queue: int = Field(64, ge=0, description="Requests waiting for a row before refusal.")
    dtype: str = Field("float32", pattern="^(float32|bfloat16|float16)$")
    admit_window_s: float = Field(
        0.005, ge=0, le=1, description="When idle, wait this long for more arrivals to prefill together."
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto: CUDA when present.")

    def torch_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


class VllmOptions(BaseModel):
    """Options of the vLLM engine; strings from the Admin API are coerced."""

    model_config = ConfigDict(extra="forbid")

    max_model_len: int | None = Field(None, ge=1, description="Context; default: the model's.")
    max_num_seqs: int = Field(16, ge=1, description="Requests batched together.")
    max_queue: int = Field(64, ge=0, description="Requests beyond max_num_seqs before refusal.")
    enforce_eager: bool = Field(True, description="Skip graph capture/compile (start-up ~30 s).")
    dtype: str = "auto"
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    # CPU builds: GiB of KV cache (VLLM_CPU_KVCACHE_SPACE), read by the engine process at start.
    cpu_kvcache_space_gib: int | None = Field(None, ge=1)


EngineOptions = TransformersOptions | VllmOptions
EngineName = Literal["transformers", "vllm"]
_OPTIONS: dict[str, type[EngineOptions]] = {"transformers": TransformersOptions, "vllm": VllmOptions}
ENGINE_NAMES: tuple[str, ...] = tuple(_OPTIONS)


def options_model(engine: str) -> type[EngineOptions]:
    """The options model of `engine` (a name the configuration has already checked)."""
    return _OPTIONS[engine]
