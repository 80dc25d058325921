"""`lethe serve --check-config`: the configuration `lethe serve` would assemble, checked without
loading a model or binding a port; a mistake is one `error:` line naming the key, exit 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.tiny import build_edited_variant, build_tiny_llama

ROOT = Path(__file__).resolve().parents[2]

# Runs `lethe serve --check-config …` in this process, then reports what it imported.
PROBE = """
import json, sys
from lethe.service.cli import main
sys.argv = ["lethe", "serve", "--check-config", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    code = exit.code
print("@@" + json.dumps({"code": code or 0, "modules": sorted(sys.modules)}))
"""


def check(*args: str, home: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """`lethe serve --check-config ARGS` with only these LETHE_ variables set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")}
    env.update(LETHE_HOME=str(home), HF_HUB_OFFLINE="1", **variables)
    return subprocess.run(
        [sys.executable, "-m", "lethe.service.cli", "serve", "--check-config", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *named: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for key in named:
        assert key in lines[0], lines[0]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "lethe.yaml"
    path.write_text(
        f"""\
host: 127.0.0.1
port: 50999
metrics_port: null
default_variant: pruned
variants:
  - {{name: base, model: {tmp_path / "base"}}}
  - {{name: pruned, checkpoint: {tmp_path / "pruned"}, engine: transformers}}
  - {{name: pruned+facts, alias_of: pruned, retrieval: {{index: facts, k: 3}}}}
indexes:
  - {{name: facts, path: {tmp_path / "facts"}}}
""",
        encoding="utf-8",
    )
    return path


def test_a_valid_file_prints_each_variant_and_index(tmp_path: Path, config: Path) -> None:
    result = check("--config", str(config), home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"variant base: model {tmp_path / 'base'}, transformers engine",
        f"variant pruned: checkpoint {tmp_path / 'pruned'}, transformers engine (default)",
        "variant pruned+facts: alias of pruned, retrieval from facts (k=3)",
        f"index facts: {tmp_path / 'facts'}",
        "ok: 3 variants, 1 index; gRPC on 127.0.0.1:50999, metrics off",
    ]


def test_flags_and_variables_apply_as_for_serve(tmp_path: Path, config: Path) -> None:
    result = check(
        "--config", str(config), "--port", "7000", home=tmp_path / "home", LETHE_ENGINE="vllm"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("vllm engine")  # the variable: the default engine of variants naming none
    assert lines[1].endswith("transformers engine (default)")  # the file names its engine
    assert lines[-1].endswith("gRPC on 127.0.0.1:7000, metrics off")  # the flag beats the file


def test_without_configuration_it_shows_the_discovered_variants_and_the_demo_index(tmp_path: Path) -> None:
    base = build_tiny_llama(tmp_path / "base")
    home = tmp_path / "home"
    build_edited_variant(base, home / "checkpoints" / "pruned")
    result = check("--model", str(base), home=home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"variant base: model {base}, transformers engine (default)",
        f"variant pruned: checkpoint {home / 'checkpoints' / 'pruned'}, transformers engine",
        "variant pruned+rag: alias of pruned, retrieval from demo (k=5)",
        f"index demo: {home / 'indexes' / 'demo'} (the demo facts, built there on first start)",
        "ok: 3 variants, 1 index; gRPC on 0.0.0.0:50051, metrics on 0.0.0.0:9090",
    ]


def test_checking_loads_no_model_and_no_grpc(tmp_path: Path, config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "--config", str(config)],
        cwd=ROOT,
        env={**env, "LETHE_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout.rpartition("@@")[2])
    assert report["code"] == 0, result.stderr
    loaded = {m.split(".")[0] for m in report["modules"]} | set(report["modules"])
    assert not loaded & {"grpc", "torch", "transformers", "faiss", "lethe.service.server"}


def test_an_unknown_top_level_key_is_named(tmp_path: Path, config: Path) -> None:
    config.write_text(config.read_text() + "max_tokenz: 5\n")
    assert_user_error(check("--config", str(config), home=tmp_path), "max_tokenz")


def test_an_unknown_nested_key_is_named_with_its_section(tmp_path: Path, config: Path) -> None:
    config.write_text(config.read_text() + "auth: {tokne: x}\n")
    assert_user_error(check("--config", str(config), home=tmp_path), "auth.tokne")


def test_an_unknown_key_in_a_variant_is_named(tmp_path: Path, config: Path) -> None:
    config.write_text(config.read_text().replace("engine: transformers", "engin: transformers"))
    assert_user_error(check("--config", str(config), home=tmp_path), "engin")


def test_a_bad_variable_is_named(tmp_path: Path, config: Path) -> None:
    assert_user_error(check("--config", str(config), home=tmp_path, LETHE_PORT="notanumber"), "port")


def test_a_missing_file_is_a_user_error(tmp_path: Path) -> None:
    assert_user_error(check("--config", str(tmp_path / "nope.yaml"), home=tmp_path), "nope.yaml")
