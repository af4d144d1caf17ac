"""Fixtures: the provider host (real ``python -m pulumi.dynamic``) against the emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import pytest

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline.grpc_servers import ProviderServer
from qlik_email_resource.offline.provider_driver import ProviderDriver
from tests.support.provider import start_server


@pytest.fixture(scope="session")
def provider_server(qlik_emulator_session: Emulator) -> Iterator[ProviderServer]:
    """The session's provider host, configured with tenant demo's API key (stack config)."""
    demo = qlik_emulator_session.tenant("demo")
    server = start_server(
        qlik_emulator_session, {"qlik:tenantUrl": demo.url, "qlik:apiKey": demo.api_key}
    )
    yield server
    server.stop()


@pytest.fixture
def driver(provider_server: ProviderServer, qlik_emulator: Emulator) -> ProviderDriver:
    return ProviderDriver(provider_server)


@pytest.fixture
def server_factory(
    qlik_emulator: Emulator,
) -> Iterator[Callable[..., ProviderServer]]:
    """Provider hosts with their own config/env (configure() runs once per process)."""
    started: list[ProviderServer] = []

    def factory(config: Mapping[str, str], **env: str) -> ProviderServer:
        server = start_server(qlik_emulator, config, **env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
