"""Fleet roll-out: one Pulumi stack per tenant, from one tenants file.

``qlik-email-fleet {preview,up} tenants.yaml [--parallel N] [--offline]``; see docs/fleet.md.
"""

from __future__ import annotations

from qlik_email_resource.fleet.cli import main, run_fleet
from qlik_email_resource.fleet.report import TenantResult, render_table
from qlik_email_resource.fleet.tenants import Tenant, TenantsFile, TenantsFileError, load

__all__ = [
    "Tenant",
    "TenantResult",
    "TenantsFile",
    "TenantsFileError",
    "load",
    "main",
    "render_table",
    "run_fleet",
]
