"""The conformance corpus's multi-resource program: resources described by stack config.

`conformance:resources` is a JSON list of `{"name", "inputs"}`. An input value is a
literal, `{"secret": "<key>"}` (the secret stack config value `conformance:<key>`), or
`{"output": ["<resource>", "<attribute>"]}` (another resource's output, so that a
preview sees an unknown value). Every resource exports the same outputs, prefixed
with its name. The corpus uses this program for what the repository's own program
cannot express: several tenants in one stack, per-resource credentials, a dependency.
"""

import json
from typing import Any

import pulumi

from qlik_email_resource import TenantEmailConfig, TenantEmailConfigArgs

EXPORTS = (
    "tenant_url", "tenant_id", "is_valid", "error_code", "server_address", "server_port",
    "security_type", "sender_name", "email_password", "password_exists",
)

config = pulumi.Config("conformance")
declared: dict[str, TenantEmailConfig] = {}


def value(spec: Any) -> Any:
    if isinstance(spec, dict) and set(spec) == {"secret"}:
        return config.require_secret(spec["secret"])
    if isinstance(spec, dict) and set(spec) == {"output"}:
        name, attribute = spec["output"]
        return getattr(declared[name], attribute)
    return spec


for resource in json.loads(config.require("resources")):
    inputs = {key: value(spec) for key, spec in resource["inputs"].items()}
    declared[resource["name"]] = TenantEmailConfig(
        resource["name"], TenantEmailConfigArgs(**inputs)
    )

for name, declared_resource in declared.items():
    for attribute in EXPORTS:
        pulumi.export(f"{name}_{attribute}", getattr(declared_resource, attribute))
