"""Conformance: schemathesis drives the emulator from the published (reconstructed) spec and
checks every answer against the documented status codes, content types and schemas.

The spec beside this file, ``transports-spec-current-reconstructed.json``, is Qlik's
published Transports spec with the 2026 changes of https://qlik.dev/apis/rest/transports/
added (PUT, senderName, the PATCH deprecation). It is patched here, visibly, for its two
known bugs ([C]: both are in the published spec):
- PATCH ``op`` is one enum literal ``"replace, remove, add"``: split into three values;
- ``providerConfig`` is a ``oneOf`` of two schemas with no required fields, so every object
  matches both and no answer could ever be valid: read it as ``anyOf``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from qlik_email_resource.emulator import Emulator

SPEC_FILE = Path(__file__).with_name("transports-spec-current-reconstructed.json")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def _patched_spec() -> dict[str, Any]:
    spec = json.loads(SPEC_FILE.read_text())
    schemas = spec["components"]["schemas"]
    schemas["emailConfigFieldPatch"]["properties"]["op"]["enum"] = ["replace", "remove", "add"]
    for name in ("getEmailConfig", "putEmailConfig"):
        pc = schemas[name]["properties"]["providerConfig"]
        pc["anyOf"] = pc.pop("oneOf")
    return spec


SPEC = _patched_spec()
schema = schemathesis.openapi.from_dict(SPEC)


@pytest.fixture(scope="module")
def conformance_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    # Own emulator without rate limits: hypothesis sends hundreds of Tier 2 calls.
    with Emulator(tenants=("demo",), rate_limits=False,
                  workdir=tmp_path_factory.mktemp("conformance")) as emu:
        yield emu


@schema.parametrize()
@settings(max_examples=40, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_spec(case, conformance_emulator):
    emu = conformance_emulator
    tenant = emu.tenant("demo")
    case.call_and_validate(
        base_url=tenant.url, headers={"Authorization": f"Bearer {tenant.api_key}"},
        checks=CHECKS, verify=emu.ca_file, timeout=30,
    )


def _validator(name: str) -> jsonschema_rs.Draft4Validator:
    resolver_spec = {"components": SPEC["components"], "$ref": f"#/components/schemas/{name}"}
    return jsonschema_rs.Draft4Validator(resolver_spec)


@pytest.mark.parametrize(
    ("method", "path", "token_kind", "status", "schema_name", "code"),
    [
        ("GET", "", "viewer", 403, "TenantAdminError", "ROLECHECK-1"),
        ("PUT", "", "viewer", 403, "TenantAdminError", "ROLECHECK-1"),
        ("PATCH", "", "viewer", 403, "TenantAdminError", "ROLECHECK-1"),
        ("DELETE", "", "viewer", 403, "TenantAdminError", "ROLECHECK-1"),
        ("POST", "/actions/send-test-email", "viewer", 403, "TenantAdminError", "ROLECHECK-1"),
        ("DELETE", "", "admin", 404, "DeleteConfigNotFoundError", "DELETE-1"),
        ("POST", "/actions/send-test-email", "admin", 404, "SendTestMailConfigNotFoundError",
         "SENDTESTEMAIL-1"),
        ("POST", "/actions/verify-connection", "admin", 404,
         "VerifyConnectionConfigNotFoundError", "VERIFYCONNECTION-1"),
        ("PUT", "", "admin", 400, "UpdateEmailConfigError", "INPUTCHECK-1"),
        ("PATCH", "", "admin", 400, "UpdateEmailConfigError", "INPUTCHECK-1"),
        ("GET", "", "none", 401, "ErrorsPublic", "HTTP-401"),
    ],
)
def test_error_codes_match_documented_schemas(qlik_emulator, qlik_tenant, h, method, path,
                                              token_kind, status, schema_name, code):
    token = {"viewer": qlik_tenant.viewer_api_key, "admin": qlik_tenant.api_key,
             "none": ""}[token_kind]
    api = h.Api(qlik_emulator, qlik_tenant, token=token)
    body = {"recipient": "a@example.com"} if "send" in path else {"bad": True}
    if method == "PATCH":
        body = [{"op": "replace", "path": "/nope", "value": "x"}]
    resp = api.call(method, h.CONFIG + path, json=body)
    assert resp.status_code == status
    assert resp.headers["Content-Type"].startswith("application/json")
    _validator(schema_name).validate(resp.json())
    assert h.errors(resp)[0] == code


def test_success_bodies_match_documented_schemas(qlik_emulator, api, h):
    _validator("getEmailConfig").validate(api.get().json())
    assert api.put(h.basic_config(qlik_emulator)).status_code == 204
    _validator("getEmailConfig").validate(api.get().json())
    _validator("smtpCheck").validate(api.action("validate").json())
    _validator("smtpResult").validate(api.action("verify-connection").json())
    _validator("smtpResult").validate(
        api.action("send-test-email", {"recipient": "a@example.com"}).json())
    # the 429 shape of the rate-limiting page
    qlik_emulator.add_fault("demo", "status", status=429, retry_after=3)
    _validator("ErrorsPublic").validate(api.get().json())
