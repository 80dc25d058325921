"""K-FAC factor collection: A = E[a a^T] over MLP projection inputs, G = E[g g^T] over output gradients.

Cost control:
- no parameter requires grad, so no weight gradient is ever computed;
- the input of the earliest hooked projection becomes the autograd leaf, so the backward pass stops
  at the lowest hooked block and nothing below it is differentiated;
- the loss gradient at the logits is formed directly (softmax minus one-hot), so sampling labels
  from the model (true Fisher) reuses the softmax the gradient needs anyway;
- gate and up read the same input: its A is accumulated once.
Statistics are per token: the last position of each row (which has no next-token label) is dropped.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lethe.edits.architectures import MlpLayout
from lethe.edits.corpus import BatchSource, derived_seed
from lethe.edits.errors import InvalidArgument

OnBatch = Callable[[int, int], None]
"""Called after each batch with (batches done, tokens done)."""


def sample_labels(probabilities: torch.Tensor, generator: torch.Generator, block: int = 1024) -> torch.Tensor:
    """One label per row drawn from the row's distribution (the model's own: the true Fisher).

    Two-level inverse-CDF sampling: pick a block of the vocabulary by its mass, then a token inside
    it by a float64 cumulative sum. It costs about one pass over the probabilities, where
    `torch.multinomial` costs several softmaxes over a 262k-token vocabulary (measured: 0.24 s
    against 15 s for 1020 rows of 262,144 on 2 cores).
    """
    rows, vocab = probabilities.shape
    padded = -vocab % block
    if padded:
        probabilities = torch.nn.functional.pad(probabilities, (0, padded))
    blocks = probabilities.view(rows, -1, block)
    # Block masses in float32 (relative error ~1e-7, and fast); the cumulative sums in float64.
    block_cdf = blocks.sum(dim=-1).to(torch.float64).cumsum_(dim=-1)
    u = torch.rand(rows, 1, generator=generator, dtype=torch.float64, device=probabilities.device)
    u = u * block_cdf[:, -1:]
    chosen = torch.searchsorted(block_cdf, u, right=True).clamp_(max=block_cdf.shape[1] - 1)
    below = torch.where(chosen > 0, block_cdf.gather(1, (chosen - 1).clamp_min(0)), 0.0)
    mass = (block_cdf.gather(1, chosen) - below).clamp_min(torch.finfo(torch.float64).tiny)
    index = torch.arange(rows, device=probabilities.device)
    inner_cdf = blocks[index, chosen.squeeze(1)].to(torch.float64).cumsum_(dim=-1)
    # Position within the block, rescaled to the inner sum so round-off cannot step past its end.
    within = (u - below) / mass * inner_cdf[:, -1:]
    inner = torch.searchsorted(inner_cdf, within, right=True).clamp_(max=block - 1)
    labels = (chosen * block + inner).squeeze(1)
    return labels.clamp_(max=vocab - 1)


@dataclass
class FactorSums:
    """Running sums of a a^T and g g^T per hooked projection, and the number of tokens summed.

    `a` has no entry for a projection that reads its twin's input (`aliases` maps it to the twin).
    """

    a: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)
    g: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)
    aliases: dict[tuple[int, str], tuple[int, str]] = field(default_factory=dict)
    tokens: int = 0
    sequences: int = 0
    batches: int = 0

    def save(self, path: Path, metadata: dict[str, str]) -> None:
        tensors = {f"{block}.{proj}.A": t.cpu() for (block, proj), t in self.a.items()}
        tensors |= {f"{block}.{proj}.G": t.cpu() for (block, proj), t in self.g.items()}
        counts = {"tokens": str(self.tokens), "sequences": str(self.sequences), "batches": str(self.batches)}
        save_file(tensors, str(path), metadata=metadata | counts)

    def load(self, path: Path, device: torch.device) -> dict[str, str]:
        """Replace the sums with those saved at `path`; returns the saved metadata."""
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            for key in handle.keys():  # noqa: SIM118
                block, proj, which = key.split(".")
                target = self.a if which == "A" else self.g
                target[(int(block), proj)] = handle.get_tensor(key).to(device)
        self.tokens = int(metadata.get("tokens", 0))
        self.sequences = int(metadata.get("sequences", 0))
        self.batches = int(metadata.get("batches", 0))
        return metadata

    def means(self) -> dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]:
        if self.tokens == 0:
            raise InvalidArgument("no tokens were collected: the corpus gave no full sequence")
        a = {key: total / self.tokens for key, total in self.a.items()}
        return {key: (a[self.aliases.get(key, key)], g / self.tokens) for key, g in self.g.items()}


class ProjectionHooks:
    """Forward hooks that keep each hooked projection's output tensor and sum its input a a^T.

    With `statistics=False` they only set up the graph (the benchmark's bound uses that).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        layout: MlpLayout,
        targets: list[tuple[int, str]],
        sums: FactorSums,
        dtype: torch.dtype = torch.float32,
        *,
        statistics: bool = True,
    ) -> None:
        self.sums, self.dtype, self.statistics = sums, dtype, statistics
        # Off outside a collection step: the self-sampled corpus runs the same model to generate.
        self.active = False
        self.outputs: dict[tuple[int, str], torch.Tensor] = {}
        twins = dict(layout.input_twins)
        for block, proj in targets:
            twin = (block, twins.get(proj, ""))
            if twin in targets:
                sums.aliases[(block, proj)] = twin
        self._handles = []
        for target in targets:
            module = model.get_submodule(layout.module_name(*target))
            self._handles.append(module.register_forward_pre_hook(self._make_leaf))
            self._handles.append(module.register_forward_hook(self._recorder(target)))

    def _make_leaf(self, _module: torch.nn.Module, args: tuple) -> tuple | None:
        # Only the earliest hooked projection sees an input outside the graph; making it a leaf
        # puts every later activation in the graph and stops the backward pass here.
        if self.active and args and isinstance(args[0], torch.Tensor) and not args[0].requires_grad:
            return (args[0].detach().requires_grad_(True), *args[1:])
        return None

    def _recorder(self, target: tuple[int, str]) -> Callable:
        accumulates_a = self.statistics and target not in self.sums.aliases

        def record(_module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
            if not self.active:
                return
            self.outputs[target] = output
            if accumulates_a:
                _accumulate(self.sums.a, target, args[0][:, :-1], self.dtype)

        return record

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _accumulate(store: dict, key: tuple[int, str], values: torch.Tensor, dtype: torch.dtype) -> None:
    flat = values.reshape(-1, values.shape[-1]).detach().to(dtype)
    if key in store:
        store[key].addmm_(flat.T, flat)
    else:
        store[key] = flat.T @ flat


@dataclass
class Collector:
    """Accumulates factor sums for `targets` over the batches of a source."""

    model: torch.nn.Module
    layout: MlpLayout
    targets: list[tuple[int, str]]
    labels: str = "sampled"
    seed: int = 0
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        self.model.eval()
        self.model.requires_grad_(False)
        self.device = next(self.model.parameters()).device

    def run(
        self,
        source: BatchSource,
        token_budget: int,
        sums: FactorSums | None = None,
        *,
        on_batch: OnBatch | None = None,
        flush: Callable[[FactorSums], None] | None = None,
        flush_every: int = 0,
    ) -> FactorSums:
        """Process batches from `sums.batches` on until `token_budget` tokens are summed."""
        sums = sums or FactorSums()
        hooks = ProjectionHooks(self.model, self.layout, self.targets, sums, self.dtype)
        try:
            if sums.tokens >= token_budget:
                return sums
            for index, input_ids in source.batches(start=sums.batches):
                self._step(hooks, index, input_ids.to(self.device))
                sums.tokens += input_ids.shape[0] * (input_ids.shape[1] - 1)
                sums.sequences += input_ids.shape[0]
                sums.batches = index + 1
                if flush and flush_every and sums.batches % flush_every == 0:
                    flush(sums)
                if on_batch:
                    on_batch(sums.batches, sums.tokens)
                if sums.tokens >= token_budget:
                    break  # before asking the source for another batch: sampling one costs minutes
        finally:
            hooks.remove()
        return sums

    def _step(self, hooks: ProjectionHooks, index: int, input_ids: torch.Tensor) -> None:
        if input_ids.shape[1] < 2:
            raise InvalidArgument("sequences need at least 2 tokens (seq_len >= 2)")
        hooks.outputs.clear()
        positions = torch.arange(input_ids.shape[1] - 1, device=input_ids.device)
        with torch.enable_grad():
            hooks.active = True
            try:
                logits = self.model(input_ids=input_ids, use_cache=False, logits_to_keep=positions).logits
            finally:
                hooks.active = False
            if logits.shape[1] == input_ids.shape[1]:  # models that ignore logits_to_keep
                logits = logits[:, :-1]
            gradient = self._logit_gradient(logits.detach(), input_ids[:, 1:], index)
            outputs = [hooks.outputs[target] for target in self.targets]
            grads = torch.autograd.grad(logits, outputs, grad_outputs=gradient)
        del logits, gradient
        hooks.outputs.clear()
        for target, grad in zip(self.targets, grads, strict=True):
            _accumulate(hooks.sums.g, target, grad[:, :-1], self.dtype)

    def _logit_gradient(self, logits: torch.Tensor, gold: torch.Tensor, index: int) -> torch.Tensor:
        """d(sum of token cross-entropies)/d(logits) = softmax - one_hot(label)."""
        # softmax in at least float32: bf16 probabilities would distort both sampling and gradient
        gradient = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
        flat = gradient.view(-1, gradient.shape[-1])
        if self.labels == "sampled":
            generator = torch.Generator(device=flat.device).manual_seed(derived_seed(self.seed, index))
            labels = sample_labels(flat, generator)
        else:
            labels = gold.reshape(-1)
        flat[torch.arange(flat.shape[0], device=flat.device), labels] -= 1
        return gradient.to(logits.dtype)
