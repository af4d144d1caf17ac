"""The Qlik email policy pack: ``pulumi preview --policy-pack policies``.

The rules live in ``rules.py`` beside this file so that tests can import them as
``policies.rules``; here the pack only assembles them.
"""

import sys
from pathlib import Path

# The CLI (and our test harness) runs this file with the pack directory as cwd, but
# make the import independent of how the interpreter was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import POLICIES

PolicyPack(
    name="qlik-email",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(POLICIES),
    description="Review rules for Qlik Cloud tenant email (SMTP) configurations.",
)
