"""Shared fixtures for the program and offline-runner tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# toy_provider must be importable here and in the provider process (by-reference pickle).
sys.path.insert(0, str(HERE))

from qlik_email_resource.testing.grpc_servers import AnalyzerServer, ProviderServer  # noqa: E402


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
    server = ProviderServer(env={"TOY_STORE": str(store), "PYTHONPATH": str(HERE)})
    yield server
    server.stop()
