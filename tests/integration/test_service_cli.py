"""`lethe serve` in its own process, driven by `lethe generate` / `lethe variants`, then SIGTERM."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.service.tiny import build_edited_variant, build_tiny_llama

LETHE = [sys.executable, "-m", "lethe.service.cli"]


@pytest.fixture
def served(tmp_path):
    base = build_tiny_llama(tmp_path / "base", max_positions=4096)
    build_edited_variant(base, tmp_path / "home" / "checkpoints" / "pruned")
    config = tmp_path / "lethe.yaml"
    # demo_index off: the demo fact index and pruned+rag are covered by test_rag_cli.py.
    config.write_text(
        f"host: 127.0.0.1\nport: 0\nmetrics_port: 0\nmodel: {base}\ngrace_seconds: 20\ndemo_index: false\n"
    )
    env = {**os.environ, "LETHE_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [*LETHE, "serve", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).parents[2],
    )
    port = None
    lines = []
    deadline = time.monotonic() + 120
    while port is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"serving on \S+:(\d+)", line)
        port = int(found.group(1)) if found else None
    assert port, "".join(lines)
    target = f"127.0.0.1:{port}"
    for _ in range(200):
        listed = lethe("variants", "--target", target)
        if listed.stdout.count("ready") == 2:
            break
        time.sleep(0.1)
    yield process, target, env
    if process.poll() is None:
        process.kill()
        process.wait()


def lethe(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LETHE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).parents[2],
    )


def test_serve_generate_variants_and_graceful_sigterm(served):
    process, target, _env = served
    listed = lethe("variants", "--target", target)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert set(rows) == {"base", "pruned"}
    assert rows["pruned"][1:4] == ["ready", "transformers", "base"]

    base = lethe(
        "generate",
        "hello",
        "--variant",
        "base",
        "--max-tokens",
        "6",
        "--temperature",
        "0",
        "--target",
        target,
    )
    pruned = lethe(
        "generate",
        "hello",
        "--variant",
        "pruned",
        "--max-tokens",
        "6",
        "--temperature",
        "0",
        "--no-stream",
        "--target",
        target,
    )
    assert base.returncode == 0 and pruned.returncode == 0, base.stderr + pruned.stderr
    assert "[base] finish=length" in base.stderr and "completion_tokens=6" in base.stderr
    assert "[pruned] finish=length" in pruned.stderr
    assert base.stdout != pruned.stdout

    bad = lethe("generate", "hello", "--top-p", "2", "--target", target)
    assert bad.returncode == 1
    assert "INVALID_ARGUMENT: sampling.top_p" in bad.stderr and "Traceback" not in bad.stderr

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    rest = process.stderr.read()
    assert "draining" in rest and "Traceback" not in rest


def test_bad_configuration_is_reported_without_a_traceback(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("port: nope\n")
    result = lethe("serve", "--config", str(config))
    assert result.returncode == 2
    assert "port" in result.stderr and "Traceback" not in result.stderr
