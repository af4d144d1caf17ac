"""The offline runner under its first name: ``qlik_email_resource.offline`` is its home.

Kept so that users' tests written against ``from qlik_email_resource.testing import
OfflineStack`` and ``python -m qlik_email_resource.testing`` go on working.
"""

from qlik_email_resource.offline import (
    HEADER,
    UNKNOWN,
    OfflineRunError,
    OfflineStack,
    PolicyViolationError,
    RunResult,
    Secret,
    Step,
    Violation,
)

__all__ = [
    "HEADER",
    "UNKNOWN",
    "OfflineRunError",
    "OfflineStack",
    "PolicyViolationError",
    "RunResult",
    "Secret",
    "Step",
    "Violation",
]

if __name__ == "__main__":
    import sys

    from qlik_email_resource.offline.__main__ import main

    sys.exit(main())
