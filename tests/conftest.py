"""Suite-wide: in CI nothing that needs the Pulumi CLI or Chromium may skip; property
tests do not fail on the speed of a shared machine.

A test that needs the CLI skips with a one-line reason where it is absent (a laptop
without Go). CI builds the CLI and installs Chromium, so there a skip would only hide
a broken install step: with QLIK_REQUIRE_TOOLS=1 (set by .ci/run) such a skip fails.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis's speed checks (data generation too slow, an example over its deadline)
# measure the machine, not the code: on 2 cores shared with the CLI tests they fired
# now and then. Every property still runs its examples and asserts the same things.
settings.register_profile("shared-cores", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-cores")

# The words every skip reason for a missing tool uses (tests/cli/clienv.py and friends).
_TOOL_SKIP = re.compile(r"pulumi|chromium|make cli", re.IGNORECASE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if not os.environ.get("QLIK_REQUIRE_TOOLS") or not report.skipped:
        return
    longrepr = report.longrepr
    reason = str(longrepr[-1]) if isinstance(longrepr, tuple) else str(longrepr)
    if _TOOL_SKIP.search(reason):
        report.outcome = "failed"
        report.longrepr = f"QLIK_REQUIRE_TOOLS is set (CI), but this test skipped: {reason}"
