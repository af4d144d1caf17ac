"""How to test your own program offline: copy this file next to your Pulumi program.

Copy it into the directory that holds your program's `__main__.py` and run `pytest`
there; it needs no edit. `pip install` this package into the venv that runs your
tests: its pytest plugin brings the `qlik_emulator` fixture (a local Qlik tenant
with a real SMTP server behind it), and `OfflineStack` runs the program under
Pulumi's mocks with the real provider host and the packaged policy pack, no Pulumi
CLI and no Qlik account needed.

The program reads its SMTP login from stack config `email:username` and the secret
`email:password`, as the README's example does; the test sets them to the
emulator's SMTP user.
"""

from __future__ import annotations

from pathlib import Path

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline import OfflineStack, Secret
from qlik_email_resource.policy_pack import path as policy_pack_path
from qlik_email_resource.policy_pack.rules import RESOURCE_TYPE, TENANT_URL

PROGRAM = Path(__file__).resolve().parent  # the directory holding your __main__.py


def test_up_then_noop(qlik_emulator: Emulator, tmp_path: Path) -> None:
    tenant = qlik_emulator.tenant("demo")
    smtp = qlik_emulator.info["smtp"]
    stack = OfflineStack(
        PROGRAM,
        stack="dev",
        config={
            "qlik:tenantUrl": tenant.url,
            "qlik:apiKey": Secret(tenant.api_key),
            "qlik:caBundle": qlik_emulator.ca_file,
            "email:username": smtp["username"],
            "email:password": Secret(smtp["password"]),
        },
        state_file=tmp_path / "state.json",
        policy_packs=[str(policy_pack_path())],  # the pack that ships with the package
        policy_config={TENANT_URL: {"allowLocalhost": True}},  # emulated tenants are local
        quiet=True,
    )
    with stack:
        first = stack.up()
        assert {s.op for s in first.steps if s.type == RESOURCE_TYPE} == {"create"}
        assert not [v for v in first.violations if v.level == "mandatory"]
        configs = [r for r in stack.state().resources if r.type == RESOURCE_TYPE]
        assert configs and all(r.outputs["is_valid"] is True for r in configs)

        qlik_emulator.clear_requests()
        again = stack.up()
        assert {s.op for s in again.steps if s.type == RESOURCE_TYPE} == {"same"}
        assert [r for r in qlik_emulator.requests() if r["method"] != "GET"] == []
