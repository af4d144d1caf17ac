"""The Qlik email policy pack of this repository: ``pulumi preview --policy-pack policies``.

The rules live in the packaged pack, ``qlik_email_resource/policy_pack/rules.py``,
which users get with ``pip install``; this pack assembles the same file, so the
rules exist once. It loads the file by path, not through ``qlik_email_resource``:
under the Pulumi CLI this pack runs in its own virtualenv (``policies/venv``), which
has only ``pulumi`` and ``pulumi_policy``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "qlik_email_resource" / "policy_pack"))

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import POLICIES

PolicyPack(
    name="qlik-email",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(POLICIES),
    description="Review rules for Qlik Cloud tenant email (SMTP) configurations.",
)
