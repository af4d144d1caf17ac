"""The demo's parts: the settings it names, and the stack config its tenants get."""

from __future__ import annotations

from pathlib import Path

import yaml

from qlik_email_resource.demo import PROGRAM_KEYS
from qlik_email_resource.fleet.program import stack_config
from qlik_email_resource.fleet.tenants import load

REPO = Path(__file__).resolve().parents[2]
ENVIRON = {
    "QLIK_EMULATOR_API_URL": "https://127.0.0.1:4443",
    "QLIK_EMULATOR_CA": str(REPO / "pyproject.toml"),  # any existing file
    "QLIK_EMULATOR_SMTP_PASSWORD": "smtp-pw",
    "QLIK_DEMO_API_KEY": "demo-key",
    "QLIK_ACME_API_KEY": "acme-key",
}


def test_demo_program_keys_are_keys_the_program_declares() -> None:
    declared = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]
    assert set(PROGRAM_KEYS.values()) <= set(declared), set(PROGRAM_KEYS.values()) - set(declared)
    # every value a secret in Pulumi.yaml is a secret input of the provider
    secret_keys = {k for k, v in declared.items() if v.get("secret")}
    assert {k for k, v in PROGRAM_KEYS.items() if v in secret_keys} == {"email_password"}
    fleet = load(REPO / "examples" / "tenants.yaml", ENVIRON)
    for tenant in fleet.tenants:
        # the demo can name every setting of its tenants
        assert set(tenant.email) | set(tenant.secret_env) <= set(PROGRAM_KEYS)


def test_demo_stack_config_passes_secrets_as_secrets() -> None:
    fleet = load(REPO / "examples" / "tenants.yaml", ENVIRON)
    for tenant in fleet.tenants:
        config = stack_config(tenant.resolve(ENVIRON))
        assert config["email:emailPassword"] == ("smtp-pw", True)
        assert config["qlik:apiKey"] == (f"{tenant.name}-key", True)
        assert config["qlik:tenantUrl"] == (f"https://127.0.0.1:4443/t/{tenant.name}", False)
        assert tenant.email["verify_connection"] is True
