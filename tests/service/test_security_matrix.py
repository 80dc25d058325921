"""Auth and TLS fail closed: every typo or empty secret stops `lethe serve` with exit 2, the key
named and no traceback (issue 11, item 1). `--check-config` runs the same assembly as serving."""

import os
import subprocess
import sys

import pytest

LETHE = [sys.executable, "-m", "lethe.service.cli"]


def run_lethe(args, tmp_path, env=None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")}
    environ.update({"LETHE_HOME": str(tmp_path / "home"), **(env or {})})
    return subprocess.run([*LETHE, *args], capture_output=True, text=True, env=environ, timeout=120)


CASES = [
    ("auth: {admin: {tokne: s3cret}}\n", {}, "auth.admin.tokne"),
    ("auth: {admn: {token: s3cret}}\n", {}, "auth.admn"),
    ("auth: {admin: {token_fiel: /run/admin}}\n", {}, "auth.admin.token_fiel"),
    ("auth: {admin: {token: ''}}\n", {}, "auth.admin"),
    ("auth: {admin: {token_file: EMPTY}}\n", {}, "token_file"),
    ("tls: {cert_fle: /tls/cert.pem}\n", {}, "tls.cert_fle"),
    ("{}\n", {"LETHE_AUTH__ADMIN__TOKNE": "s3cret"}, "auth.admin.tokne"),
    # The spelling the configuration module's docstring once showed.
    ("{}\n", {"LETHE_AUTH__ADMIN_TOKEN_FILE": "/run/admin"}, "auth.admin_token_file"),
    ("{}\n", {"LETHE_AUTH__INFERENCE__TOKEN": ""}, "auth.inference"),
]


@pytest.mark.parametrize(("yaml", "env", "named"), CASES)
def test_a_typo_or_empty_secret_is_refused_naming_the_key(tmp_path, yaml, env, named):
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    config = tmp_path / "lethe.yaml"
    config.write_text(yaml.replace("EMPTY", str(empty)))
    result = run_lethe(["serve", "--check-config", "--config", str(config)], tmp_path, env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr


def test_the_documented_variables_are_accepted(tmp_path):
    token = tmp_path / "admin-token"
    token.write_text("s3cret\n")
    config = tmp_path / "lethe.yaml"
    config.write_text("variants: [{name: base, model: /models/base}]\n")
    env = {"LETHE_AUTH__ADMIN__TOKEN_FILE": str(token), "LETHE_AUTH__INFERENCE__TOKEN": "t0k"}
    result = run_lethe(["serve", "--check-config", "--config", str(config)], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "base" in result.stdout


def test_serving_itself_stops_on_a_typo_before_binding(tmp_path):
    config = tmp_path / "lethe.yaml"
    config.write_text("port: 0\nmetrics_port: null\nauth: {admin: {tokne: s3cret}}\n")
    result = run_lethe(["serve", "--config", str(config)], tmp_path)
    assert result.returncode == 2 and "auth.admin.tokne" in result.stderr
    assert "Traceback" not in result.stderr and "serving on" not in result.stderr


@pytest.mark.parametrize(
    ("yaml", "named"),
    [
        ("variants: [{name: a, alias_of: b}, {name: b, model: /m}]\n", "variants.a.alias_of"),
        ("variants: [{name: a, model: /m, retrieval: {index: facts}}]\n", "variants.a.retrieval.index"),
        ("default_variant: nope\nvariants: [{name: a, model: /m}]\n", "default_variant"),
    ],
)
def test_check_config_finds_broken_references(tmp_path, yaml, named):
    config = tmp_path / "lethe.yaml"
    config.write_text(yaml)
    result = run_lethe(["serve", "--check-config", "--config", str(config)], tmp_path)
    assert result.returncode == 2 and named in result.stderr, result.stderr
