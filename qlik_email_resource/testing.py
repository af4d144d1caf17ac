"""The offline runner under its first name: ``qlik_email_resource.offline`` is its home.

Kept so that users' tests written against ``from qlik_email_resource.testing import
OfflineStack`` and ``python -m qlik_email_resource.testing`` go on working.
"""

from qlik_email_resource import offline as _offline
from qlik_email_resource.offline import *  # noqa: F403  (the same public names)

__all__ = list(_offline.__all__)

if __name__ == "__main__":
    import sys

    from qlik_email_resource.offline.__main__ import main

    sys.exit(main())
