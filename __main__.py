"""One tenant's email (SMTP) provider, managed as code: one stack per tenant.

Reads the stack's `email:` settings (declared in Pulumi.yaml) and the tenant
URL; credentials (`qlik:apiKey` or `qlik:clientId`/`qlik:clientSecret`) are
provider config that the provider process reads itself, so they never pass
through this program or its state.
"""

import pulumi

from qlik_email_resource import TenantEmailConfig, TenantEmailConfigArgs

email = pulumi.Config("email")
qlik = pulumi.Config("qlik")


def optional(key: str) -> str | None:
    """Empty means unset (Pulumi.yaml's defaults are empty strings)."""
    return email.get(key) or None


# Each `email:` key is the input's camelCase name (the password's is `password`);
# tests/mapping/test_field_table.py checks them against the resource's field table
# and against Pulumi.yaml.
mail = TenantEmailConfig(
    "email",
    TenantEmailConfigArgs(
        # Passed as an input so that policies and `pulumi preview` see which tenant.
        tenant_url=qlik.require("tenantUrl"),
        server_address=email.require("serverAddress"),
        server_port=email.get_int("serverPort") or 465,
        security_type=email.get("securityType") or "SSL/TLS",
        username=optional("username"),
        email_address=email.require("emailAddress"),
        email_password=email.require_secret("password"),
        sender_name=optional("senderName"),
        verify_connection=email.get_bool("verifyConnection") is not False,
        test_email_recipient=optional("testEmailRecipient"),
    ),
)

pulumi.export("tenant_url", mail.tenant_url)
pulumi.export("tenant_id", mail.tenant_id)
pulumi.export("is_valid", mail.is_valid)
pulumi.export("error_code", mail.error_code)
pulumi.export("server", mail.server_address)
pulumi.export("port", mail.server_port)
pulumi.export("security", mail.security_type)
pulumi.export("sender", mail.email_address)
pulumi.export("password_exists", mail.password_exists)
