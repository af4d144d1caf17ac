"""The qlik-email policy pack, shipped inside the package.

A user who ``pip install``-ed this project runs it without a clone::

    pulumi preview --policy-pack "$(qlik-email-fleet policy-pack)"

The directory is a complete Pulumi policy pack (``PulumiPolicy.yaml``,
``__main__.py``, ``rules.py``). Its manifest names no virtualenv, so the CLI runs it
with the Python on PATH (or ``PULUMI_PYTHON_CMD``): the one this package is
installed in, which has ``pulumi_policy`` as a dependency. The repository's
``policies/`` pack runs this directory's ``__main__.py``: the rules and their
assembly exist once.
"""

from __future__ import annotations

from pathlib import Path


def path() -> Path:
    """The pack's directory, for ``--policy-pack``."""
    return Path(__file__).resolve().parent
