"""The transformers engine: continuous batching of concurrent requests on one loaded variant.

A worker thread owns the model. Each step it drops finished or cancelled rows, prefills newly
admitted requests together (left-padded), merges their KV cache into the running batch, and runs
one decode step for every running row in a single forward pass. Requests wait in a bounded
queue; cancelling one (client gone, deadline) frees its row at the next step.
"""

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lethe.service.engines.base import (
    Chunk,
    Engine,
    EngineStats,
    GenerationRequest,
    MemoryReport,
)
from lethe.service.engines.options import TransformersOptions
from lethe.service.engines.sampling import TextTracker, choose_token, make_generator
from lethe.service.engines.weight_cache import WeightCache
from lethe.service.engines.weights import parameter_bytes, shared_bytes
from lethe.service.errors import EngineDead, InvalidRequest, QueueFull, ShuttingDown

if TYPE_CHECKING:
    from lethe.edits.edit_manifest import EditManifest

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Slot:
    request: GenerationRequest
    prompt_ids: list[int]
    max_tokens: int
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    tracker: TextTracker
    generator: torch.Generator
    arrived: float = field(default_factory=time.perf_counter)
    generated: list[int] = field(default_factory=list)
    queue_seconds: float | None = None
    cancelled: bool = False
    done: bool = False

    def send(self, item: Chunk | BaseException) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class _Batch:
    """The running rows with their joint KV cache and attention mask (left-padded)."""

    def __init__(self) -> None:
        self.slots: list[_Slot] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None

    def keep(self, keep: list[int]) -> None:
        if len(keep) == len(self.slots):
            return
        self.slots = [self.slots[i] for i in keep]
        if not keep:
            self.cache, self.mask = None, None
            return
        index = torch.tensor(keep, device=self.mask.device if self.mask is not None else None)
        assert self.mask is not None
        mask = self.mask[index]
        # Drop leading columns that are padding for every remaining row.
        first = int((mask.sum(dim=0) > 0).nonzero()[0])
        self.mask = mask[:, first:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, first:]
            layer.values = layer.values[index, :, first:]

    def merge(self, slots: list[_Slot], cache: Any, mask: torch.Tensor) -> None:
        if not self.slots:
            self.slots, self.cache, self.mask = list(slots), cache, mask
            return
        assert self.mask is not None
        width = max(self.mask.shape[1], mask.shape[1])
        self.mask = torch.cat([_left_pad(self.mask, width), _left_pad(mask, width)])
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, width), _left_pad(theirs.keys, width)])
            mine.values = torch.cat([_left_pad(mine.values, width), _left_pad(theirs.values, width)])
        self.slots.extend(slots)


def _left_pad(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Pad the sequence dimension (last for masks, -2 for K/V) on the left with zeros."""
    seq_dim = -1 if tensor.dim() == 2 else -2
    missing = width - tensor.shape[seq_dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[seq_dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=seq_dim)


class TransformersEngine(Engine):
    name = "transformers"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        options: TransformersOptions | None = None,
        *,
        parent: torch.nn.Module | None = None,
        label: str = "",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.options = options or TransformersOptions()
        self.parent = parent
        self._label = label
        self._eos = _eos_ids(model, tokenizer)
        self._device = next(model.parameters()).device
        self._pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._waiting: deque[_Slot] = deque()
        self._batch = _Batch()
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"engine-{label}", daemon=True)
        # Direct construction (tests, benchmarks) serves at once; `start()` is then a no-op.
        self._thread.start()

    @classmethod
    async def load(
        cls,
        source: Path,
        options: TransformersOptions,
        *,
        label: str,
        manifest: "EditManifest | None",
        weights: WeightCache,
    ) -> "TransformersEngine":
        """The engine of a checkpoint; an edited one shares its loaded parent's unedited tensors."""
        shared = await weights.derive(source, manifest, options.dtype, options.torch_device(), label)
        if shared is not None:
            model, tokenizer, parent = shared
            engine = cls(model, tokenizer, options, parent=parent, label=label)
            engine.shares_weights_of = manifest.parent_path if manifest is not None else None
            return engine
        model, tokenizer = await weights.load(source, options.dtype, options.torch_device())
        return cls(model, tokenizer, options, label=label)

    @classmethod
    def from_pretrained(cls, path: Path, options: TransformersOptions | None = None, **kw):
        from lethe.service.engines.weights import load_model

        options = options or TransformersOptions()
        model, tokenizer = load_model(path, getattr(torch, options.dtype), options.torch_device())
        return cls(model, tokenizer, options, **kw)

    def _dead(self) -> EngineDead:
        return EngineDead(f"variant {self._label!r}: the engine's worker thread has stopped")

    async def check_health(self) -> None:
        if not self._thread.is_alive() and not self._closed:
            raise self._dead()

    # -- Engine interface -------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        config = getattr(self.model.config, "get_text_config", lambda: self.model.config)()
        return int(getattr(config, "max_position_embeddings", 2048))

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def memory(self) -> MemoryReport:
        return MemoryReport(parameter_bytes(self.model), shared_bytes(self.model, self.parent))

    def stats(self) -> EngineStats:
        with self._lock:
            running = sum(not (s.done or s.cancelled) for s in self._batch.slots)
            waiting = sum(not s.cancelled for s in self._waiting)
            return EngineStats(running=running, waiting=waiting)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        slot = self._submit(request)
        try:
            while True:
                item = await slot.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            if not slot.done:
                with self._lock:
                    slot.cancelled = True
                    self._lock.notify()

    async def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        await asyncio.to_thread(self._thread.join, 30)

    # -- submission ---------------------------------------------------------------------------
    def _submit(self, request: GenerationRequest) -> _Slot:
        if request.prompt_token_ids is not None:
            prompt_ids = list(request.prompt_token_ids)
        else:
            prompt_ids = self.encode(request.prompt)
        room = self.context_length - len(prompt_ids)
        if room <= 0:
            raise InvalidRequest(
                "prompt",
                f"{len(prompt_ids)} tokens leave no room in the context of {self.context_length}",
            )
        slot = _Slot(
            request=request,
            prompt_ids=prompt_ids,
            max_tokens=min(request.sampling.max_tokens, room),
            loop=asyncio.get_running_loop(),
            queue=asyncio.Queue(),
            tracker=TextTracker(self.tokenizer, request.sampling.stop),
            generator=make_generator(request.sampling.seed),
        )
        with self._lock:
            if self._closed:
                raise ShuttingDown("the engine is shutting down")
            if not self._thread.is_alive():
                raise self._dead()
            # Cancelled and finished rows count as free: the worker drops them before admitting.
            running = sum(not (s.done or s.cancelled) for s in self._batch.slots)
            waiting = sum(not s.cancelled for s in self._waiting)
            free_rows = max(self.options.max_batch_size - running, 0)
            if waiting >= self.options.max_queue + free_rows:
                raise QueueFull(
                    f"variant {self._label!r} has {waiting} requests waiting "
                    f"(max_queue={self.options.max_queue}); retry later"
                )
            self._waiting.append(slot)
            self._lock.notify()
        return slot

    # -- worker thread ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._serve()
        except BaseException:  # a bug in the loop itself: no request may wait forever
            log.exception("engine %s: the worker stopped", self._label)
            self._abort_all(self._dead())

    def _serve(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._lock:
                idle = not self._batch.slots
                while not self._closed and not self._waiting and not self._batch.slots:
                    self._lock.wait()
                if self._closed:
                    break
                if idle and self.options.admit_window_s > 0:
                    # Woken from idle: let requests arriving together share one prefill.
                    deadline = time.monotonic() + self.options.admit_window_s
                    while not self._closed and (left := deadline - time.monotonic()) > 0:
                        self._lock.wait(left)
                self._drop_finished()
                admitted = []
                while self._waiting and len(self._batch.slots) + len(admitted) < (
                    self.options.max_batch_size
                ):
                    slot = self._waiting.popleft()
                    if not slot.cancelled:
                        admitted.append(slot)
            try:
                with torch.inference_mode():
                    if admitted:
                        self._prefill(admitted)
                    if self._batch.slots:
                        self._decode()
                with self._lock:
                    self._drop_finished()
            except Exception as error:  # one bad step must not kill the engine
                log.exception("engine %s: step failed", self._label)
                for slot in [*self._batch.slots, *admitted]:
                    if not slot.done:
                        slot.done = True
                        slot.send(error)
                with self._lock:
                    self._batch = _Batch()
        self._abort_all(ShuttingDown("the engine was closed"))

    def _drop_finished(self) -> None:
        keep = [i for i, s in enumerate(self._batch.slots) if not (s.done or s.cancelled)]
        self._batch.keep(keep)

    def _abort_all(self, error: Exception) -> None:
        with self._lock:
            for slot in [*self._batch.slots, *self._waiting]:
                if not slot.done:
                    slot.done = True
                    slot.send(error)
            self._batch = _Batch()
            self._waiting.clear()

    def _forward(self, input_ids, mask, cache):
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        # Sampling runs on the CPU with per-request generators.
        return out.logits[:, -1, :].float().cpu()

    def _prefill(self, slots: list[_Slot]) -> None:
        from transformers import DynamicCache

        started = time.perf_counter()
        width = max(len(s.prompt_ids) for s in slots)
        ids = torch.full((len(slots), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(slots), width), dtype=torch.long)
        for row, slot in enumerate(slots):
            ids[row, width - len(slot.prompt_ids) :] = torch.tensor(slot.prompt_ids)
            mask[row, width - len(slot.prompt_ids) :] = 1
        cache = DynamicCache()
        ids, mask = ids.to(self._device), mask.to(self._device)
        logits = self._forward(ids, mask, cache)
        for slot in slots:
            slot.queue_seconds = started - slot.arrived
        self._batch.merge(slots, cache, mask)
        self._advance(slots, logits)

    def _decode(self) -> None:
        batch = self._batch
        assert batch.mask is not None
        pending = [i for i, s in enumerate(batch.slots) if s.generated and not s.done]
        if len(pending) != len(batch.slots):
            # Rows finished during their prefill: drop them before the joint step.
            self._drop_finished()
            if not batch.slots:
                return
        ids = torch.tensor([[s.generated[-1]] for s in batch.slots], device=self._device)
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.slots), 1))], dim=1)
        logits = self._forward(ids, batch.mask, batch.cache)
        self._advance(batch.slots, logits)

    def _advance(self, slots: list[_Slot], logits: torch.Tensor) -> None:
        """Choose each row's next token and send its text delta (and the end, if reached)."""
        for row, slot in enumerate(slots):
            if slot.done or slot.cancelled:
                continue
            try:
                token = choose_token(logits[row], slot.request.sampling, slot.generator)
            except Exception as error:  # this row's sampling failed: end it alone, not the batch
                log.exception("engine %s: sampling failed for %s", self._label, slot.request.request_id)
                slot.done = True
                slot.send(error)
                continue
            slot.generated.append(token)
            finish = None
            if token in self._eos:
                finish = "stop"
                delta, _ = slot.tracker.update(slot.generated[:-1])
            else:
                delta, hit_stop = slot.tracker.update(slot.generated)
                if hit_stop:
                    finish = "stop"
                elif len(slot.generated) >= slot.max_tokens:
                    finish = "length"
            if finish is None:
                if delta:
                    slot.send(Chunk(text=delta))
                continue
            slot.done = True
            slot.send(
                Chunk(
                    text=delta + slot.tracker.flush(),
                    finish_reason=finish,
                    prompt_tokens=len(slot.prompt_ids),
                    completion_tokens=len(slot.generated),
                    queue_seconds=slot.queue_seconds,
                )
            )


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids
