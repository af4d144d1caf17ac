"""pytest fixtures that run the emulator in-process on free ports (entry point ``pytest11``).

- ``qlik_emulator_session``: one running emulator (tenants ``demo`` and ``acme``) per session.
- ``qlik_emulator``: the same emulator after ``reset()``: a clean state for each test.
- ``qlik_tenant``: ``qlik_emulator.tenant("demo")``.
- ``qlik_admin``: a ``requests.Session`` that sends the admin token, for the admin API at
  ``qlik_emulator.admin_url`` (``qlik_admin.get(qlik_emulator.admin_url + "/requests")``).
- ``qlik_emulator_factory``: ``factory(**kwargs) -> Emulator`` for tests that need their own
  settings (small rate limits, a state file); each one is stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import requests

from .server import Emulator, TenantInfo


@pytest.fixture(scope="session")
def qlik_emulator_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = Emulator(tenants=("demo", "acme"),
                   workdir=tmp_path_factory.mktemp("qlik-emulator"))
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def qlik_emulator(qlik_emulator_session: Emulator) -> Emulator:
    qlik_emulator_session.reset()
    return qlik_emulator_session


@pytest.fixture
def qlik_tenant(qlik_emulator: Emulator) -> TenantInfo:
    return qlik_emulator.tenant("demo")


@pytest.fixture
def qlik_admin(qlik_emulator: Emulator) -> Iterator[requests.Session]:
    import requests  # only for the tests that ask for it

    with requests.Session() as session:
        session.headers.update(qlik_emulator.admin_headers)
        yield session


@pytest.fixture
def qlik_emulator_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def factory(**kwargs: Any) -> Emulator:
        kwargs.setdefault("workdir", tmp_path_factory.mktemp("qlik-emulator"))
        emu = Emulator(**kwargs)
        emu.start()
        started.append(emu)
        return emu

    try:
        yield factory
    finally:
        for emu in reversed(started):
            emu.stop()
