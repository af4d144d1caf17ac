"""Shared data for the policy pack tests.

``policies.rules`` is importable because pytest puts the repository root on
``pythonpath`` (pyproject.toml).
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qlik_email_resource.offline.grpc_servers import AnalyzerServer

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"

# The qlik.dev tutorial's own example (AWS SES on 2465 with implicit TLS).
TUTORIAL: dict[str, Any] = {
    "server_address": "email-smtp.eu-west-2.amazonaws.com",
    "server_port": 2465,
    "security_type": "SSL/TLS",
    "username": "SKIARX3IRHQ7J3ZLGABC",
    "email_address": "qlik@mydomain.com",
    "email_password": "YourPasswordHere",
    "tenant_url": "https://mytenant.eu.qlikcloud.com",
    "verify_connection": True,
}


@pytest.fixture
def tutorial() -> dict[str, Any]:
    return dict(TUTORIAL)


@pytest.fixture(scope="module")
def pack() -> Iterator[AnalyzerServer]:
    """The pack's real analyzer, one per test module (each module configures it its way)."""
    server = AnalyzerServer(PACK_DIR)
    try:
        yield server
    finally:
        server.stop()
