"""The offline backend's ``on_output`` text never shows a tenant's secret, even in a
plain setting (a password pasted into server_address).

The offline runner masks only the values it knows to be secret; the fleet's table
scrubs every secret value of the tenants file, and ``on_output`` (what the demo
shows with --verbose) gets the same scrubbing. The CLI backend needs none: the
Pulumi CLI itself masks the plaintext of every secret config value in its output
(seen: ``server_address: "[secret]"``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.fleet.changes import RunOptions
from qlik_email_resource.fleet.offline import OfflineBackend
from qlik_email_resource.fleet.tenants import TenantsFile, load

PASTED = "Pasted7Password9x"  # a valid host label, so Check lets it through


def offline_backend(fleet: TenantsFile, work: Path, show: Callable[[str], None]) -> Any:
    return OfflineBackend(fleet, policy_packs=[], state_dir=work / "state", on_output=show)


def test_offline_backend_output_scrubs_a_pasted_password(tmp_path: Path) -> None:
    with Emulator(tenants=("solo",), workdir=tmp_path / "emu") as emu:
        tenant = emu.tenant("solo")
        emu.add_smtp_user("mailer", PASTED)  # so the tenant's SMTP check passes and up writes
        document = {
            "defaults": {
                "server_address": PASTED,  # the password, pasted into the wrong field
                "server_port": 465,
                "security_type": "SSL/TLS",
                "username": "mailer",
                "email_password_env": "PASTED_PASSWORD",
                "email_address": "reports@example.com",
            },
            "tenants": {"solo": {"url": tenant.url, "api_key_env": "SOLO_KEY",
                                 "ca_bundle": emu.ca_file}},
        }
        path = tmp_path / "tenants.yaml"
        path.write_text(yaml.safe_dump(document))
        environ = {"PASTED_PASSWORD": PASTED, "SOLO_KEY": tenant.api_key}
        fleet = load(path, environ)
        resolved = fleet.tenant("solo").resolve(environ)
        shown: list[str] = []
        backend = offline_backend(fleet, tmp_path, shown.append)
        try:
            result = backend.run(resolved, "up", RunOptions(refresh=False))
        finally:
            backend.close()
    assert result.result == "created", result.error
    text = "\n".join(shown)
    assert "server" in text.lower()  # the stack's own report was shown
    assert PASTED not in text
    assert tenant.api_key not in text
