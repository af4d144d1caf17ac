"""The field table (mapping.FIELDS) and every list that follows from it or must agree with it.

Only the lists that are facts of their own are pinned to literals (secrets, write-only
fields, Qlik's PATCH paths, control inputs); the rest is checked by the table's
invariants, so adding a field edits no test here. The typed resource
(TenantEmailConfigArgs, the output annotations), the repo program (__main__.py,
Pulumi.yaml) and the fleet's tenants-file keys are written out for
their readers; they are checked against the table.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import yaml

from qlik_email_resource import mapping
from qlik_email_resource.fleet import tenants
from qlik_email_resource.mapping import FIELDS, INPUTS, OUTPUTS
from qlik_email_resource.resource import TenantEmailConfig, TenantEmailConfigArgs

REPO = Path(__file__).resolve().parents[2]


# --- the lists that are facts of their own ------------------------------------------------
# Only these are pinned: each states something that must not drift with the table
# (what is secret, what Qlik never returns, Qlik's six PATCH paths, what is never sent).
# The other lists (INPUTS, API_FIELDS, BASIC_FIELDS, OUTPUTS...) are the table read in
# its order, checked by the invariants below.


def test_secret_and_write_only_inputs() -> None:
    assert mapping.SECRET_INPUTS == ("email_password", "client_secret", "api_key")
    assert mapping.WRITE_ONLY == ("email_password", "client_secret")


def test_patch_paths_are_qliks_six() -> None:
    assert mapping.PATCH_PATHS == {
        "username": "/username",
        "server_address": "/serverAddress",
        "server_port": "/serverPort",
        "security_type": "/securityType",
        "email_address": "/emailAddress",
        "email_password": "/emailPassword",
    }


def test_control_inputs() -> None:
    assert mapping.CONTROL_INPUTS == (
        "tenant_url", "api_key", "verify_connection", "test_email_recipient",
    )


def test_lists_are_the_table_in_its_order() -> None:
    assert (*mapping.API_FIELDS, *mapping.CONTROL_INPUTS) == mapping.INPUTS
    assert (*mapping.INPUTS, *mapping.STATUS_OUTPUTS) == mapping.OUTPUTS
    for provider, fields in ((mapping.BASIC_AUTH, mapping.BASIC_FIELDS),
                             (mapping.MICROSOFT_365, mapping.M365_FIELDS)):
        assert fields == {f.name: f.qlik for f in FIELDS if provider in f.providers}


# --- invariants of the table ------------------------------------------------------------------


def test_each_input_is_one_record() -> None:
    assert len(set(INPUTS)) == len(INPUTS) == len(FIELDS)
    assert {f.name: f for f in FIELDS} == mapping.FIELD_BY_NAME


def test_control_inputs_belong_to_no_provider() -> None:
    for field in FIELDS:
        if field.control:
            assert not field.providers and not field.required and not field.patchable


def test_fields_of_a_provider_are_api_fields() -> None:
    for field in FIELDS:
        assert set(field.providers) <= set(mapping.SERVICE_PROVIDERS), field.name
        if not field.control and field.name != "service_provider":
            assert field.providers, field.name


def test_patch_paths_are_basic_auth_qlik_names() -> None:
    # PATCH knows BasicAuth's paths only, each the Qlik name of its field.
    for field in FIELDS:
        if field.patchable:
            assert mapping.BASIC_AUTH in field.providers, field.name
            assert field.patch_path == f"/{field.qlik}", field.name
        else:
            assert field.patch_path is None, field.name


def test_write_only_fields_are_secret() -> None:
    for field in FIELDS:
        if field.write_only:
            assert field.secret, field.name


def test_a_field_that_is_not_text_has_its_own_check() -> None:
    # Only text gets the generic "must be a string": a number or a flag needs a rule.
    for field in FIELDS:
        assert field.kind in (str, int, bool), field.name
        if field.kind is not str:
            assert field.check is not None, field.name
        if field.strip or field.no_control_characters:
            assert field.kind is str, field.name


def test_every_provider_requires_email_address() -> None:
    for provider in mapping.SERVICE_PROVIDERS:
        required = [f.name for f in FIELDS if provider in f.providers and f.required]
        assert "email_address" in required, provider


# --- the typed resource -------------------------------------------------------------------------


def _annotation_type(annotation: str, wrapper: str) -> str:
    match = re.fullmatch(rf"pulumi\.{wrapper}\[(\w+)( \| None)?\]( \| None)?", annotation)
    assert match, annotation
    return match.group(1)


def test_args_are_the_table_inputs_with_their_types() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(TenantEmailConfigArgs)}
    assert set(fields) == set(INPUTS)
    for field in FIELDS:
        annotation = str(fields[field.name])
        assert _annotation_type(annotation, "Input") == field.kind.__name__, field.name
        assert annotation.endswith("| None"), field.name  # every input may be left out


def test_output_annotations_are_the_table_outputs() -> None:
    annotations = {
        name: str(value)
        for name, value in TenantEmailConfig.__annotations__.items()
        if str(value).startswith("pulumi.Output[")
    }
    assert set(annotations) == set(OUTPUTS)
    for field in FIELDS:
        assert _annotation_type(annotations[field.name], "Output") == field.kind.__name__


# --- the fleet's tenants file ---------------------------------------------------------------


def test_tenants_file_email_keys_are_the_table_inputs() -> None:
    # Every input is a setting of the file, but the tenant's own URL and key; a secret
    # one only as the name of an environment variable.
    settings = [name for name in INPUTS if name not in ("tenant_url", "api_key")]
    secrets = tuple(name for name in settings if mapping.FIELD_BY_NAME[name].secret)
    assert tenants.EMAIL_SECRETS == secrets == ("email_password", "client_secret")
    assert frozenset(settings) - set(secrets) == tenants.EMAIL_KEYS
    assert frozenset({"email_password_env", "client_secret_env"}) == tenants.EMAIL_ENV_KEYS


# --- the repo program and its Pulumi.yaml ------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# The program's `email:` config key per input: the camelCase name, but the password,
# whose key `email:password` every existing stack has set (renaming it would break them).
PROGRAM_KEYS = {
    **{f.name: _camel(f.name) for f in FIELDS if f.name not in ("tenant_url", "api_key")},
    "email_password": "password",
}


def _program_settings() -> dict[str, str]:
    """``TenantEmailConfigArgs(...)`` keyword -> the `email:` key its value reads, from the
    repo program's source (running it would need an engine)."""
    tree = ast.parse((REPO / "__main__.py").read_text())
    calls = [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "TenantEmailConfigArgs"
    ]
    assert len(calls) == 1
    settings: dict[str, str] = {}
    for keyword in calls[0].keywords:
        assert keyword.arg in INPUTS, keyword.arg
        keys = [
            node.args[0].value for node in ast.walk(keyword.value)
            if isinstance(node, ast.Call) and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
        ]
        if keys and keyword.arg != "tenant_url":  # the tenant URL is qlik:tenantUrl
            settings[keyword.arg] = keys[0]
    return settings


def test_program_reads_each_input_from_its_key() -> None:
    settings = _program_settings()
    assert settings, "no settings found in __main__.py"
    for name, key in settings.items():
        assert key == PROGRAM_KEYS[name], name


def test_pulumi_yaml_declares_the_program_keys_and_their_secrets() -> None:
    declared = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]
    settings = _program_settings()
    assert set(declared) == set(settings.values())
    secret_keys = {key for key, spec in declared.items() if spec.get("secret")}
    assert secret_keys == {
        key for name, key in settings.items() if mapping.FIELD_BY_NAME[name].secret
    }
    kinds = {"string": str, "integer": int, "boolean": bool}
    for name, key in settings.items():
        assert kinds[declared[key]["type"]] is mapping.FIELD_BY_NAME[name].kind, key


# --- copies that must stay copies -------------------------------------------------------------


def test_policy_pack_secret_and_credential_fields_are_the_tables() -> None:
    # The pack runs without this package importable (it is shipped on its own), so it
    # keeps its own names: they are checked here instead.
    from qlik_email_resource.policy_pack import rules

    assert rules._SECRET_FIELDS == mapping.SECRET_INPUTS
    for provider, names in rules._REQUIRED_CREDENTIALS.items():
        assert set(names) <= set(mapping.provider_fields(provider)), provider


def test_fleet_columns_are_outputs() -> None:
    from qlik_email_resource.fleet import audit, program

    assert set(program.EXPORTS) <= set(OUTPUTS)
    assert set(audit.SHOWN_OUTPUTS) <= set(OUTPUTS)
