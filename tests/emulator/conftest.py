"""Helpers for the emulator tests: a tiny Qlik client over requests, trusting the emulator CA."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from qlik_email_resource.emulator import Emulator, TenantInfo

CONFIG = "/api/v1/transports/email-config"

# The seed tutorial's SMTP account (qlik.dev "email-provider" tutorial, AWS SES example).
TUTORIAL_USER = "SKIARX3IRHQ7J3ZLGABC"
TUTORIAL_PASSWORD = "YourPasswordHere"


class Api:
    """Requests against one tenant, as a Qlik client would send them."""

    def __init__(self, emu: Emulator, tenant: TenantInfo, token: str | None = None):
        self.emu = emu
        self.tenant = tenant
        self.token = tenant.api_key if token is None else token
        self.session = requests.Session()
        self.session.verify = emu.ca_file

    def call(self, method: str, path: str = CONFIG, *, token: str | None = None,
             **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        tok = self.token if token is None else token
        if tok:
            headers.setdefault("Authorization", f"Bearer {tok}")
        kwargs.setdefault("timeout", 30)
        # Per request: REQUESTS_CA_BUNDLE in the environment would override session.verify.
        kwargs.setdefault("verify", self.emu.ca_file)
        return self.session.request(method, self.tenant.url + path, headers=headers, **kwargs)

    def get(self, **kw: Any) -> requests.Response:
        return self.call("GET", **kw)

    def put(self, body: Any, **kw: Any) -> requests.Response:
        return self.call("PUT", json=body, **kw)

    def patch(self, body: Any, **kw: Any) -> requests.Response:
        return self.call("PATCH", json=body, **kw)

    def delete(self, **kw: Any) -> requests.Response:
        return self.call("DELETE", **kw)

    def action(self, name: str, body: Any = None, **kw: Any) -> requests.Response:
        if body is not None:
            kw["json"] = body
        return self.call("POST", f"{CONFIG}/actions/{name}", **kw)


def basic_config(emu: Emulator, *, security: str = "SSL/TLS", password: str | None = None,
                 host: str = "smtp.example.com", port: int | None = None,
                 username: str | None = None, **extra: Any) -> dict[str, Any]:
    """A PUT body for the bundled SMTP server's default user."""
    user, default_password = emu.smtp_user
    return {
        "serviceProvider": "BasicAuth",
        "providerConfig": {
            "serverAddress": host,
            "serverPort": port if port is not None else 465,
            "securityType": security,
            "username": username or user,
            "emailPassword": default_password if password is None else password,
            "emailAddress": "noreply@example.com",
            "senderName": "Qlik Emulator",
            **extra,
        },
    }


def errors(resp: requests.Response) -> tuple[str, str]:
    body = resp.json()
    assert list(body) == ["errors"], body
    (err,) = body["errors"]
    return err["code"], err["title"]


@pytest.fixture
def api(qlik_emulator: Emulator, qlik_tenant: TenantInfo) -> Api:
    return Api(qlik_emulator, qlik_tenant)


@pytest.fixture
def viewer(qlik_emulator: Emulator, qlik_tenant: TenantInfo) -> Api:
    return Api(qlik_emulator, qlik_tenant, token=qlik_tenant.viewer_api_key)


class Helpers:
    """Shared helpers, handed to tests as the ``h`` fixture (importlib mode: no imports
    between test modules)."""

    CONFIG = CONFIG
    TUTORIAL_USER = TUTORIAL_USER
    TUTORIAL_PASSWORD = TUTORIAL_PASSWORD
    Api = Api
    basic_config = staticmethod(basic_config)
    errors = staticmethod(errors)


@pytest.fixture
def h() -> type[Helpers]:
    return Helpers
