"""The qlik-email policy pack, shipped inside the package.

A user who ``pip install``-ed this project runs it without a clone::

    pulumi preview --policy-pack "$(qlik-email-fleet policy-pack)"

The directory is a complete Pulumi policy pack (``PulumiPolicy.yaml``,
``__main__.py``, ``rules.py``). Its manifest names no virtualenv, so the CLI runs it
with the Python on PATH (or ``PULUMI_PYTHON_CMD``): the one this package is
installed in, which has ``pulumi_policy`` as a dependency. The repository's
``policies/`` pack serves the same rules: both ``__main__.py`` call ``serve()``.
"""

from __future__ import annotations

from pathlib import Path


def path() -> Path:
    """The pack's directory, for ``--policy-pack``."""
    return Path(__file__).resolve().parent


def serve() -> None:
    """Serve the pack's analyzer until the engine stops it (what a pack's ``__main__.py`` does).

    ``PolicyPack`` starts its gRPC server as soon as it is built, so it is built
    here, on demand, and not when the package is imported for ``path()``.
    """
    from pulumi_policy import EnforcementLevel, PolicyPack

    from qlik_email_resource.policy_pack.rules import POLICIES

    PolicyPack(
        name="qlik-email",
        enforcement_level=EnforcementLevel.MANDATORY,
        policies=list(POLICIES),
        description="Review rules for Qlik Cloud tenant email (SMTP) configurations.",
    )
