"""`lethe serve` with no variant or index configuration: the demo fact index is built under
LETHE_HOME on first start and `pruned+rag` answers with passages from it, through the CLI."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lethe.retrieval.demo import load_questions
from tests.service.tiny import build_edited_variant, build_tiny_llama

LETHE = [sys.executable, "-m", "lethe.service.cli"]
ROOT = Path(__file__).parents[2]


def lethe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LETHE, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.slow
def test_serve_without_configuration_offers_pruned_rag_on_the_demo_index(tmp_path):
    home = tmp_path / "home"
    base = build_tiny_llama(tmp_path / "base", max_positions=4096)
    build_edited_variant(base, home / "checkpoints" / "pruned")
    config = tmp_path / "lethe.yaml"
    config.write_text(f"host: 127.0.0.1\nport: 0\nmetrics_port: 0\nmodel: {base}\n")
    env = {**os.environ, "LETHE_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [*LETHE, "serve", "--config", str(config)], stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        port, lines = None, []
        deadline = time.monotonic() + 300
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"serving on \S+:(\d+)", line)
            port = int(found.group(1)) if found else None
        assert port, "".join(lines)
        target = f"127.0.0.1:{port}"
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read()
            listed = lethe("variants", "--target", target)
            if listed.stdout.count("ready") == 3:
                break
            time.sleep(0.5)
        rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
        assert set(rows) == {"base", "pruned", "pruned+rag"}, listed.stdout + listed.stderr
        assert rows["pruned+rag"][1:4] == ["ready", "transformers", "pruned"]
        assert rows["pruned+rag"][-2:] == ["demo", "k=5"] and rows["pruned"][-1] == "-"
        assert (home / "indexes" / "demo" / "CURRENT").is_file()

        question = load_questions()[0]
        prompt = f"Question: {question.question}\nAnswer:"
        common = ["--variant", "pruned+rag", "--max-tokens", "2", "--target", target]
        used = lethe("generate", prompt, *common)
        assert used.returncode == 0, used.stderr
        assert re.search(rf"\[retrieval\] demo: .*{re.escape(question.doc_id)}#0 \(0\.\d+\)", used.stderr)
        plain = lethe("generate", prompt, "--no-retrieval", "--no-stream", *common)
        assert plain.returncode == 0 and "[retrieval]" not in plain.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert "Traceback" not in process.stderr.read()
