"""The Qlik email policy pack of this repository: ``pulumi preview --policy-pack policies``.

The pack lives in the package, ``qlik_email_resource/policy_pack/`` (users get it with
``pip install``); this file runs that pack's ``__main__.py`` by path, so the rules and
their assembly exist once. By path, not through ``qlik_email_resource``: under the
Pulumi CLI this pack runs in its own virtualenv (``policies/venv``), which has only
``pulumi`` and ``pulumi_policy``.
"""

import runpy
from pathlib import Path

PACKAGED = Path(__file__).resolve().parents[1] / "qlik_email_resource" / "policy_pack"

runpy.run_path(str(PACKAGED / "__main__.py"), run_name="__main__")
