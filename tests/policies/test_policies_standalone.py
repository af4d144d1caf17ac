"""The repository's pack runs where ``qlik_email_resource`` is not installed.

Under the Pulumi CLI, ``policies/`` runs in its own virtualenv (``policies/venv``) that
holds only ``pulumi`` and ``pulumi_policy``; a rule that imported the package would
break every ``pulumi preview --policy-pack policies`` there.
"""

from __future__ import annotations

from pathlib import Path

from qlik_email_resource.offline.grpc_servers import AnalyzerServer
from qlik_email_resource.policy_pack.rules import POLICY_NAMES

ROOT = Path(__file__).resolve().parents[2]


def test_the_pack_serves_without_the_package(tmp_path: Path) -> None:
    # A package of the same name first on the path, which fails on import: any import of
    # qlik_email_resource by the pack or its rules ends the analyzer before it answers.
    blocker = tmp_path / "qlik_email_resource"
    blocker.mkdir()
    (blocker / "__init__.py").write_text(
        "raise ImportError('the policy pack must not import qlik_email_resource')\n")
    server = AnalyzerServer(ROOT / "policies", env={"PYTHONPATH": str(tmp_path)})
    try:
        names = [policy.name for policy in server.info().policies]
    finally:
        server.stop()
    assert tuple(names) == POLICY_NAMES
