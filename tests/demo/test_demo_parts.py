"""The demo's glue to the repo program: config keys it sets, the project copy for the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from qlik_email_resource.demo import _project_copy, program_config
from qlik_email_resource.fleet.tenants import load

REPO = Path(__file__).resolve().parents[2]
ENVIRON = {
    "QLIK_EMULATOR_API_URL": "https://127.0.0.1:4443",
    "QLIK_EMULATOR_CA": str(REPO / "pyproject.toml"),  # any existing file
    "QLIK_EMULATOR_SMTP_PASSWORD": "smtp-pw",
    "QLIK_DEMO_API_KEY": "demo-key",
    "QLIK_ACME_API_KEY": "acme-key",
}


def test_demo_config_uses_only_keys_the_program_declares() -> None:
    declared = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]
    fleet = load(REPO / "examples" / "tenants.yaml", ENVIRON)
    for tenant in fleet.tenants:
        config = program_config(tenant.resolve(ENVIRON))
        email_keys = {k.split(":", 1)[1] for k in config if k.startswith("email:")}
        assert email_keys <= set(declared), email_keys - set(declared)
        assert config["email:password"] == ("smtp-pw", True)
        assert config["qlik:apiKey"] == (f"{tenant.name}-key", True)
        assert config["qlik:tenantUrl"] == (f"https://127.0.0.1:4443/t/{tenant.name}", False)
        assert config["email:verifyConnection"] == ("true", False)
        # every value a secret in Pulumi.yaml is passed as a secret
        for key in email_keys:
            if declared[key].get("secret"):
                assert config[f"email:{key}"][1] is True, key


def test_demo_project_copy_points_at_this_python(tmp_path: Path) -> None:
    target = _project_copy(REPO, tmp_path / "project")
    project = yaml.safe_load((target / "Pulumi.yaml").read_text())
    original = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    assert project["name"] == original["name"] and project["config"] == original["config"]
    if sys.prefix != sys.base_prefix:
        assert project["runtime"]["options"]["virtualenv"] == sys.prefix
    assert (target / "__main__.py").read_text() == (REPO / "__main__.py").read_text()
