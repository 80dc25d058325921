"""`edit apply`: the checkpoint round trip, atomic writes, and recipes refused before any work."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lethe.edits.apply_job import apply_edit
from lethe.edits.checkpoint import EDIT_MANIFEST
from lethe.edits.collection_job import CollectRequest, collect
from lethe.edits.edit_manifest import EditManifest, find_edits
from lethe.edits.errors import AlreadyExists, InvalidArgument
from lethe.edits.fingerprint import model_fingerprint
from lethe.edits.recipe import Recipe
from tests.tiny_models import save_tiny_model


@pytest.fixture(scope="module")
def llama_factors(tiny_llama: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("factors") / "llama"
    collect(
        CollectRequest(
            model=tiny_llama,
            corpus=str(tiny_corpus),
            out=out,
            blocks=[1, 2],
            tokens=300,
            seq_len=16,
            batch_size=4,
            progress=False,
        )
    )
    return out


def _tensors(directory: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for path in directory.glob("*.safetensors"):
        tensors |= load_file(path)
    return tensors


def test_checkpoint_round_trip(tiny_llama: Path, llama_factors: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = Recipe(blocks=[1, 2], keep_mass=0.6, overrides={2: {"projections": ["down"], "keep_mass": 0.8}})
    out = tmp_path / "edited"
    result = apply_edit(tiny_llama, llama_factors, out, recipe, progress=False)

    parent, child = _tensors(tiny_llama), _tensors(out)
    edited = set(result.edit_manifest.edited_tensors)
    assert edited == {
        "model.layers.1.mlp.gate_proj.weight",
        "model.layers.1.mlp.up_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.layers.2.mlp.down_proj.weight",
    }
    assert set(parent) == set(child)
    for name, tensor in parent.items():
        if name in edited:
            assert not torch.equal(tensor, child[name]), f"{name} should have been edited"
            assert child[name].dtype == tensor.dtype and child[name].shape == tensor.shape
        else:
            assert torch.equal(tensor, child[name]) and tensor.dtype == child[name].dtype, name

    manifest = json.loads((out / EDIT_MANIFEST).read_text())
    assert manifest["parent"]["fingerprint"] == model_fingerprint(tiny_llama)
    assert manifest["factors"]["fingerprint"] and manifest["lethe_version"] and manifest["created"]
    assert manifest["recipe"]["overrides"]["2"]["keep_mass"] == 0.8
    by_tensor = {m["tensor"]: m for m in manifest["matrices"]}
    assert by_tensor["model.layers.2.mlp.down_proj.weight"]["keep_mass"] == 0.8
    for matrix in manifest["matrices"]:
        assert matrix["achieved_mass"] >= matrix["keep_mass"]
        assert 0 < matrix["kept_pairs"] < matrix["total_pairs"]

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("the cat sees the", return_tensors="pt").input_ids
    generated = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 5
    assert (out / "tokenizer.json").is_file() and not list(tmp_path.glob(".edited.*"))


def test_the_checkpoint_apply_writes_reads_back_typed(
    tiny_llama: Path, llama_factors: Path, tmp_path: Path
) -> None:
    recipe = Recipe(blocks=[1], projections=["up", "down"], keep_mass=0.7)
    out = tmp_path / "checkpoints" / "forget"
    result = apply_edit(tiny_llama, llama_factors, out, recipe, progress=False)

    manifest = EditManifest.read(out)
    assert manifest == result.edit_manifest and manifest is not None
    assert result.manifest == json.loads((out / EDIT_MANIFEST).read_text())  # the JSON form, as written
    assert manifest.parent_path == tiny_llama.resolve()
    assert manifest.parent.fingerprint == model_fingerprint(tiny_llama)
    assert manifest.parent.model_type == "llama"
    assert manifest.factors.path == str(llama_factors.resolve()) and manifest.factors.fingerprint
    assert manifest.recipe == recipe
    assert manifest.edited_tensors == [
        "model.layers.1.mlp.up_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
    ]
    assert [(m.tensor, m.block, m.projection, m.keep_mass) for m in manifest.matrices] == [
        ("model.layers.1.mlp.up_proj.weight", 1, "up", 0.7),
        ("model.layers.1.mlp.down_proj.weight", 1, "down", 0.7),
    ]
    assert find_edits(tmp_path / "checkpoints", tiny_llama) == [("forget", out)]
    assert EditManifest.read(tiny_llama) is None  # the parent is a plain model


def test_eigendecompositions_are_cached_in_the_store(
    tiny_llama: Path, llama_factors: Path, tmp_path: Path
) -> None:
    apply_edit(tiny_llama, llama_factors, tmp_path / "a", Recipe(blocks=[1], keep_mass=0.5), progress=False)
    cached = sorted(p.name for p in (llama_factors / "eigen").iterdir())
    assert "block001.gate.float64.safetensors" in cached
    again = apply_edit(
        tiny_llama, llama_factors, tmp_path / "b", Recipe(blocks=[1], keep_mass=0.5), progress=False
    )
    assert _tensors(tmp_path / "a").keys() == _tensors(tmp_path / "b").keys()
    assert all(torch.equal(_tensors(tmp_path / "a")[k], v) for k, v in _tensors(tmp_path / "b").items())
    assert again.edit_manifest.matrices[0].kept_pairs > 0


_KILL_DURING_WRITE = """
import os, signal, sys
from pathlib import Path
import lethe.edits.checkpoint as checkpoint
from lethe.edits.apply_job import apply_edit
from lethe.edits.recipe import Recipe

original = checkpoint._rewrite_shard
def rewrite_then_die(*args, **kwargs):
    original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
checkpoint._rewrite_shard = rewrite_then_die
apply_edit(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Recipe(blocks=[1], keep_mass=0.5),
           progress=False)
"""


def test_a_killed_write_leaves_nothing_loadable(
    tiny_llama: Path, llama_factors: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    out = tmp_path / "edited"
    killed = subprocess.run(
        [sys.executable, "-c", _KILL_DURING_WRITE, str(tiny_llama), str(llama_factors), str(out)],
        capture_output=True,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert not out.exists()
    with pytest.raises(OSError):
        AutoModelForCausalLM.from_pretrained(out)
    assert list(tmp_path.glob(".edited.tmp-*")), "the half-written checkpoint stays hidden"

    apply_edit(tiny_llama, llama_factors, out, Recipe(blocks=[1], keep_mass=0.5), progress=False)
    assert (out / EDIT_MANIFEST).is_file()
    assert not list(tmp_path.glob(".edited.tmp-*")), "the next write clears stale temporaries"


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ({"blocks": [7], "keep_mass": 0.5}, r"blocks \[7\] do not exist"),
        ({"blocks": [0], "keep_mass": 0.5}, r"no factors for \['0.gate'"),
        ({"blocks": [1], "keep_mass": 1.5}, "keep_mass"),
        ({"blocks": [1], "keep_mass": 0.0}, "keep_mass"),
        ({"blocks": [1], "keep_mass": 0.5, "projections": ["fc"]}, "projections"),
        (
            {"blocks": [1], "keep_mass": 0.5, "overrides": {2: {"keep_mass": 0.9}}},
            r"overrides name blocks \[2\]",
        ),
        ({"blocks": [1], "keep_mass": 0.5, "rho": 0.5}, "rho"),
    ],
)
def test_bad_recipes_fail_before_any_work(
    tiny_llama: Path, llama_factors: Path, tmp_path: Path, recipe: dict, message: str
) -> None:
    eigen = llama_factors / "eigen"
    cached_before = sorted(eigen.iterdir()) if eigen.exists() else []
    with pytest.raises(InvalidArgument, match=message):
        apply_edit(tiny_llama, llama_factors, tmp_path / "out", Recipe.parse(recipe), progress=False)
    assert not (tmp_path / "out").exists()
    assert (sorted(eigen.iterdir()) if eigen.exists() else []) == cached_before


def test_a_projection_the_architecture_lacks_is_refused(tiny_corpus: Path, tmp_path: Path) -> None:
    gpt2 = save_tiny_model(tmp_path / "gpt2", "gpt2")
    factors = tmp_path / "factors"
    collect(
        CollectRequest(
            model=gpt2,
            corpus=str(tiny_corpus),
            out=factors,
            blocks=[1],
            tokens=60,
            seq_len=16,
            batch_size=4,
            progress=False,
        )
    )
    with pytest.raises(InvalidArgument, match=r"projections \['gate'\] do not exist in a gpt2 MLP"):
        apply_edit(gpt2, factors, tmp_path / "out", Recipe(blocks=[1], keep_mass=0.5), progress=False)
    result = apply_edit(
        gpt2,
        factors,
        tmp_path / "out",
        Recipe(blocks=[1], keep_mass=0.5, projections=["up", "down"]),
        progress=False,
    )
    assert result.edit_manifest.edited_tensors == [
        "transformer.h.1.mlp.c_fc.weight",
        "transformer.h.1.mlp.c_proj.weight",
    ]


def test_factors_from_another_model_are_refused(
    tiny_corpus: Path, llama_factors: Path, tmp_path: Path
) -> None:
    other = save_tiny_model(tmp_path / "other", "llama", seed=3)
    with pytest.raises(InvalidArgument, match="collected on another model"):
        apply_edit(other, llama_factors, tmp_path / "out", Recipe(blocks=[1], keep_mass=0.5), progress=False)


def test_existing_output_is_kept_unless_overwrite(
    tiny_llama: Path, llama_factors: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    apply_edit(tiny_llama, llama_factors, out, Recipe(blocks=[1], keep_mass=0.5), progress=False)
    before = (out / EDIT_MANIFEST).read_text()
    with pytest.raises(AlreadyExists):
        apply_edit(tiny_llama, llama_factors, out, Recipe(blocks=[1], keep_mass=0.9), progress=False)
    assert (out / EDIT_MANIFEST).read_text() == before
    apply_edit(
        tiny_llama, llama_factors, out, Recipe(blocks=[1], keep_mass=0.9), overwrite=True, progress=False
    )
    assert json.loads((out / EDIT_MANIFEST).read_text())["recipe"]["keep_mass"] == 0.9
