"""The pack's rules, importable as ``policies.rules``: they live in the packaged pack.

``qlik_email_resource/policy_pack/rules.py`` is the one copy of the rules, so that a
``pip install``-ed user has them (``qlik-email-fleet policy-pack`` prints where);
this repository's pack (``policies/__main__.py``) serves the same rules.
"""

from qlik_email_resource.policy_pack.rules import *  # noqa: F403
