"""How to test your own program offline: copy this file next to your Pulumi program.

`pip install` this package into the venv that runs your tests: its pytest plugin
brings the `qlik_emulator` fixture (a local Qlik tenant with a real SMTP server
behind it), and `OfflineStack` runs the program under Pulumi's mocks with the real
provider host and policy pack, no Pulumi CLI and no Qlik account needed.
"""

from __future__ import annotations

from pathlib import Path

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.testing import OfflineStack, Secret

PROGRAM = Path(__file__).resolve().parents[2]  # the directory holding Pulumi.yaml


def test_up_then_noop(qlik_emulator: Emulator, tmp_path: Path) -> None:
    tenant = qlik_emulator.tenant("demo")
    smtp = qlik_emulator.info["smtp"]
    stack = OfflineStack(
        PROGRAM,
        stack="tenant-a",
        config={
            "qlik:tenantUrl": tenant.url,
            "qlik:apiKey": Secret(tenant.api_key),
            "qlik:caBundle": qlik_emulator.ca_file,
            "email:username": smtp["username"],
            "email:password": Secret(smtp["password"]),
        },
        state_file=tmp_path / "state.json",
        policy_packs=[str(PROGRAM / "policies")],
        policy_config={"email-tenant-url": {"allowLocalhost": True}},
        quiet=True,
    )
    with stack:
        first = stack.up()
        assert [step.op for step in first.steps] == ["create"]
        assert first.outputs["is_valid"] is True

        qlik_emulator.clear_requests()
        again = stack.up()
        assert [step.op for step in again.steps] == ["same"]
        assert [r for r in qlik_emulator.requests() if r["method"] != "GET"] == []
