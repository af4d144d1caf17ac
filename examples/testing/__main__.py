"""The README's program ("Use it in your own Pulumi program"), word for word.

`test_my_stack.py` beside it tests it, as it would test yours: copy that file next to
your own program's `__main__.py`. tests/fleet/test_fleet_examples.py keeps this file
and the README's snippet the same, and runs the copy in a directory of its own.
"""

import pulumi

from qlik_email_resource import TenantEmailConfig, TenantEmailConfigArgs

cfg = pulumi.Config("email")
mail = TenantEmailConfig(
    "email",
    TenantEmailConfigArgs(
        server_address="email-smtp.eu-west-2.amazonaws.com",
        server_port=2465,
        security_type="SSL/TLS",
        username=cfg.require("username"),
        email_address="qlik@mydomain.com",
        email_password=cfg.require_secret("password"),
        verify_connection=True,
    ),
)
pulumi.export("tenant_id", mail.tenant_id)
