"""Factor collection: exact against brute-force per-token sums, true-Fisher sampling, resume."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lethe.edits.architectures import layout_for
from lethe.edits.collect import Collector, FactorSums, sample_labels
from lethe.edits.collection_job import CollectRequest, collect, partial_dir
from lethe.edits.corpus import PackedTextSource
from lethe.edits.factor_store import FactorStore
from tests.tiny_models import build_model, build_tokenizer, save_tiny_model


def _brute_force(model: torch.nn.Module, layout, targets, batches: list[torch.Tensor]) -> dict:
    """Per-token outer products, one token at a time, from a plain full backward pass."""
    model = model.train(False)
    model.requires_grad_(True)
    sums = {target: [0.0, 0.0] for target in targets}
    tokens = 0
    for input_ids in batches:
        inputs, outputs = {}, {}
        handles = []
        for target in targets:
            module = model.get_submodule(layout.module_name(*target))

            def hook(_m, args, out, target=target, inputs=inputs, outputs=outputs):
                inputs[target] = args[0].detach()
                out.retain_grad()
                outputs[target] = out

            handles.append(module.register_forward_hook(hook))
        logits = model(input_ids=input_ids).logits[:, :-1]
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), input_ids[:, 1:].reshape(-1), reduction="sum"
        )
        loss.backward()
        for handle in handles:
            handle.remove()
        for target in targets:
            a, g = inputs[target], outputs[target].grad
            for row in range(input_ids.shape[0]):
                for position in range(input_ids.shape[1] - 1):
                    sums[target][0] = sums[target][0] + torch.outer(a[row, position], a[row, position])
                    sums[target][1] = sums[target][1] + torch.outer(g[row, position], g[row, position])
        tokens += input_ids.shape[0] * (input_ids.shape[1] - 1)
    model.requires_grad_(False)
    return {target: (a / tokens, g / tokens) for target, (a, g) in sums.items()}


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox"])
@pytest.mark.parametrize("blocks", [[0, 1, 2], [1, 2]])
def test_factors_equal_brute_force_per_token_sums(family: str, blocks: list[int], tiny_corpus: Path) -> None:
    tokenizer = build_tokenizer()
    model = build_model(family, len(tokenizer)).double()  # float64 on both sides: exact comparison
    layout = layout_for(model.config.model_type)
    targets = [(block, proj) for block in blocks for proj in layout.projections]
    source = PackedTextSource(tiny_corpus, tokenizer, seq_len=12, batch_size=3)
    batches = [ids for _, (_, ids) in zip(range(3), source.batches(), strict=False)]

    collector = Collector(model, layout, targets, labels="gold", dtype=torch.float64)
    sums = collector.run(source, token_budget=3 * 3 * 11)
    expected = _brute_force(model, layout, targets, batches)

    assert sums.tokens == 3 * 3 * 11
    for target, (a, g) in sums.means().items():
        torch.testing.assert_close(a, expected[target][0], rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(g, expected[target][1], rtol=1e-10, atol=1e-16)
        assert g.abs().sum() > 0, "gradients must reach every hooked block"


def test_backward_stops_at_the_earliest_hooked_block(tiny_corpus: Path) -> None:
    tokenizer = build_tokenizer()
    model = build_model("llama", len(tokenizer))
    layout = layout_for("llama")
    reached = []
    model.model.layers[0].self_attn.o_proj.register_full_backward_hook(lambda *_: reached.append(0))
    model.model.layers[1].self_attn.o_proj.register_full_backward_hook(lambda *_: reached.append(1))
    source = PackedTextSource(tiny_corpus, tokenizer, seq_len=12, batch_size=2)
    Collector(model, layout, [(1, "down")]).run(source, token_budget=22)
    assert reached == [], "nothing below the hooked MLP (not even block 1's attention) is differentiated"
    assert not any(p.grad is not None for p in model.parameters()), "no weight gradients are formed"


def test_sampled_labels_follow_the_model_distribution() -> None:
    tokenizer = build_tokenizer()
    model = build_model("llama", len(tokenizer))
    with torch.no_grad():
        probabilities = torch.softmax(model(input_ids=torch.tensor([[1, 5, 9, 13]])).logits[0, -1] * 10, -1)
    draws = 200_000
    generator = torch.Generator().manual_seed(0)
    labels = sample_labels(probabilities.expand(draws, -1).contiguous(), generator)
    empirical = torch.bincount(labels, minlength=probabilities.numel()).double() / draws
    total_variation = 0.5 * (empirical - probabilities.double()).abs().sum().item()
    assert probabilities.max() < 0.9, "the test distribution must not be nearly deterministic"
    assert total_variation < 0.01, (
        f"sampled labels deviate from the model's distribution (TV {total_variation})"
    )


def test_true_fisher_differs_from_empirical(tiny_llama: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    base = {
        "model": tiny_llama,
        "corpus": str(tiny_corpus),
        "blocks": [2],
        "tokens": 200,
        "seq_len": 12,
        "batch_size": 4,
        "progress": False,
    }
    collect(CollectRequest(**base, out=tmp_path / "sampled"))
    collect(CollectRequest(**base, out=tmp_path / "gold", labels="gold"))
    sampled = FactorStore(tmp_path / "sampled").factors(2, "down")
    gold = FactorStore(tmp_path / "gold").factors(2, "down")
    torch.testing.assert_close(sampled[0], gold[0])  # A does not depend on labels
    assert not torch.allclose(sampled[1], gold[1], rtol=1e-3)


def test_interrupted_collection_resumes_to_the_uninterrupted_result(
    tiny_llama: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    base = {
        "model": tiny_llama,
        "corpus": str(tiny_corpus),
        "blocks": [1, 2],
        "tokens": 600,
        "seq_len": 16,
        "batch_size": 4,
        "flush_every": 1,
        "progress": False,
    }
    collect(CollectRequest(**base, out=tmp_path / "whole"))

    resumed = tmp_path / "resumed"

    def interrupt(batches: int, _tokens: int) -> None:
        if batches == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect(CollectRequest(**base, out=resumed), on_batch=interrupt)
    assert not resumed.exists(), "an unfinished store is never visible at --out"
    assert (partial_dir(resumed) / "sums.safetensors").is_file()

    seen = []
    collect(CollectRequest(**base, out=resumed), on_batch=lambda batches, _: seen.append(batches))
    assert seen[0] == 4, "the rerun continues after the flushed batches"
    assert not partial_dir(resumed).exists()

    whole, again = FactorStore(tmp_path / "whole"), FactorStore(resumed)
    assert whole.manifest.tokens == again.manifest.tokens
    for key, entry in whole.manifest.entries.items():
        for left, right in zip(
            whole.factors(entry.block, entry.projection),
            again.factors(entry.block, entry.projection),
            strict=True,
        ):
            assert torch.equal(left, right), key


def test_partial_sums_with_other_settings_are_not_mixed_in(
    tiny_llama: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    from lethe.edits.errors import AlreadyExists

    base = {
        "model": tiny_llama,
        "corpus": str(tiny_corpus),
        "blocks": [2],
        "tokens": 400,
        "seq_len": 16,
        "batch_size": 4,
        "flush_every": 1,
        "progress": False,
        "out": tmp_path / "f",
    }

    def interrupt(batches: int, _tokens: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect(CollectRequest(**base), on_batch=interrupt)
    with pytest.raises(AlreadyExists, match="partial collection with other settings"):
        collect(CollectRequest(**base | {"seed": 7}))


def test_finished_store_is_reused_and_other_settings_refused(
    tiny_llama: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lethe.edits.errors import AlreadyExists

    request = CollectRequest(
        model=tiny_llama,
        corpus=str(tiny_corpus),
        out=tmp_path / "f",
        blocks=[2],
        tokens=100,
        seq_len=12,
        batch_size=4,
        progress=False,
    )
    first = collect(request)
    calls = []

    def no_loading(*_args: object) -> None:
        raise AssertionError("a finished store is answered without loading the model")

    monkeypatch.setattr("lethe.edits.collection_job.load_causal_lm", no_loading)
    again = collect(request, on_batch=lambda *args: calls.append(args))
    assert calls == [] and again.fingerprint == first.fingerprint
    with pytest.raises(AlreadyExists, match="other settings"):
        collect(request.model_copy(update={"labels": "gold"}))
    with pytest.raises(AlreadyExists, match="fewer than --tokens 1000"):
        collect(request.model_copy(update={"tokens": 1000}))


def test_self_corpus_is_sampled_from_the_model_and_reproducible(tmp_path: Path) -> None:
    model_dir = save_tiny_model(tmp_path / "m")
    request = CollectRequest(
        model=model_dir,
        corpus="self",
        out=tmp_path / "a",
        blocks=[2],
        tokens=60,
        seq_len=8,
        batch_size=4,
        progress=False,
    )
    first = collect(request)
    second = collect(request.model_copy(update={"out": tmp_path / "b"}))
    assert first.tokens >= 60
    assert first.fingerprint == second.fingerprint


def test_factor_sums_round_trip(tmp_path: Path) -> None:
    sums = FactorSums(a={(1, "gate"): torch.eye(3)}, g={(1, "gate"): torch.ones(2, 2)}, tokens=5, batches=2)
    sums.save(tmp_path / "s.safetensors", {"k": "v"})
    loaded = FactorSums()
    metadata = loaded.load(tmp_path / "s.safetensors", torch.device("cpu"))
    assert metadata["k"] == "v" and loaded.tokens == 5 and loaded.batches == 2
    assert torch.equal(loaded.a[(1, "gate")], torch.eye(3))


def test_sampled_labels_draw_a_tail_of_tiny_probabilities_at_its_rate() -> None:
    """0.5 % of the mass over 327k tokens of 1.5e-8 each is drawn at its rate."""
    vocab, head = 327_680, 16
    probabilities = torch.full((vocab,), 0.005 / (vocab - head))
    probabilities[:head] = 0.995 / head
    rows = probabilities.expand(200, -1)
    generator = torch.Generator().manual_seed(1)
    tail_hits = sum(int((sample_labels(rows, generator) >= head).sum()) for _ in range(50))
    assert 25 <= tail_hits <= 75, f"expected ~50 of 10000 draws in the tail, got {tail_hits}"


@pytest.mark.gpu
def test_collection_on_gpu_equals_cpu(tiny_corpus: Path) -> None:
    tokenizer = build_tokenizer()
    results = {}
    for device in ("cpu", "cuda"):
        model = build_model("llama", len(tokenizer)).double().to(device)
        layout = layout_for("llama")
        source = PackedTextSource(tiny_corpus, tokenizer, seq_len=16, batch_size=4)
        sums = Collector(
            model, layout, [(1, "gate"), (2, "down")], labels="sampled", dtype=torch.float64
        ).run(source, token_budget=120)
        results[device] = {key: (a.cpu(), g.cpu()) for key, (a, g) in sums.means().items()}
    for key, (a, g) in results["cpu"].items():
        torch.testing.assert_close(results["cuda"][key][0], a)
        torch.testing.assert_close(results["cuda"][key][1], g)


def test_no_batch_is_drawn_past_the_budget(tiny_corpus: Path) -> None:
    """Self-sampled batches cost a generation each: none may be drawn and then thrown away."""
    tokenizer = build_tokenizer()
    model = build_model("llama", len(tokenizer))
    source = PackedTextSource(tiny_corpus, tokenizer, seq_len=12, batch_size=2)
    drawn = []

    class Counting:
        def batches(self, start: int = 0):
            for index, ids in source.batches(start):
                drawn.append(index)
                yield index, ids

    sums = Collector(model, layout_for("llama"), [(2, "down")]).run(Counting(), token_budget=44)
    assert sums.batches == 2 and drawn == [0, 1]
    resumed = Collector(model, layout_for("llama"), [(2, "down")]).run(Counting(), token_budget=44, sums=sums)
    assert resumed.batches == 2 and drawn == [0, 1], "a finished budget draws nothing more"


def test_model_calls_inside_the_source_do_not_touch_the_statistics(tiny_corpus: Path) -> None:
    """The self corpus runs the model to generate while the hooks are registered."""
    tokenizer = build_tokenizer()
    model = build_model("llama", len(tokenizer))
    layout = layout_for("llama")
    targets = [(1, "gate"), (2, "down")]
    plain = PackedTextSource(tiny_corpus, tokenizer, seq_len=12, batch_size=2)

    class Generating:
        def batches(self, start: int = 0):
            for index, ids in plain.batches(start):
                with torch.no_grad():
                    model(input_ids=torch.randint(4, len(tokenizer), (3, 9)))
                yield index, ids

    expected = Collector(model, layout, targets, labels="gold").run(plain, token_budget=66).means()
    observed = Collector(model, layout, targets, labels="gold").run(Generating(), token_budget=66).means()
    for key, (a, g) in expected.items():
        assert torch.equal(observed[key][0], a) and torch.equal(observed[key][1], g), key
