"""The tenants file: what it accepts, and one clear line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qlik_email_resource.fleet.cli import main
from qlik_email_resource.fleet.tenants import CredentialError, TenantsFileError, load, parse
from qlik_email_resource.policy_pack.rules import TENANT_URL, TLS_REQUIRED, VERIFY_ON_APPLY

GOOD = {
    "defaults": {
        "server_address": "smtp.example.com",
        "serverPort": 587,  # Qlik's camelCase is accepted too
        "security_type": "StartTLS",
        "email_password_env": "SMTP_PASSWORD",
    },
    "tenants": {
        "acme": {
            "url": "https://acme.eu.qlikcloud.com/",
            "api_key_env": "ACME_KEY",
            "email": {"sender_name": "Acme", "server_port": 465, "security_type": None},
        },
        "globex": {
            "url": "${GLOBEX_URL}",
            "client_id_env": "GLOBEX_ID",
            "client_secret_env": "GLOBEX_SECRET",
        },
    },
    "policy_config": {TENANT_URL: {"allowLocalhost": True}},
}


def _errors(data: object, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(TenantsFileError) as info:
        parse(data, "tenants.yaml", environ or {})
    return str(info.value)


def test_fleet_tenants_defaults_overrides_and_env_expansion() -> None:
    fleet = parse(GOOD, "tenants.yaml", {"GLOBEX_URL": "https://globex.us.qlikcloud.com"})
    acme, globex = fleet.tenants
    assert fleet.project == "qlik-email"
    assert acme.url == "https://acme.eu.qlikcloud.com"
    assert acme.email == {
        "server_address": "smtp.example.com",
        "server_port": 465,
        "sender_name": "Acme",
    }  # null removed the default security_type
    assert acme.secret_env == {"email_password": "SMTP_PASSWORD"}
    assert acme.auth == "api_key"
    assert globex.url == "https://globex.us.qlikcloud.com"
    assert globex.auth == "oauth"
    assert globex.email["security_type"] == "StartTLS"
    assert fleet.policy_config == {TENANT_URL: {"allowLocalhost": True}}


def test_fleet_tenants_resolve_reads_env_and_hides_secrets() -> None:
    fleet = parse(GOOD, "tenants.yaml", {"GLOBEX_URL": "https://g.example.com"})
    resolved = fleet.tenant("acme").resolve({"ACME_KEY": "k-123", "SMTP_PASSWORD": "pw-456"})
    assert resolved.api_key == "k-123"
    assert resolved.email_secrets == {"email_password": "pw-456"}
    assert "k-123" not in repr(resolved) and "pw-456" not in repr(resolved)
    with pytest.raises(CredentialError, match=r"tenant acme: environment variable ACME_KEY"):
        fleet.tenant("acme").resolve({"SMTP_PASSWORD": "pw"})


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        ({"url": "https://a.example.com", "api_key": "abc"}, "tenants.t1.api_key: secrets must"),
        (
            {"url": "https://a.example.com", "api_key_env": "K", "email": {"emailPassword": "x"}},
            "tenants.t1.email.emailPassword: secrets must not be written",
        ),
        ({"url": "https://a.example.com"}, "tenants.t1: no credentials"),
        ({"api_key_env": "K"}, "tenants.t1.url: missing"),
        ({"url": "ftp://a", "api_key_env": "K"}, "tenants.t1.url: must be an https:// URL"),
        ({"url": "https://a.example.com", "api_key_env": "not a var"}, "tenants.t1.api_key_env"),
        (
            {"url": "https://a.example.com", "api_key_env": "K", "email": {"server_prot": 25}},
            "did you mean 'server_port'",
        ),
        (
            {"url": "https://a.example.com", "api_key_env": "K", "email": {"server_port": 0}},
            "tenants.t1.email.server_port: must be an integer port",
        ),
        (
            {"url": "https://a.example.com", "client_id_env": "I"},
            "tenants.t1.client_secret_env: missing",
        ),
        (
            {"url": "https://a.example.com", "api_key_env": "K", "ca_bundle": "nope.pem"},
            "tenants.t1.ca_bundle: file not found",
        ),
        ({"url": "${NOPE}/t/x", "api_key_env": "K"}, "environment variable NOPE is not set"),
    ],
)
def test_fleet_tenants_validation_names_tenant_and_key(tenant: dict, expected: str) -> None:
    message = _errors({"tenants": {"t1": tenant}})
    assert expected in message
    assert "abc" not in message  # a refused literal secret is not echoed back


def test_fleet_tenants_every_problem_is_listed_at_once() -> None:
    message = _errors(
        {
            "colour": "blue",
            "defaults": {"server_port": "x"},
            "tenants": {"bad name!": {"url": "https://a.example.com", "api_key_env": "K"}},
        }
    )
    assert "(top level).colour: unknown key" in message
    assert "defaults.server_port" in message
    assert "tenants.bad name!: tenant names become stack names" in message


def test_fleet_tenants_empty_and_unreadable_files(tmp_path: Path) -> None:
    assert "tenants: missing or empty" in _errors({"tenants": {}})
    with pytest.raises(TenantsFileError, match="cannot read tenants file"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants: [unclosed")
    with pytest.raises(TenantsFileError, match="not valid YAML"):
        load(bad)


def test_fleet_cli_refuses_invalid_file_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": {"acme": {"url": "https://a", "api_key": "s3"}}}))
    assert main(["up", str(path), "--offline"]) == 2
    captured = capsys.readouterr()
    assert "tenants.acme.api_key: secrets must not be written" in captured.err
    assert "s3" not in captured.err + captured.out


def test_fleet_cli_without_pulumi_cli_says_how_to_proceed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `pulumi` anywhere
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": {"acme": {"url": "https://a", "api_key_env": "K"}}}))
    assert main(["preview", str(path)]) == 2
    err = capsys.readouterr().err
    assert "the Pulumi CLI is not on PATH" in err and "--offline" in err


@pytest.mark.parametrize("port", [465, 465.0, "465", " 465 "])
def test_fleet_tenants_port_reads_as_the_resource_reads_it(port: object) -> None:
    # issue #10: the resource takes 465.0 (protobuf numbers are floats); so does the file
    data = {"tenants": {"t1": {"url": "https://a.example.com", "api_key_env": "K",
                               "email": {"server_port": port}}}}
    (tenant,) = parse(data, "tenants.yaml", {}).tenants
    assert tenant.email["server_port"] == 465 and type(tenant.email["server_port"]) is int


@pytest.mark.parametrize("port", [465.5, "²", True, 70000])
def test_fleet_tenants_port_refuses_what_the_resource_refuses(port: object) -> None:
    data = {"tenants": {"t1": {"url": "https://a.example.com", "api_key_env": "K",
                               "email": {"server_port": port}}}}
    assert "tenants.t1.email.server_port: must be an integer port" in _errors(data)


@pytest.mark.parametrize(
    ("policy_config", "expected"),
    [
        ([TLS_REQUIRED], "policy_config: must map policy names"),
        ({TLS_REQUIRED: 3}, f"policy_config.{TLS_REQUIRED}: must be an enforcement"),
        ({TLS_REQUIRED: {"enforcementLevel": "strict"}},
         f"policy_config.{TLS_REQUIRED}.enforcementLevel: 'strict' is not an enforcement"),
        ({"all": {"enforcementLevel": "advisory", "allowedPorts": [1]}},
         "policy_config.all: `all` sets the enforcement level of every policy"),
    ],
)
def test_fleet_tenants_policy_config_shape_and_levels(policy_config: object, expected: str) -> None:
    data = {"tenants": {"t1": {"url": "https://a.example.com", "api_key_env": "K"}},
            "policy_config": policy_config}
    assert expected in _errors(data)


def test_fleet_tenants_policy_config_shorthand_is_a_level() -> None:
    data = {"tenants": {"t1": {"url": "https://a.example.com", "api_key_env": "K"}},
            "policy_config": {VERIFY_ON_APPLY: "mandatory", "all": "advisory"}}
    fleet = parse(data, "tenants.yaml", {})
    assert fleet.policy_config == {VERIFY_ON_APPLY: {"enforcementLevel": "mandatory"},
                                   "all": {"enforcementLevel": "advisory"}}
