"""Generate the data, train the model and save everything as one testbed directory.

Layout:
    model/           the trained model: a Hugging Face checkpoint with its tokenizer
    data/train.jsonl, clean.jsonl, heldout.jsonl   `text` rows
    data/tasks.jsonl  evaluation items: `kind`, `prompt`, `target`
    data/validation.jsonl  validation canaries (trained, never scored): to calibrate rho on
    testbed.json     the configuration, the training run and a fingerprint of both
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from lethe.edits.atomic import atomic_directory
from lethe.edits.testbed.config import TestbedConfig
from lethe.edits.testbed.data import generate
from lethe.edits.testbed.training import build_model, train
from lethe.edits.testbed.vocabulary import build_tokenizer, vocabulary

CODE_VERSION = 3
"""Bump when data generation or training changes, so cached testbeds are rebuilt."""


def config_key(config: TestbedConfig) -> str:
    payload = json.dumps({"code": CODE_VERSION, **config.model_dump()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def build_testbed(
    out: Path,
    config: TestbedConfig | None = None,
    progress: Callable[[int, float], object] | None = None,
) -> Path:
    """Train and save a testbed in `out` (written aside, then renamed into place: an existing
    testbed is replaced only once the new one is complete); returns `out`."""
    config = config or TestbedConfig()
    out = Path(out)
    data = generate(config.data, config.seed)
    tokenizer = build_tokenizer(vocabulary(config.data.modulus))
    model = build_model(config.model, tokenizer, config.seed)
    run = train(model, data.train, tokenizer, config.train, config.seed, progress)
    with atomic_directory(out, overwrite=True) as staging:
        model.save_pretrained(staging / "model")
        tokenizer.save_pretrained(staging / "model")
        (staging / "data").mkdir()
        for name in ("train", "clean", "heldout"):
            _write_jsonl(staging / "data" / f"{name}.jsonl", [{"text": t} for t in getattr(data, name)])
        _write_jsonl(staging / "data" / "tasks.jsonl", data.tasks)
        _write_jsonl(staging / "data" / "validation.jsonl", data.validation)
        meta = {"key": config_key(config), "config": config.model_dump(), "training": asdict(run)}
        (staging / "testbed.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return out


def is_built(out: Path, config: TestbedConfig) -> bool:
    meta = Path(out) / "testbed.json"
    return meta.is_file() and json.loads(meta.read_text())["key"] == config_key(config)
