"""Fixtures of the conformance corpus: one emulator, one policy analyzer, one work dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qlik_email_resource.offline.grpc_servers import AnalyzerServer
from tests.conformance.observe import ScenarioRun
from tests.conformance.scenarios import ROOT


@pytest.fixture(scope="session")
def conformance_analyzer() -> Iterator[AnalyzerServer]:
    server = AnalyzerServer(ROOT / "policies")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def conformance_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance")


@pytest.fixture(scope="session")
def offline_runs() -> dict[str, ScenarioRun]:
    """The offline test's runs by scenario, which the CLI test compares against."""
    return {}
