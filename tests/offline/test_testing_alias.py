"""Names users imported before the refactor of issue #13 still work.

``qlik_email_resource.testing`` (the offline runner's first name, its submodules and
``python -m``) and ``from qlik_email_resource import pulumi_cli`` (docs/cli.md).
"""

from __future__ import annotations

import subprocess
import sys

import qlik_email_resource.offline as offline
import qlik_email_resource.testing as testing


def test_the_old_import_gives_the_same_objects() -> None:
    for name in offline.__all__:
        assert getattr(testing, name) is getattr(offline, name)


def test_the_old_submodules_are_the_same_modules() -> None:
    from qlik_email_resource.testing.grpc_servers import AnalyzerServer
    from qlik_email_resource.testing.runner import OfflineStack

    from qlik_email_resource.offline import grpc_servers, runner

    assert AnalyzerServer is grpc_servers.AnalyzerServer
    assert OfflineStack is runner.OfflineStack


def test_the_old_module_still_runs_from_a_shell() -> None:
    done = subprocess.run([sys.executable, "-m", "qlik_email_resource.testing", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "stack" in done.stdout


def test_pulumi_cli_is_still_importable_from_the_package() -> None:
    from qlik_email_resource import pulumi_cli
    from qlik_email_resource.fleet import pulumi_cli as moved

    assert pulumi_cli is moved
