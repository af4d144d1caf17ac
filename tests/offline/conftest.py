"""Shared fixtures for the offline-runner tests: the toy provider, its store and pack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qlik_email_resource.offline import OfflineStack, Secret
from qlik_email_resource.offline.grpc_servers import AnalyzerServer, ProviderServer
from tests.offline.toy_provider import TOY_PASSWORD, toy_program

HERE = Path(__file__).resolve().parent
# The provider process imports tests.offline.toy_provider (pickled by reference) from here.
ROOT = HERE.parents[1]


@pytest.fixture(scope="session")
def toy_analyzer() -> Iterator[AnalyzerServer]:
    server = AnalyzerServer(HERE / "toy_policy")
    server.configure()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy provider's records file: one per test module, like its provider server."""
    return tmp_path_factory.mktemp("toy") / "store.json"


@pytest.fixture(scope="module")
def provider(store: Path) -> Iterator[ProviderServer]:
    """The real provider host serving toy_provider, one per test module."""
    server = ProviderServer(env={"TOY_STORE": str(store), "PYTHONPATH": str(ROOT)})
    yield server
    server.stop()


@pytest.fixture
def make_stack(tmp_path: Path, store: Path, provider: ProviderServer) -> Any:
    """A toy stack on this module's provider host, a fresh store per test; keyword
    arguments go to ``OfflineStack`` (``config`` is added to the toy password)."""
    store.unlink(missing_ok=True)

    def make(program: Any = toy_program, **kwargs: Any) -> OfflineStack:
        config = {"toy:password": Secret(TOY_PASSWORD), **kwargs.pop("config", {})}
        return OfflineStack(
            program, project="toy", stack="dev", config=config,
            state_file=tmp_path / "dev.json", provider_server=provider, quiet=True, **kwargs,
        )

    return make
