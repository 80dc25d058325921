"""Configuration sources and the start-up variant list."""

import json

import pytest

from lethe.service.config import VariantSpec, load_settings
from lethe.service.errors import InvalidRequest
from lethe.service.startup import initial_variants, parse_variant_flag
from tests.service.tiny import build_edited_variant


def test_yaml_then_env_then_flags(tmp_path, monkeypatch):
    config = tmp_path / "lethe.yaml"
    config.write_text(
        "port: 6000\nmetrics_port: 6001\nmax_queue: 3\n"
        "variants:\n  - {name: a, model: /models/a, options: {max_batch_size: 2}}\n"
        "auth:\n  admin: {token_file: /run/admin}\n"
    )
    monkeypatch.setenv("LETHE_METRICS_PORT", "7001")
    monkeypatch.setenv("LETHE_AUTH__INFERENCE__TOKEN", "t0k")
    settings = load_settings(config, port=8000)
    assert settings.port == 8000  # flag beats file
    assert settings.metrics_port == 7001  # env beats file
    assert settings.max_queue == 3  # file beats default
    assert settings.variants == [VariantSpec(name="a", model="/models/a", options={"max_batch_size": 2})]
    assert settings.auth.inference.value() == "t0k"
    assert str(settings.auth.admin.token_file) == "/run/admin"


def test_bad_configuration_names_the_field(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("port: -1\nvariants:\n  - {name: both, model: m, checkpoint: /c}\n")
    with pytest.raises(InvalidRequest) as error:
        load_settings(config)
    assert "port" in str(error.value) and "exactly one of" in str(error.value)
    with pytest.raises(InvalidRequest, match="does not exist"):
        load_settings(tmp_path / "missing.yaml")
    with pytest.raises(InvalidRequest, match="NAME=CHECKPOINT"):
        parse_variant_flag("no-equals-sign")


def test_default_serves_the_model_and_its_pruned_variants_under_lethe_home(tiny_model, tmp_path, lethe_home):
    checkpoints = lethe_home / "checkpoints"
    build_edited_variant(tiny_model, checkpoints / "forget-a")
    build_edited_variant(tiny_model, checkpoints / "forget-b", seed=2)
    other = build_edited_variant(tiny_model, checkpoints / "of-another-model")
    manifest = json.loads((other / "lethe_edit.json").read_text())
    manifest["parent"]["path"] = str(tmp_path / "elsewhere")
    (other / "lethe_edit.json").write_text(json.dumps(manifest))
    settings = load_settings(None, model=str(tiny_model))
    specs = initial_variants(settings, [parse_variant_flag(f"extra={tmp_path}")])
    assert [s.name for s in specs] == ["tiny-base", "forget-a", "forget-b", "extra"]
    assert specs[0].model == str(tiny_model)
    assert specs[1].checkpoint == checkpoints / "forget-a"


def test_no_configuration_means_gemma3_270m(lethe_home):
    specs = initial_variants(load_settings(None))
    assert specs == [VariantSpec(name="gemma3-270m", model="gemma3-270m")]


@pytest.mark.parametrize(
    ("yaml", "named"),
    [
        ("prot: 5\n", "prot"),
        ("auth: {admin: {tokne: x}}\n", "auth.admin.tokne"),
        ("auth: {admn: {token: x}}\n", "auth.admn"),
        ("auth: {admin: {token_fiel: /run/admin}}\n", "auth.admin.token_fiel"),
        ("tls: {cert_fle: /tls/cert.pem}\n", "tls.cert_fle"),
        ("indexes: [{name: f, path: /i, limits: {max_kk: 3}}]\n", "indexes.0.limits.max_kk"),
        ("variants: [{name: a, model: /m, retrieval: {index: f, kk: 2}}]\n", "variants.0.retrieval.kk"),
        ("variants: [{name: a, model: /m, options: {max_batch_sise: 2}}]\n", "max_batch_sise"),
        ("variants: [{name: a, model: /m, engine: vllm, options: {max_num_seqs: 0}}]\n", "max_num_seqs"),
        ("auth: {admin: {token: ''}}\n", "auth.admin"),
    ],
)
def test_a_typo_anywhere_fails_at_load_naming_the_key(tmp_path, yaml, named):
    config = tmp_path / "lethe.yaml"
    config.write_text(yaml)
    with pytest.raises(InvalidRequest) as error:
        load_settings(config)
    assert named in str(error.value)


@pytest.mark.parametrize(
    ("variable", "named"),
    [
        ("LETHE_PROT", "LETHE_PROT"),
        ("LETHE_AUTH__ADMIN__TOKNE", "auth.admin.tokne"),
        ("LETHE_AUTH__ADMIN_TOKEN_FILE", "auth.admin_token_file"),
    ],
)
def test_an_unknown_variable_fails_at_load_naming_it(monkeypatch, variable, named):
    monkeypatch.setenv(variable, "x")
    with pytest.raises(InvalidRequest) as error:
        load_settings()
    assert named in str(error.value)


def test_the_documented_variable_names_are_the_real_ones(monkeypatch, tmp_path):
    secret = tmp_path / "admin-token"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("LETHE_AUTH__ADMIN__TOKEN_FILE", str(secret))
    monkeypatch.setenv("LETHE_AUTH__INFERENCE__TOKEN", "t0k")
    settings = load_settings()
    assert (settings.auth.admin.value(), settings.auth.inference.value()) == ("s3cret", "t0k")


def test_an_empty_token_file_is_refused(tmp_path):
    empty = tmp_path / "token"
    empty.write_text("\n")
    settings = load_settings(None, auth={"admin": {"token_file": str(empty)}})
    with pytest.raises(InvalidRequest, match="is empty"):
        settings.auth.admin.value()


def test_engine_options_are_typed_over_the_server_defaults():
    settings = load_settings(None, max_batch_size=3, variants=[{"name": "a", "model": "/m"}])
    options = settings.engine_options(settings.variants[0])
    assert (type(options).__name__, options.max_batch_size, options.max_queue) == (
        "TransformersOptions",
        3,
        64,
    )


def test_document_limits_are_a_setting():
    settings = load_settings(None, document_limits={"max_text_chars": 100})
    assert settings.document_limits.max_text_chars == 100
    with pytest.raises(InvalidRequest, match=r"document_limits\.max_text_charz"):
        load_settings(None, document_limits={"max_text_charz": 100})
