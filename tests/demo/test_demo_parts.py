"""The demo's parts: the settings it names, and the stack config its tenants get."""

from __future__ import annotations

from pathlib import Path

from qlik_email_resource.demo.outcome import NAMED_SETTINGS
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


def test_demo_names_every_setting_of_its_tenants_but_the_password() -> None:
    fleet = load(REPO / "examples" / "tenants.yaml", ENVIRON)
    for tenant in fleet.tenants:
        assert set(tenant.email) <= NAMED_SETTINGS, set(tenant.email) - NAMED_SETTINGS
        assert "email_password" in tenant.secret_env
    assert "email_password" not in NAMED_SETTINGS and "api_key" not in NAMED_SETTINGS


def test_demo_stack_config_passes_secrets_as_secrets() -> None:
    fleet = load(REPO / "examples" / "tenants.yaml", ENVIRON)
    for tenant in fleet.tenants:
        config = stack_config(tenant.resolve(ENVIRON))
        assert config["email:emailPassword"] == ("smtp-pw", True)
        assert config["qlik:apiKey"] == (f"{tenant.name}-key", True)
        assert config["qlik:tenantUrl"] == (f"https://127.0.0.1:4443/t/{tenant.name}", False)
        assert tenant.email["verify_connection"] is True
