"""One model loader (`load_causal_lm`) and one name/path resolution (`resolve_model`), used by the
edits, the evaluation and the service alike."""

import json
from pathlib import Path

import pytest
import torch

from lethe.edits.errors import InvalidArgument, NotFound
from lethe.edits.evaluation.loading import load_model
from lethe.edits.loading import load_causal_lm
from lethe.edits.models import KNOWN_MODELS, resolve_model
from lethe.edits.recipe import Recipe


def test_the_loader_gives_an_inference_model_in_the_dtype_on_the_device(tiny_llama: Path) -> None:
    model, tokenizer = load_causal_lm(tiny_llama, "cpu", torch.bfloat16)
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert tokenizer("the cat").input_ids


def test_the_loader_refuses_a_directory_without_config_json_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"no config\.json") as caught:
        load_causal_lm(tmp_path, torch.device("cpu"), torch.float32)
    assert str(tmp_path) in str(caught.value)


def test_the_service_loads_through_the_same_loader(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lethe.service.engines import weights

    calls: list[tuple[Path, object, torch.dtype]] = []

    def record(path: Path, device: object, dtype: torch.dtype) -> tuple[object, object]:
        calls.append((path, device, dtype))
        return "model", "tokenizer"

    monkeypatch.setattr(weights, "load_causal_lm", record)
    assert weights.load_model(tiny_llama, torch.float16, "cpu") == ("model", "tokenizer")
    assert calls == [(tiny_llama, "cpu", torch.float16)]


def test_the_evaluation_loads_fp32_and_records_an_edit(tiny_llama: Path, tmp_path: Path) -> None:
    plain = load_model(str(tiny_llama))
    assert plain.ref.path == str(tiny_llama.resolve()) and plain.ref.edit is None
    assert {p.dtype for p in plain.model.parameters()} == {torch.float32} and not plain.model.training

    from lethe.edits.apply_job import apply_edit
    from lethe.edits.collection_job import CollectRequest, collect

    factors = tmp_path / "factors"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sees the dog\n" * 40)
    collect(
        CollectRequest(
            model=tiny_llama,
            corpus=str(corpus),
            out=factors,
            blocks=[1],
            tokens=64,
            seq_len=8,
            batch_size=2,
            progress=False,
        )
    )
    edited = apply_edit(
        tiny_llama, factors, tmp_path / "edited", Recipe(blocks=[1], keep_mass=0.5), progress=False
    )
    loaded = load_model(str(edited.checkpoint))
    assert loaded.ref.edit == {
        "recipe": json.loads((edited.checkpoint / "lethe_edit.json").read_text())["recipe"],
        "parent": str(tiny_llama.resolve()),
    }


def test_the_evaluation_resolves_names_like_everything_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LETHE_HOME", str(tmp_path / "home"))
    with pytest.raises(NotFound) as caught:
        load_model(str(tmp_path / "nowhere"))
    assert all(name in str(caught.value) for name in KNOWN_MODELS)


def test_an_existing_checkpoint_directory_wins_over_a_known_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = next(iter(KNOWN_MODELS))
    monkeypatch.setenv("LETHE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFound, match="lethe models prepare"):
        resolve_model(name, prepare=False)  # a name, and no such directory here: not prepared
    (tmp_path / name).mkdir()
    (tmp_path / name / "config.json").write_text("{}")
    assert resolve_model(name, prepare=False) == (tmp_path / name).resolve()
    assert resolve_model(Path(name)) == (tmp_path / name).resolve()
