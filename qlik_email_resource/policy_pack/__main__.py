"""The qlik-email policy pack: ``pulumi preview --policy-pack <this directory>``.

The rules live in ``rules.py`` beside this file; here the pack only assembles them.
This file imports nothing of ``qlik_email_resource``: the CLI runs it as a script,
and the repository's ``policies/`` pack runs the same ``rules.py`` in a virtualenv
that has only ``pulumi`` and ``pulumi_policy``.
"""

import sys
from pathlib import Path

# The CLI runs this file with the pack directory as cwd; make the import independent
# of how the interpreter was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import POLICIES

PolicyPack(
    name="qlik-email",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(POLICIES),
    description="Review rules for Qlik Cloud tenant email (SMTP) configurations.",
)
