"""K-FAC collection speed against a forward-only pass, and the bound the backward pass sets.

For the same batches, in one run, interleaved so that machine noise hits every variant alike:
  forward    model forward only (no grad): the reference throughput
  bound      forward + cross-entropy loss + the backward pass from the loss down to the first hooked
             block, computing only activation gradients (no weight gradients, statistics or sampling)
  strict     the same with dL/dlogits handed over for free: no loss, no softmax (a floor no real
             collection can beat, since it must compute the loss gradient somehow)
  collect    Lethe's collection (sampled labels, A and G accumulated)
The figure is collect tokens/s over forward tokens/s; it cannot beat forward/bound, and the goal is
to come within 10 % of that bound. Then eigendecomposition and edit seconds per block.

    python bench/kfac.py [--model gemma3-270m] [--blocks 10,11,12] [--batches 4] [--repeats 3]
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lethe.edits.collect import Collector, FactorSums, ProjectionHooks
from lethe.edits.loading import Checkpoint, load_causal_lm
from lethe.edits.models import resolve_model
from lethe.edits.prune import prune_weight
from lethe.edits.spectral import eigendecompose


def batches(vocab: int, count: int, batch_size: int, seq_len: int, bos: int) -> list[torch.Tensor]:
    """Random token ids: the cost of every variant does not depend on the text."""
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        ids = torch.randint(3, vocab, (batch_size, seq_len), generator=generator)
        ids[:, 0] = bos
        out.append(ids)
    return out


def time_forward(model: torch.nn.Module, ids: torch.Tensor) -> float:
    positions = torch.arange(ids.shape[1] - 1)
    started = time.perf_counter()
    with torch.no_grad():
        model(input_ids=ids, use_cache=False, logits_to_keep=positions)
    return time.perf_counter() - started


def time_bound(model: torch.nn.Module, layout, targets, ids: torch.Tensor) -> float:
    """Forward, then activation gradients from the loss down to the hooked outputs; nothing else."""
    hooks = ProjectionHooks(model, layout, targets, FactorSums(), statistics=False)
    positions = torch.arange(ids.shape[1] - 1)
    started = time.perf_counter()
    hooks.active = True
    logits = model(input_ids=ids, use_cache=False, logits_to_keep=positions).logits
    hooks.active = False
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")
    torch.autograd.grad(loss, [hooks.outputs[t] for t in targets])
    elapsed = time.perf_counter() - started
    hooks.remove()
    return elapsed


def time_strict_bound(model: torch.nn.Module, layout, targets, ids: torch.Tensor) -> float:
    """Forward, then the activation-gradient backward with dL/dlogits given for free (not timed)."""
    hooks = ProjectionHooks(model, layout, targets, FactorSums(), statistics=False)
    positions = torch.arange(ids.shape[1] - 1)
    gradient = torch.randn(ids.shape[0], ids.shape[1] - 1, model.config.vocab_size) * 1e-6
    started = time.perf_counter()
    hooks.active = True
    logits = model(input_ids=ids, use_cache=False, logits_to_keep=positions).logits
    hooks.active = False
    torch.autograd.grad(logits, [hooks.outputs[t] for t in targets], grad_outputs=gradient)
    elapsed = time.perf_counter() - started
    hooks.remove()
    return elapsed


class _Batches:
    def __init__(self, ids: torch.Tensor) -> None:
        self.ids = ids

    def batches(self, start: int = 0):
        yield start, self.ids


def time_collect(model: torch.nn.Module, layout, targets, ids: torch.Tensor) -> float:
    collector = Collector(model, layout, targets, labels="sampled")
    started = time.perf_counter()
    collector.run(_Batches(ids), token_budget=1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--blocks", default="10,11,12")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/out/kfac.json"))
    args = parser.parse_args()

    path = resolve_model(args.model)
    spec = Checkpoint.read(path)
    model, tokenizer = load_causal_lm(path, torch.device("cpu"), torch.float32)
    model.requires_grad_(False)
    blocks = [int(b) for b in args.blocks.split(",")]
    targets = [(b, p) for b in blocks for p in spec.layout.projections]
    data = batches(
        model.config.vocab_size, args.batches, args.batch_size, args.seq_len, tokenizer.bos_token_id
    )
    tokens = args.batch_size * (args.seq_len - 1)

    time_forward(model, data[0])  # warm-up
    times: dict[str, list[float]] = {"forward": [], "bound": [], "strict": [], "collect": []}
    for repeat in range(args.repeats):
        for index, ids in enumerate(data):
            times["forward"].append(time_forward(model, ids))
            times["bound"].append(time_bound(model, spec.layout, targets, ids))
            times["strict"].append(time_strict_bound(model, spec.layout, targets, ids))
            times["collect"].append(time_collect(model, spec.layout, targets, ids))
            print(
                f"repeat {repeat} batch {index}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items())
            )
    median = {name: statistics.median(values) for name, values in times.items()}
    # Each batch's timings are taken back to back: their ratios drift less with machine load.
    paired = statistics.median(b / c for b, c in zip(times["bound"], times["collect"], strict=True))
    strict_paired = statistics.median(b / c for b, c in zip(times["strict"], times["collect"], strict=True))
    rate = {name: tokens / seconds for name, seconds in median.items()}
    strict = rate["strict"] / rate["forward"]
    ratio = rate["collect"] / rate["forward"]
    bound = rate["bound"] / rate["forward"]

    eigendecompose(torch.eye(64, dtype=torch.float64))  # warm-up: LAPACK initialisation
    eigen_seconds, apply_seconds = {}, {}
    for block in blocks:
        eigen_seconds[block] = apply_seconds[block] = 0.0
        for projection in spec.layout.projections:
            module = model.get_submodule(spec.layout.module_name(block, projection))
            weight = module.weight.detach()
            d_out, d_in = weight.shape
            a = torch.randn(4 * d_in, d_in, dtype=torch.float64)
            g = torch.randn(4 * d_out, d_out, dtype=torch.float64)
            started = time.perf_counter()
            eigen_a, eigen_g = eigendecompose(a.T @ a), eigendecompose(g.T @ g)
            eigen_seconds[block] += time.perf_counter() - started
            started = time.perf_counter()
            prune_weight(weight, eigen_a, eigen_g, 0.6)
            apply_seconds[block] += time.perf_counter() - started

    report = {
        "model": args.model,
        "blocks": blocks,
        "tokens_per_batch": tokens,
        "threads": torch.get_num_threads(),
        "median_seconds": median,
        "tokens_per_second": rate,
        "collect_over_forward": ratio,
        "bound_over_forward": bound,
        "fraction_of_bound": ratio / bound,
        "fraction_of_bound_paired_median": paired,
        "strict_bound_over_forward": strict,
        "fraction_of_strict_bound": ratio / strict,
        "fraction_of_strict_bound_paired_median": strict_paired,
        "eigen_seconds_per_block": eigen_seconds,
        "apply_seconds_per_block": apply_seconds,
    }
    print()
    print(f"model {args.model}, blocks {blocks}, {tokens} tokens/batch, {torch.get_num_threads()} threads")
    print(f"{'variant':<10}{'s/batch':>10}{'tok/s':>10}")
    for name in times:
        print(f"{name:<10}{median[name]:>10.2f}{rate[name]:>10.0f}")
    print(f"collect / forward tokens/s: {ratio:.3f}")
    print(f"bound   / forward tokens/s: {bound:.3f}  (forward + loss + activation-gradient backward)")
    print(f"strict  / forward tokens/s: {strict:.3f}  (dL/dlogits given for free: no loss, no softmax)")
    print(
        f"collect reaches {100 * ratio / bound:.1f} % of the bound (goal: >= 90 %); "
        f"median of per-batch paired ratios: {100 * paired:.1f} %"
    )
    print(
        f"collect reaches {100 * ratio / strict:.1f} % of the strict floor; "
        f"median of per-batch paired ratios: {100 * strict_paired:.1f} %"
    )
    for block in blocks:
        print(
            f"block {block}: eigendecomposition {eigen_seconds[block]:.2f}s, edit {apply_seconds[block]:.2f}s"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
