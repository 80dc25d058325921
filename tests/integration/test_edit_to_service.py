"""A checkpoint written by `lethe edit apply` is served beside its parent, sharing its weights."""

from pathlib import Path

import pytest
import torch

from lethe.edits.apply_job import apply_edit
from lethe.edits.checkpoint import read_tensors
from lethe.edits.collection_job import CollectRequest, collect
from lethe.edits.recipe import Recipe
from tests.service.conftest import ServerThread, settings_for
from tests.service.tiny import build_tiny_llama
from tests.tiny_models import write_corpus


def _greedy(model_dir: Path, prompt: str, tokens: int) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=tokens, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


@pytest.mark.slow
def test_real_edit_is_served_beside_its_parent(tmp_path: Path) -> None:
    from lethe.client import LetheClient
    from lethe.service.config import VariantSpec

    base = build_tiny_llama(tmp_path / "base")
    factors = tmp_path / "factors"
    collect(
        CollectRequest(
            model=base,
            corpus=str(write_corpus(tmp_path / "corpus.txt")),
            out=factors,
            blocks=[0, 1],
            tokens=2000,
            seq_len=64,
            batch_size=4,
            progress=False,
        )
    )
    pruned = tmp_path / "pruned"
    result = apply_edit(base, factors, pruned, Recipe(blocks=[0, 1], keep_mass=0.5), progress=False)

    server = ServerThread(
        settings_for(),
        [VariantSpec(name="base", model=str(base)), VariantSpec(name="pruned", checkpoint=pruned)],
    )
    try:
        with LetheClient(server.target) as client:
            details = client.get_variant("pruned")
            assert sorted(details.edited_tensors) == sorted(result.manifest["edited_tensors"])
            edited = read_tensors(pruned, result.manifest["edited_tensors"])
            edited_bytes = sum(t.numel() * t.element_size() for t in edited.values())
            assert details.memory.own_bytes == edited_bytes, "only the edited matrices are the variant's own"
            assert details.memory.shared_bytes == details.memory.parameter_bytes - edited_bytes
            prompt = "the quick brown fox"
            answers = {
                name: client.generate(prompt, variant=name, max_tokens=12, temperature=0.0)
                for name in ("base", "pruned")
            }
    finally:
        server.stop()
    assert answers["base"].variant == "base" and answers["pruned"].variant == "pruned"
    assert answers["base"].text == _greedy(base, prompt, 12)
    assert answers["pruned"].text == _greedy(pruned, prompt, 12)
    assert answers["base"].text != answers["pruned"].text
