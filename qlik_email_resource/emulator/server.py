"""The Emulator: API (https), admin (http) and SMTP listeners in one process, in-process.

Everything binds 127.0.0.1. See docs/ARCHITECTURE.md "Emulator" for the contract.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from . import certs as certs_mod
from .admin import TOKEN_QUERY, AdminApp
from .faults import Faults
from .http import ApiApp, RequestLog
from .limits import RateLimiter
from .model import Backend, Tenant
from .smtp_client import SmtpTarget
from .smtp_client import send as smtp_send
from .smtp_client import verify as smtp_verify

log = logging.getLogger("qlik_email_resource.emulator")

HOST = "127.0.0.1"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
DEFAULT_SMTP_USER = "qlik-emulator"
# Idle HTTP connections are closed after this long, so a silent client cannot hold a thread.
CONNECTION_TIMEOUT = 30.0


@dataclass(frozen=True)
class TenantInfo:
    name: str
    url: str
    tenant_id: str
    api_key: str = field(repr=False)
    viewer_api_key: str = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"url": self.url, "tenant_id": self.tenant_id, "api_key": self.api_key,
                "viewer_api_key": self.viewer_api_key, "client_id": self.client_id,
                "client_secret": self.client_secret}


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without its access log: the apps log one line per request,
    without query strings or headers."""

    timeout = CONNECTION_TIMEOUT

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("http: " + message, *args)


class _Server(ThreadedWSGIServer):
    daemon_threads = True


def _make_server(app: Any, port: int, ssl_context: ssl.SSLContext | None) -> _Server:
    server = _Server(HOST, port, app, handler=_QuietHandler)
    if ssl_context is not None:
        # Wrap ourselves, with the handshake deferred to the connection's own thread:
        # Werkzeug's wrapping shakes hands in accept(), where one silent client would stall
        # every other connection.
        server.socket = ssl_context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        server.ssl_context = ssl_context
    return server


class SmtpRouter:
    """The SMTP routing rule (a sandbox, like LocalStack's): see ARCHITECTURE.md.

    Local hosts are dialled as configured, so a wrong port really fails; ``*.invalid`` is
    unreachable; any other host goes to the bundled listener for its ``securityType``, with
    the certificate checked as ``localhost`` against the emulator CA."""

    def __init__(self, emulator: Emulator):
        self.emu = emulator

    def target(self, config: Mapping[str, Any]) -> SmtpTarget | None:
        host = str(config.get("serverAddress") or "")
        security = str(config.get("securityType") or "none")
        username = config.get("username") or None
        password = config.get("password") or None
        smtp = self.emu.smtp
        if host.lower().rstrip(".").endswith(".invalid"):
            return None
        if host.lower() in LOCAL_HOSTS:
            return SmtpTarget(host=host, port=int(config.get("serverPort") or 0),
                              security_type=security, username=username, password=password,
                              ca_file=self.emu.ca_file)
        port = {"SSL/TLS": smtp.tls_port, "StartTLS": smtp.starttls_port}.get(
            security, smtp.plain_port)
        return SmtpTarget(host=HOST, port=port, security_type=security, username=username,
                          password=password, ca_file=self.emu.ca_file,
                          server_hostname="localhost")

    def _delay(self) -> None:
        if self.emu.smtp_delay > 0:
            time.sleep(self.emu.smtp_delay)

    @staticmethod
    def _unreachable(host: str) -> dict[str, Any]:
        return {"success": False, "connectionFailed": True,
                "message": f"could not resolve host {host!r}: .invalid names never resolve "
                           "(RFC 2606)", "smtpResponseCode": 0}

    def verify(self, config: Mapping[str, Any]) -> dict[str, Any]:
        self._delay()
        target = self.target(config)
        if target is None:
            return self._unreachable(str(config.get("serverAddress")))
        return smtp_verify(target)

    def send(self, config: Mapping[str, Any], *, recipient: str, subject: str,
             body: str) -> dict[str, Any]:
        self._delay()
        if config.get("serviceProvider") == "Microsoft365":
            # SIMULATED Microsoft Graph send: delivered through the bundled TLS listener as
            # the emulator's own SMTP user, so the mail still lands in the mailbox.
            user, password = self.emu.smtp_user
            target: SmtpTarget | None = SmtpTarget(
                host=HOST, port=self.emu.smtp.tls_port, security_type="SSL/TLS",
                username=user, password=password, ca_file=self.emu.ca_file,
                server_hostname="localhost")
        else:
            target = self.target(config)
        if target is None:
            return {**self._unreachable(str(config.get("serverAddress"))),
                    "accepted": [], "rejected": []}
        return smtp_send(target, sender=str(config.get("emailAddress") or ""),
                         sender_name=config.get("senderName"), recipient=recipient,
                         subject=subject, body=body)


class Emulator:
    """A local Qlik Cloud with many tenants and a real SMTP server behind them."""

    def __init__(self, tenants: Iterable[str] = ("demo",), port: int = 0,
                 state_file: str | Path | None = None,
                 rate_limits: bool | Mapping[str, float] = True, https: bool = True,
                 smtp_delay: float = 0.0, token_ttl: float = 3600.0,
                 workdir: str | Path | None = None):
        self.tenant_names = list(tenants) or ["demo"]
        self.port = port
        self.state_file = Path(state_file) if state_file else None
        self.https = https
        self.smtp_delay = float(smtp_delay)
        self.token_ttl = float(token_ttl)
        self._workdir_arg = Path(workdir) if workdir else None
        self.limiter = RateLimiter(rate_limits)
        self.faults = Faults()
        self.request_log = RequestLog()
        self.backend = Backend(SmtpRouter(self), token_ttl=self.token_ttl,
                               state_file=self.state_file)
        self._lifecycle = threading.Lock()
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._workdir: Path | None = None
        self._own_workdir = False
        self.smtp: Any = None
        self.smtp_user: tuple[str, str] = ("", "")
        # Proves a caller of the admin API read the startup JSON (set by start()).
        self.admin_token = ""
        self.ca_file = ""
        self.api_url = ""
        self.admin_url = ""
        self._running = False

    def __repr__(self) -> str:
        return f"Emulator(api_url={self.api_url!r}, admin_url={self.admin_url!r})"

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> Emulator:
        with self._lifecycle:
            if self._running:
                return self
            from .smtp_server import SmtpServer

            if self._workdir_arg is not None:
                self._workdir = self._workdir_arg
                self._workdir.mkdir(parents=True, exist_ok=True)
            else:
                self._workdir = Path(tempfile.mkdtemp(prefix="qlik-emulator-"))
                self._own_workdir = True
            try:
                paths = certs_mod.generate(self._workdir / "certs")
                self.ca_file = paths.ca_file
                for name in self.tenant_names:
                    self.backend.add_tenant(name)
                users = dict(self.backend.extra_state.get("smtp_users") or {})
                if DEFAULT_SMTP_USER not in users:
                    users[DEFAULT_SMTP_USER] = secrets.token_urlsafe(18)
                    self.backend.extra_state["smtp_users"] = users
                    self.backend.save()
                self.smtp_user = (DEFAULT_SMTP_USER, users[DEFAULT_SMTP_USER])
                self.admin_token = self._load_admin_token()
                self.smtp = SmtpServer(paths, host=HOST, users=users)
                self.smtp.start()

                api_ctx = None
                if self.https:
                    api_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    api_ctx.load_cert_chain(paths.cert_file, paths.key_file)
                api = _make_server(ApiApp(self.backend, self.limiter, self.faults,
                                          self.request_log), self.port, api_ctx)
                admin = _make_server(AdminApp(self, self.admin_token), 0, None)
                self._servers = [api, admin]
                scheme = "https" if self.https else "http"
                self.api_url = f"{scheme}://{HOST}:{api.server_port}"
                self.admin_url = f"http://{HOST}:{admin.server_port}"
                for server, name in ((api, "api"), (admin, "admin")):
                    thread = threading.Thread(target=server.serve_forever,
                                              kwargs={"poll_interval": 0.1},
                                              name=f"qlik-emulator-{name}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
            except BaseException:
                self._shutdown()
                raise
            self._running = True
            log.info("emulator API at %s, admin at %s", self.api_url, self.admin_url)
            return self

    def stop(self) -> None:
        with self._lifecycle:
            self._shutdown()

    def _shutdown(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []
        if self.smtp is not None:
            self.smtp.stop()
        self.backend.save()
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._own_workdir = False
        self._running = False

    # ---- what callers read ------------------------------------------------------------

    def _load_admin_token(self) -> str:
        """The admin token: kept in the state file (when there is one) like the tenants'
        keys, so scripts that read it once keep working across restarts."""
        token = self.backend.extra_state.get("admin_token")
        if not isinstance(token, str) or not token:
            token = "qlikemu_admin_" + secrets.token_urlsafe(32)
            self.backend.extra_state["admin_token"] = token
            self.backend.save()
        return token

    @property
    def admin_headers(self) -> dict[str, str]:
        """What every admin API call sends: ``{"Authorization": "Bearer <admin_token>"}``."""
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def mailbox_url(self) -> str:
        """The inbox, openable in a browser: the token rides in the URL (reads only)."""
        return f"{self.admin_url}/mailbox?{TOKEN_QUERY}={quote(self.admin_token, safe='')}"

    def tenant(self, name: str) -> TenantInfo:
        t = self.backend.tenant(name)
        if t is None:
            known = ", ".join(x.name for x in self.backend.tenants())
            raise KeyError(f"no tenant {name!r} in this emulator (tenants: {known})")
        return self._info(t)

    def _info(self, t: Tenant) -> TenantInfo:
        return TenantInfo(name=t.name, url=f"{self.api_url}/t/{t.name}", **t.credentials())

    @property
    def info(self) -> dict[str, Any]:
        """Exactly the CLI's JSON line."""
        return {
            "api_url": self.api_url,
            "admin_url": self.admin_url,
            "admin_token": self.admin_token,
            "mailbox_url": self.mailbox_url,
            "tenants": self.tenant_infos(),
            "smtp": {
                "host": HOST,
                "tls_port": self.smtp.tls_port if self.smtp else 0,
                "starttls_port": self.smtp.starttls_port if self.smtp else 0,
                "plain_port": self.smtp.plain_port if self.smtp else 0,
                "username": self.smtp_user[0],
                "password": self.smtp_user[1],
                "ca_file": self.ca_file,
            },
            "ca_file": self.ca_file,
        }

    def tenant_infos(self) -> dict[str, dict[str, str]]:
        return {t.name: self._info(t).as_dict() for t in self.backend.tenants()}

    def add_tenant(self, name: str) -> TenantInfo:
        return self._info(self.backend.add_tenant(name))

    def add_tenant_info(self, name: str) -> dict[str, str]:
        return {"name": name, **self.add_tenant(name).as_dict()}

    def _tenant_obj(self, name: str) -> Tenant:
        t = self.backend.tenant(name)
        if t is None:
            raise KeyError(f"no tenant {name!r} in this emulator")
        return t

    def expire_tokens(self, name: str) -> None:
        self.backend.expire_tokens(self._tenant_obj(name))

    def set_token_ttl(self, name: str, seconds: float) -> None:
        self._tenant_obj(name).token_ttl = float(seconds)

    def set_config(self, tenant: str, data: Mapping[str, Any]) -> None:
        self.backend.set_config(self._tenant_obj(tenant), data)

    # ---- admin operations -------------------------------------------------------------

    def requests(self) -> list[dict[str, Any]]:
        return self.request_log.list()

    def clear_requests(self) -> None:
        self.request_log.clear()

    def add_fault(self, tenant: str, kind: str, **params: Any) -> dict[str, Any]:
        self._tenant_obj(tenant)
        return self.faults.add(tenant, kind, **params)

    def clear_faults(self) -> None:
        self.faults.clear()

    def list_faults(self) -> list[dict[str, Any]]:
        return self.faults.list()

    def mailbox(self) -> list[dict[str, Any]]:
        return self.smtp.mailbox() if self.smtp else []

    def clear_mailbox(self) -> None:
        if self.smtp:
            self.smtp.clear_mailbox()

    def add_smtp_user(self, username: str, password: str) -> None:
        users = dict(self.backend.extra_state.get("smtp_users") or {})
        users[username] = password
        self.backend.extra_state["smtp_users"] = users
        self.backend.save()
        if self.smtp:
            self.smtp.add_user(username, password)

    def reset(self) -> None:
        """Forget configs, requests, faults, mailbox and rate-limit buckets; keep tenants,
        credentials, SMTP users and listeners."""
        self.backend.reset()
        self.request_log.clear()
        self.faults.clear()
        self.limiter.reset()
        self.clear_mailbox()
