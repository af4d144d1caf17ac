"""client.py and settings.py in-process: headers, token cache, deprecation notice, redaction."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from qlik_email_resource import __version__
from qlik_email_resource.client import QlikClient
from qlik_email_resource.emulator import Emulator
from qlik_email_resource.errors import (
    QlikConfigurationError,
    QlikNotFoundError,
    QlikPatchUnsupportedError,
    QlikRateLimitedError,
    error_for_status,
)
from qlik_email_resource.settings import RetryPolicy, Settings, resolve

FAST = RetryPolicy(max_retries=2, backoff_factor=0.01, retry_after_max=0)


class _Recorder(BaseHTTPRequestHandler):
    """A plain HTTP server standing in for a tenant that sends deprecation headers."""

    seen: list[dict[str, Any]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append({"method": self.command, "path": self.path,
                                "headers": dict(self.headers), "body": body})
        payload = json.dumps({"isValid": False, "passwordExists": False}).encode()
        self.send_response(200 if self.command == "GET" else 204)
        self.send_header("Deprecation", "@1767225600")
        self.send_header("Sunset", "Sun, 01 Nov 2026 00:00:00 GMT")
        if self.command == "GET":
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        else:
            self.send_header("Content-Length", "0")
            self.end_headers()

    do_GET = do_PATCH = do_PUT = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/t/demo"
    server.shutdown()
    server.server_close()


def test_headers_path_prefix_and_deprecation_logged_once(
    recorder: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = QlikClient(Settings(tenant_url=recorder, api_key="key-123456", retry=FAST))
    with caplog.at_level(logging.WARNING, logger="qlik_email_resource"):
        for _ in range(3):
            client.patch_config([{"op": "replace", "path": "/serverPort", "value": 587}])
        client.get_config()
    first = _Recorder.seen[0]
    assert first["path"] == "/t/demo/api/v1/transports/email-config"
    assert first["headers"]["User-Agent"] == f"qlik-email-resource/{__version__}"
    assert first["headers"]["Authorization"] == "Bearer key-123456"
    assert json.loads(first["body"]) == [{"op": "replace", "path": "/serverPort", "value": 587}]
    notices = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(notices) == 2  # once for PATCH, once for GET
    assert "Sunset: Sun, 01 Nov 2026" in notices[0] and "key-123456" not in " ".join(notices)


def test_oauth_token_is_cached(qlik_emulator: Emulator) -> None:
    demo = qlik_emulator.tenant("demo")
    client = QlikClient(Settings(tenant_url=demo.url, client_id=demo.client_id,
                                 client_secret=demo.client_secret,
                                 ca_bundle=qlik_emulator.ca_file, retry=FAST))
    for _ in range(3):
        client.get_config()
    paths = [r["path"] for r in qlik_emulator.requests()]
    assert paths.count("/oauth/token") == 1 and len(paths) == 4


def test_delete_distinguishes_gone_from_wrong_tenant(qlik_emulator: Emulator) -> None:
    demo = qlik_emulator.tenant("demo")
    client = QlikClient(Settings(tenant_url=demo.url, api_key=demo.api_key,
                                 ca_bundle=qlik_emulator.ca_file, retry=FAST))
    assert client.delete_config() is False  # nothing configured: DELETE-1
    wrong = QlikClient(Settings(tenant_url=demo.url.replace("/t/demo", "/t/gone"),
                                api_key=demo.api_key, ca_bundle=qlik_emulator.ca_file,
                                retry=FAST))
    with pytest.raises(QlikNotFoundError, match="Check the tenant URL"):
        wrong.delete_config()


def test_repr_and_errors_hold_no_secret(qlik_emulator: Emulator) -> None:
    settings = Settings(tenant_url="https://t.example.com", api_key="SECRET-KEY-42",
                        client_secret="SECRET-CLIENT-42")
    client = QlikClient(settings)
    for text in (repr(settings), repr(client), str(settings)):
        assert "SECRET" not in text
    error = error_for_status(429, [{"code": "HTTP-429", "title": "API rate limit reached.",
                                    "detail": "You need to wait 13 seconds"}], retries=5,
                             operation="read email config")
    assert isinstance(error, QlikRateLimitedError)
    assert str(error) == (
        "read email config: The tenant kept answering 429 (rate limited) beyond the retry "
        "budget (5 retries) (HTTP 429 HTTP-429 API rate limit reached.; You need to wait 13 "
        "seconds). Qlik allows 100 writes and 1000 reads per minute per user; wait and run "
        "again, or raise the budget with qlik:maxRetries / QLIK_MAX_RETRIES."
    )
    assert "status=429" in repr(error)
    assert "writeMethod" in str(QlikPatchUnsupportedError())


def test_settings_precedence_and_validation(tmp_path: Any) -> None:
    env = {"QLIK_TENANT_URL": "https://env.example.com", "QLIK_API_KEY": "env-key",
           "REQUESTS_CA_BUNDLE": "/nonexistent-system-bundle"}
    config = {"qlik:tenantUrl": "https://config.example.com/", "qlik:apiKey": "config-key"}
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    s = resolve({}, {**config, "qlik:caBundle": str(ca)}, env)
    assert (s.tenant_url, s.api_key, s.ca_bundle) == ("https://config.example.com", "config-key",
                                                      str(ca))
    s = resolve({"tenant_url": "https://res.example.com", "api_key": "res-key"},
                {**config, "qlik:caBundle": str(ca)}, env)
    assert (s.tenant_url, s.api_key) == ("https://res.example.com", "res-key")
    s = resolve({}, {}, {"QLIK_TENANT_URL": "https://env.example.com",
                         "QLIK_CLIENT_ID": "id", "QLIK_CLIENT_SECRET": "sec"})
    assert (s.auth_kind, s.client_id) == ("oauth", "id")
    with pytest.raises(QlikConfigurationError, match="does not exist"):
        resolve({}, config, env)  # REQUESTS_CA_BUNDLE names a missing file
    with pytest.raises(QlikConfigurationError, match="must be a number"):
        resolve({}, {**config, "qlik:maxRetries": "many"}, {})


def test_stack_key_is_never_sent_to_another_tenant() -> None:
    config = {"qlik:tenantUrl": "https://a.example.com", "qlik:apiKey": "stack-key"}
    assert resolve({"tenant_url": "https://a.example.com/"}, config, {}).api_key == "stack-key"
    with pytest.raises(QlikConfigurationError, match="not the stack's tenant"):
        resolve({"tenant_url": "https://b.example.com"}, config, {})
