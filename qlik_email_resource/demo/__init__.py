"""`make demo`: from a fresh clone to two configured tenants, with no Qlik account.

Starts the emulator (two tenants and an SMTP server), deploys the example
settings (examples/tenants.yaml) to both, one stack per tenant as the fleet
does, reviews them with the policy pack, sends a test mail per tenant, then
changes a setting behind Pulumi's back and shows refresh finding the drift and
up repairing it.

The stacks run on the fleet's backends: the real `pulumi` CLI (on a local file
backend under .demo/) when it is on PATH (`make demo` adds the one `make cli`
built); otherwise the offline runner, which says so.

Modules: story.py (the steps), stacks.py (which fleet backend runs them),
emulated.py (the emulator and a tenant's client), outcome.py (a run in the
demo's words), console.py (output), cli.py (options, exit codes).
"""

from qlik_email_resource.demo.cli import main
from qlik_email_resource.demo.errors import DemoError
from qlik_email_resource.demo.story import run_demo

__all__ = ["DemoError", "main", "run_demo"]
