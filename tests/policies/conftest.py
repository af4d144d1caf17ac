"""Shared data for the policy pack tests.

``policies/`` is not an installed package (the pack runs in its own virtualenv under
the Pulumi CLI), so the repository root goes on ``sys.path`` to import ``policies.rules``
however pytest was started.
"""

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACK_DIR = ROOT / "policies"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qlik_email_resource.offline.grpc_servers import AnalyzerServer  # noqa: E402

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
