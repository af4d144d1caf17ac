"""Manage the SMTP email provider of Qlik Cloud tenants as code.

Most users need only::

    from qlik_email_resource import TenantEmailConfig, TenantEmailConfigArgs

The names are loaded lazily: importing the package must stay cheap, because the
Pulumi provider process and the policy analyzer import it on every start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["TenantEmailConfig", "TenantEmailConfigArgs", "__version__"]

if TYPE_CHECKING:
    from qlik_email_resource.resource import TenantEmailConfig, TenantEmailConfigArgs


def __getattr__(name: str) -> Any:
    if name in ("TenantEmailConfig", "TenantEmailConfigArgs"):
        from qlik_email_resource import resource

        return getattr(resource, name)
    if name == "pulumi_cli":
        # Its first home, kept for `from qlik_email_resource import pulumi_cli` (docs/cli.md
        # showed it); the module lives beside its user, the fleet's Automation API backend.
        from qlik_email_resource.fleet import pulumi_cli

        return pulumi_cli
    raise AttributeError(f"module 'qlik_email_resource' has no attribute {name!r}")
