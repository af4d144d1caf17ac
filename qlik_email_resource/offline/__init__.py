"""The offline runner: run a Pulumi program without the Pulumi CLI.

A test tool, never a ``pulumi`` impostor: the program runs under
``pulumi.runtime`` mocks, dynamic resources go to Pulumi's real dynamic-provider
server and policies to the real analyzer, state lives in a JSON file with
encrypted secrets. Every run says so in its output.

    from qlik_email_resource.offline import OfflineStack, Secret
    stack = OfflineStack(".", stack="tenant-a", config={"email:password": Secret("...")},
                         state_file=".offline/tenant-a.json", policy_packs=["policies"])
    print(stack.up().report())
"""

from qlik_email_resource.offline.results import (
    HEADER,
    UNKNOWN,
    OfflineRunError,
    PolicyViolationError,
    RunResult,
    Secret,
    Step,
    Violation,
)
from qlik_email_resource.offline.runner import OfflineStack

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
