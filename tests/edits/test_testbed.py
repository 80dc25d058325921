"""The testbed's pieces on tiny settings: vocabulary, data, deterministic training, the control."""

import json

import torch

from lethe.edits.testbed.build import build_testbed, config_key, is_built
from lethe.edits.testbed.calibration import calibrate_keep_mass
from lethe.edits.testbed.config import DataConfig, ModelConfig, TestbedConfig, TrainConfig
from lethe.edits.testbed.data import KINDS, generate
from lethe.edits.testbed.pipeline import collect_clean_factors, random_basis_control, random_orthogonal
from lethe.edits.testbed.training import build_model, train
from lethe.edits.testbed.vocabulary import UNK, build_tokenizer, vocabulary

SMALL_DATA = DataConfig(
    n_facts=10, n_canaries=4, n_validation_canaries=4, n_open_book_train=30, n_open_book_test=10,
    n_open_book_distractor_test=10, n_generic_train=20, n_generic_heldout=10, n_clean_open_book=10,
    n_clean_generic=10, fact_repeats=2, canary_repeats=2, clean_rule_repeats=1,
)  # fmt: skip
TINY = TestbedConfig(
    data=SMALL_DATA,
    model=ModelConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2),
    train=TrainConfig(epochs=1, batch_size=8, seq_len=32, warmup_steps=2, threads=1),
)


def test_tokenizer_round_trip_without_unknown_words() -> None:
    tokenizer = build_tokenizer(vocabulary(20))
    text = "context: ka lo lives in Mirt . Q: where does ka lo live ? A: Mirt ."
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer("zzz")["input_ids"][-1] == tokenizer.convert_tokens_to_ids(UNK)


def test_data_is_deterministic_and_held_out_parts_never_occur_in_training() -> None:
    config = DataConfig()
    data = generate(config, seed=3)
    assert generate(config, seed=3) == data
    assert generate(config, seed=4).tasks != data.tasks
    tokenizer = build_tokenizer(vocabulary(config.modulus))
    every_text = data.train + data.clean + data.heldout
    every_text += [t["prompt"] + t["target"] for t in data.tasks]
    assert all(tokenizer.unk_token_id not in tokenizer(t)["input_ids"] for t in every_text)
    assert {t["kind"] for t in data.tasks} == set(KINDS)
    train_text = "\n".join(data.train)
    for task in data.tasks:
        full = task["prompt"] + task["target"]
        if task["kind"] in ("rule", "open_book", "open_book_distractors"):  # new: never seen whole
            assert full not in train_text
        if task["kind"] in ("facts_closed_book", "canaries"):  # memorized: seen verbatim
            assert full in train_text
    clean_text = "\n".join(data.clean)
    assert not any(t["prompt"] in clean_text for t in data.tasks if t["kind"] == "canaries")
    validation = [v["prompt"] + v["target"] for v in data.validation]
    assert len(validation) == config.n_validation_canaries
    assert all(v in train_text and v.split(": ")[1] not in clean_text for v in validation)
    assert not set(validation) & {t["prompt"] + t["target"] for t in data.tasks}
    fact_names = [t["prompt"].split("does ")[1].split(" live")[0] for t in data.tasks
                  if t["kind"] == "facts_closed_book"]  # fmt: skip
    assert not any(f" {name} lives" in clean_text for name in fact_names)


def test_open_book_answer_is_the_asked_name_s_city() -> None:
    config = DataConfig(distractors=2, distractor_share=0.5)
    data = generate(config, seed=0)
    counts = {"open_book": 1, "facts_in_context": 1, "open_book_distractors": 3}
    for task in data.tasks:
        if task["kind"] not in counts:
            continue
        context, question = task["prompt"].removeprefix("context: ").split(" Q: ")
        facts = dict(s.strip().split(" lives in ") for s in context.split(" .") if s.strip())
        asked = question.removeprefix("where does ").removesuffix(" live ? A:")
        assert len(facts) == counts[task["kind"]] and facts[asked] == task["target"].strip()
    with_distractors = [t for t in data.train if t.startswith("context:") and t.count(" lives in ") == 3]
    assert 0 < len(with_distractors) < config.n_open_book_train  # about half of them


def test_training_is_deterministic_and_lowers_the_loss() -> None:
    data = generate(TINY.data, TINY.seed)
    tokenizer = build_tokenizer(vocabulary(TINY.data.modulus))
    runs, weights = [], []
    for _ in range(2):
        model = build_model(TINY.model, tokenizer, TINY.seed)
        losses: list[float] = []
        runs.append(train(model, data.train, tokenizer, TINY.train, TINY.seed,
                          lambda _step, loss, out=losses: out.append(loss)))  # fmt: skip
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])
    assert runs[0].steps == len(losses) > 3
    assert losses[-1] < losses[0]


def test_build_writes_a_loadable_checkpoint_and_data(tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = build_testbed(tmp_path / "tb", TINY)
    assert is_built(out, TINY) and not is_built(out, TINY.model_copy(update={"seed": 1}))
    meta = json.loads((out / "testbed.json").read_text())
    assert meta["key"] == config_key(TINY) and meta["training"]["steps"] > 0
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    assert model.config.model_type == "llama" and len(tokenizer) == model.config.vocab_size
    tasks = [json.loads(line) for line in (out / "data" / "tasks.jsonl").read_text().splitlines()]
    assert {t["kind"] for t in tasks} == set(KINDS)
    validation = [json.loads(line) for line in (out / "data" / "validation.jsonl").read_text().splitlines()]
    assert len(validation) == TINY.data.n_validation_canaries
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no build leftovers


def test_random_orthogonal_is_orthogonal_and_seeded() -> None:
    q = random_orthogonal(16, torch.Generator().manual_seed(0))
    assert torch.allclose(q @ q.T, torch.eye(16, dtype=q.dtype), atol=1e-10)
    assert torch.equal(q, random_orthogonal(16, torch.Generator().manual_seed(0)))


def test_calibration_scans_rho_down_and_stops_at_the_first_that_meets_the_target(tmp_path) -> None:
    out = build_testbed(tmp_path / "tb", TINY)
    factors = collect_clean_factors(out, tmp_path / "factors", tokens=512, seq_len=32, batch_size=4)
    validation = out / "data" / "validation.jsonl"
    grid = [0.5, 0.99, 0.9]
    stops = calibrate_keep_mass(out / "model", factors, validation, grid=grid, most_recited=1.0)
    assert stops.keep_mass == 0.99 and [rho for rho, _ in stops.trace] == [1.0, 0.99]
    never = calibrate_keep_mass(out / "model", factors, validation, grid=grid, most_recited=-1.0)
    assert never.keep_mass is None and [rho for rho, _ in never.trace] == [1.0, 0.99, 0.9, 0.5]
    assert all(0.0 <= recited <= 1.0 for _, recited in never.trace)


def test_the_random_basis_control_is_a_loadable_checkpoint_that_changes_only_the_mlps(tmp_path) -> None:
    from safetensors.torch import load_file

    out = build_testbed(tmp_path / "tb", TINY)
    factors = collect_clean_factors(out, tmp_path / "factors", tokens=256, seq_len=32, batch_size=4)
    control = random_basis_control(out / "model", factors, tmp_path / "control", 0.5, blocks=[0], seed=3)
    meta = json.loads((control / "lethe_control.json").read_text())
    assert meta["keep_mass"] == 0.5 and set(meta["kept"]) == {"0.gate", "0.up", "0.down"}
    before, after = load_file(out / "model" / "model.safetensors"), load_file(control / "model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {f"model.layers.0.mlp.{p}_proj.weight" for p in ("gate", "up", "down")}
    assert (control / "tokenizer.json").is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
