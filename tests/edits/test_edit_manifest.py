"""`lethe_edit.json` has one typed owner: `EditManifest` writes it, reads it and refuses bad files."""

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from lethe.edits.edit_manifest import (
    EDIT_MANIFEST,
    EditManifest,
    FactorsRef,
    MatrixResult,
    ParentRef,
    find_edits,
)
from lethe.edits.errors import InvalidArgument
from lethe.edits.recipe import Recipe


def _manifest(parent_dir: Path, **changes: Any) -> EditManifest:
    fields: dict[str, Any] = {
        "format": "lethe-edit/1",
        "lethe_version": "0.1.0",
        "created": "2026-01-02T03:04:05Z",
        "parent": ParentRef(path=str(parent_dir), fingerprint="f" * 64, model_type="llama"),
        "factors": FactorsRef(path="/factors", fingerprint="a" * 64),
        "recipe": Recipe(blocks=[1, 2], keep_mass=0.6, overrides={2: {"keep_mass": 0.8}}),
        "matrices": [
            MatrixResult(
                tensor="model.layers.1.mlp.down_proj.weight",
                block=1,
                projection="down",
                keep_mass=0.6,
                achieved_mass=0.61,
                kept_pairs=10,
                total_pairs=100,
            )
        ],
        "edited_tensors": ["model.layers.1.mlp.down_proj.weight"],
    }
    return EditManifest(**(fields | changes))


def _checkpoint(directory: Path, manifest: EditManifest | dict[str, Any] | str | None) -> Path:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text("{}")
    if isinstance(manifest, EditManifest):
        manifest.write(directory)
    elif isinstance(manifest, dict):
        (directory / EDIT_MANIFEST).write_text(json.dumps(manifest))
    elif isinstance(manifest, str):
        (directory / EDIT_MANIFEST).write_text(manifest)
    return directory


def test_round_trip(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "parent")
    written = manifest.write(tmp_path)
    assert written == tmp_path / EDIT_MANIFEST
    again = EditManifest.read(tmp_path)
    assert again == manifest
    assert again is not None and again.recipe.overrides[2].keep_mass == 0.8
    raw = json.loads(written.read_text())
    assert raw["format"] == "lethe-edit/1" and raw["recipe"]["overrides"]["2"]["keep_mass"] == 0.8
    assert list(raw) == [
        "format",
        "lethe_version",
        "created",
        "parent",
        "factors",
        "recipe",
        "matrices",
        "edited_tensors",
    ]
    assert [p.name for p in tmp_path.iterdir()] == [EDIT_MANIFEST]  # written atomically, no leftovers


def test_a_plain_model_directory_has_no_manifest(tmp_path: Path) -> None:
    assert EditManifest.read(_checkpoint(tmp_path / "plain", None)) is None
    assert EditManifest.read(tmp_path / "missing") is None


def test_the_parent_path_is_resolved_and_edited_tensors_are_a_list(tmp_path: Path) -> None:
    (tmp_path / "models" / "parent").mkdir(parents=True)
    manifest = _manifest(tmp_path / "models" / ".." / "models" / "parent")
    assert manifest.parent_path == (tmp_path / "models" / "parent").resolve()
    assert manifest.edited_tensors == ["model.layers.1.mlp.down_proj.weight"]
    assert _manifest(tmp_path, parent=ParentRef(path="", fingerprint="", model_type="")).parent_path is None


def test_the_manifest_is_frozen(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    with pytest.raises(ValueError, match="frozen"):
        manifest.edited_tensors = []  # type: ignore[misc]


def test_a_typo_d_key_is_refused_naming_the_file_and_the_key(tmp_path: Path) -> None:
    raw = json.loads(_manifest(tmp_path / "parent").model_dump_json())
    raw["edited_tensor"] = raw.pop("edited_tensors")
    checkpoint = _checkpoint(tmp_path / "ckpt", raw)
    with pytest.raises(InvalidArgument) as caught:
        EditManifest.read(checkpoint)
    message = str(caught.value)
    assert str(checkpoint / EDIT_MANIFEST) in message
    assert "edited_tensor: Extra inputs are not permitted" in message
    assert "edited_tensors: Field required" in message


def test_a_bad_nested_value_is_refused_naming_its_field(tmp_path: Path) -> None:
    raw = json.loads(_manifest(tmp_path / "parent").model_dump_json())
    raw["recipe"]["keep_mass"] = 2.0
    raw["parent"]["fingerprnt"] = raw["parent"].pop("fingerprint")
    raw["matrices"][0]["projection"] = "sideways"
    checkpoint = _checkpoint(tmp_path / "ckpt", raw)
    with pytest.raises(InvalidArgument) as caught:
        EditManifest.read(checkpoint)
    message = str(caught.value)
    for field in ("recipe.keep_mass", "parent.fingerprnt", "parent.fingerprint", "matrices.0.projection"):
        assert field in message, field


def test_another_format_or_not_json_is_refused(tmp_path: Path) -> None:
    raw = json.loads(_manifest(tmp_path / "parent").model_dump_json())
    raw["format"] = "lethe-edit/2"
    with pytest.raises(InvalidArgument, match="format"):
        EditManifest.read(_checkpoint(tmp_path / "future", raw))
    broken = _checkpoint(tmp_path / "broken", '{"format": ')
    with pytest.raises(InvalidArgument, match="not valid JSON") as caught:
        EditManifest.read(broken)
    assert str(broken / EDIT_MANIFEST) in str(caught.value)
    with pytest.raises(InvalidArgument, match="edit manifest"):
        EditManifest.read(_checkpoint(tmp_path / "list", "[1, 2]"))


def test_find_edits_lists_the_checkpoints_of_one_parent_and_skips_broken_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    parent = tmp_path / "models" / "base"
    other = tmp_path / "models" / "other"
    parent.mkdir(parents=True)
    other.mkdir(parents=True)
    root = tmp_path / "checkpoints"
    _checkpoint(root / "forget-b", _manifest(parent))
    _checkpoint(root / "forget-a", _manifest(tmp_path / "models" / "other" / ".." / "base"))
    _checkpoint(root / "of-other", _manifest(other))
    _checkpoint(root / "plain", None)
    _checkpoint(root / "broken", "{not json")
    _checkpoint(root / "deeper" / "nested", _manifest(parent))  # only direct children count

    with caplog.at_level(logging.WARNING, logger="lethe.edits.edit_manifest"):
        found = find_edits(root, parent)
    assert found == [("forget-a", root / "forget-a"), ("forget-b", root / "forget-b")]
    assert any("broken" in record.getMessage() for record in caplog.records)
    assert find_edits(root, other) == [("of-other", root / "of-other")]
    assert find_edits(tmp_path / "no-checkpoints", parent) == []
