"""The CLI as a user runs it: one JSON line, real requests with the CA file, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

KEYS = {"api_url", "admin_url", "admin_token", "mailbox_url", "tenants", "smtp", "ca_file"}
TENANT_KEYS = {"url", "tenant_id", "api_key", "viewer_api_key", "client_id", "client_secret"}
SMTP_KEYS = {"host", "tls_port", "starttls_port", "plain_port", "username", "password",
             "ca_file"}


class Running:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qlik_email_resource.emulator", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise AssertionError("no JSON line: " + self.proc.stderr.read())
        self.info = json.loads(line)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, out, err


@pytest.fixture
def run():
    started: list[Running] = []

    def start(*args: str) -> Running:
        r = Running(*args)
        started.append(r)
        return r

    yield start
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.communicate()


def _get(info, name="demo", token=None):
    tenant = info["tenants"][name]
    return requests.get(tenant["url"] + "/api/v1/transports/email-config", timeout=10,
                        headers={"Authorization": f"Bearer {token or tenant['api_key']}"},
                        verify=info["ca_file"])


def test_cli_json_line_requests_and_sigterm(run):
    emu = run("--tenant", "demo", "--tenant", "acme")
    info = emu.info
    assert set(info) == KEYS
    assert set(info["tenants"]) == {"demo", "acme"}
    for tenant in info["tenants"].values():
        assert set(tenant) == TENANT_KEYS
    assert set(info["smtp"]) == SMTP_KEYS
    assert info["api_url"].startswith("https://127.0.0.1:")
    assert info["mailbox_url"] == info["admin_url"] + "/mailbox?token=" + info["admin_token"]
    assert requests.get(info["admin_url"] + "/tenants", timeout=10).status_code == 401
    tenants = requests.get(info["admin_url"] + "/tenants", timeout=10,
                           headers={"Authorization": f"Bearer {info['admin_token']}"})
    assert tenants.json() == info["tenants"]

    demo = info["tenants"]["demo"]
    assert _get(info).json()["errorCode"] == "CONFIG_NOT_SET"
    assert _get(info, token=demo["viewer_api_key"]).status_code == 403
    assert _get(info, "acme", token=demo["api_key"]).status_code == 401
    smtp = info["smtp"]
    put = requests.put(demo["url"] + "/api/v1/transports/email-config", timeout=10,
                       headers={"Authorization": f"Bearer {demo['api_key']}"},
                       verify=info["ca_file"], json={
                           "serviceProvider": "BasicAuth", "providerConfig": {
                               "serverAddress": "localhost", "serverPort": smtp["tls_port"],
                               "securityType": "SSL/TLS", "username": smtp["username"],
                               "emailPassword": smtp["password"],
                               "emailAddress": "cli@example.com"}})
    assert put.status_code == 204
    assert requests.get(info["mailbox_url"], timeout=10).json() == []

    code, out, err = emu.stop()
    assert code == 0
    assert out == ""  # exactly one line on stdout, read above
    assert "PUT /api/v1/transports/email-config 204" in err
    for secret in (demo["api_key"], demo["viewer_api_key"], demo["client_secret"],
                   smtp["password"], info["admin_token"]):
        assert secret not in err
    assert not Path(info["ca_file"]).exists()  # the temporary workdir is cleaned up


def test_cli_sigint_and_http(run):
    emu = run("--http", "--no-rate-limits", "--port", "0")
    assert emu.info["api_url"].startswith("http://")
    demo = emu.info["tenants"]["demo"]
    resp = requests.get(demo["url"] + "/api/v1/transports/email-config", timeout=10,
                        headers={"Authorization": f"Bearer {demo['api_key']}"})
    assert resp.status_code == 200
    code, _, _ = emu.stop(signal.SIGINT)
    assert code == 0


def test_cli_restart_with_state_keeps_keys_and_config(run, tmp_path):
    state = tmp_path / "emulator-state.json"
    first = run("--state", str(state))
    demo = first.info["tenants"]["demo"]
    resp = requests.patch(
        demo["url"] + "/api/v1/transports/email-config", timeout=10,
        headers={"Authorization": f"Bearer {demo['api_key']}"}, verify=first.info["ca_file"],
        json=[{"op": "replace", "path": "/serverAddress", "value": "smtp.kept.example"},
              {"op": "replace", "path": "/emailPassword", "value": "kept-secret"}])
    assert resp.status_code == 204
    assert first.stop()[0] == 0
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    assert not list(tmp_path.glob(".state-*"))  # the atomic write left no temp file

    second = run("--state", str(state), "--tenant", "demo", "--tenant", "extra")
    assert second.info["tenants"]["demo"] == {
        **demo, "url": second.info["api_url"] + "/t/demo"}
    assert second.info["smtp"]["password"] == first.info["smtp"]["password"]
    assert second.info["admin_token"] == first.info["admin_token"]
    assert "extra" in second.info["tenants"]
    got = _get(second.info).json()
    assert got["serverAddress"] == "smtp.kept.example"
    assert got["passwordExists"] is True
    assert second.stop()[0] == 0


def test_cli_bad_state_file_says_why(tmp_path):
    state = tmp_path / "broken.json"
    state.write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "qlik_email_resource.emulator", "--state",
                           str(state)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "broken.json" in proc.stderr and "delete it" in proc.stderr
    assert "Traceback" not in proc.stderr
