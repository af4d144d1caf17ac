"""Every lifecycle path through Pulumi's real provider server, counted in the emulator's log."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from pulumi.runtime.proto import provider_pb2 as P

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline.provider_driver import ProviderDriver
from tests.support.provider import basic_props, calls, is_secret, plain

GET, PUT, PATCH, DELETE = "GET", "PUT", "PATCH", "DELETE"


def live(emu: Emulator, tenant: str = "demo") -> dict[str, Any]:
    info = emu.tenant(tenant)
    response = requests.get(
        f"{info.url}/api/v1/transports/email-config",
        headers={"Authorization": f"Bearer {info.api_key}"},
        verify=emu.ca_file,
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def test_check_and_diff_make_no_http_calls(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    id_, inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    qlik_emulator.clear_requests()
    news = driver.check(basic_props(qlik_emulator, server_port=2465), olds=inputs)
    diff = driver.diff(id_, outs, news.inputs)
    assert diff.changes == P.DiffResponse.DIFF_SOME
    assert list(diff.diffs) == [] or "server_port" in diff.diffs
    assert calls(qlik_emulator) == []


def test_create_on_empty_tenant(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    props = basic_props(qlik_emulator, sender_name="Qlik Reports")
    id_, _, outs = driver.check_and_create(props)
    assert calls(qlik_emulator) == [(GET, "/", 200), (PUT, "/", 204), (GET, "/", 200)]
    state = plain(outs)
    assert id_ == state["tenant_id"] == qlik_emulator.tenant("demo").tenant_id
    assert state["server_port"] == 465
    assert state["security_type"] == "SSL/TLS"
    assert state["sender_name"] == "Qlik Reports"
    assert state["password_exists"] is True
    assert state["is_valid"] is True
    assert state["error_code"] == "OK"
    assert is_secret(outs, "email_password")
    answer = live(qlik_emulator)
    assert answer["serverAddress"] == props["server_address"]
    assert "emailPassword" not in str(answer)


def test_create_adopts_existing_config(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    qlik_emulator.set_config(
        "demo",
        {"serverAddress": "old.example.com", "serverPort": 25, "securityType": "none",
         "emailAddress": "old@example.com"},
    )
    _, _, outs = driver.check_and_create(basic_props(qlik_emulator))
    assert calls(qlik_emulator)[-3:] == [(GET, "/", 200), (PUT, "/", 204), (GET, "/", 200)]
    assert plain(outs)["server_address"] == "email-smtp.eu-west-2.amazonaws.com"
    assert live(qlik_emulator)["securityType"] == "SSL/TLS"
    assert "adopting the existing email configuration" in driver.server.stderr()


PATCHABLE = [
    ("server_address", "smtp.mail.example.org", "/serverAddress"),
    ("server_port", 2465, "/serverPort"),
    ("security_type", "StartTLS", "/securityType"),
    ("email_address", "reports@example.com", "/emailAddress"),
]


@pytest.mark.parametrize(("field", "value", "qlik_path"), PATCHABLE)
def test_update_one_field_is_one_patch_and_one_get(
    driver: ProviderDriver, qlik_emulator: Emulator, field: str, value: Any, qlik_path: str
) -> None:
    id_, inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    news = driver.check(basic_props(qlik_emulator, **{field: value}), olds=inputs).inputs
    diff = driver.diff(id_, outs, news)
    assert diff.changes == P.DiffResponse.DIFF_SOME
    assert list(diff.replaces) == []
    qlik_emulator.clear_requests()
    updated = driver.update(id_, outs, news)
    assert calls(qlik_emulator) == [(PATCH, "/", 204), (GET, "/", 200)]
    assert plain(updated.properties)[field] == value
    assert live(qlik_emulator)[qlik_path[1:]] == value


def test_patch_deprecation_is_logged_once_per_process(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    # The emulator marks PATCH answers deprecated (Deprecation/Sunset headers).
    id_, inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    for port in (587, 2465):
        news = driver.check(basic_props(qlik_emulator, server_port=port), olds=inputs).inputs
        outs = driver.update(id_, outs, news).properties
        inputs = news
    assert driver.server.stderr().count("as deprecated") == 1
    assert "set qlik:writeMethod=put" in driver.server.stderr()


def test_update_username_and_password_patches_both(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    qlik_emulator.add_smtp_user("reports-bot", "n3w-Passw0rd-xyz")
    id_, _inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    news = driver.checked(
        basic_props(qlik_emulator, username="reports-bot", email_password="n3w-Passw0rd-xyz",
                    verify_connection=True)
    )
    qlik_emulator.clear_requests()
    updated = driver.update(id_, outs, news)
    # verify_connection proves the tenant now logs in with the new credentials
    assert calls(qlik_emulator) == [
        (PATCH, "/", 204), (GET, "/", 200), ("POST", "/actions/verify-connection", 200)
    ]
    assert plain(updated.properties)["username"] == "reports-bot"


def test_sender_name_needs_put(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    id_, _inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    news = driver.checked(basic_props(qlik_emulator, sender_name="Qlik Alerts"))
    qlik_emulator.clear_requests()
    updated = driver.update(id_, outs, news)
    assert calls(qlik_emulator) == [(PUT, "/", 204), (GET, "/", 200)]
    assert plain(updated.properties)["sender_name"] == "Qlik Alerts"


def test_password_rotation(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    # a user of its own: the emulator keeps SMTP users across tests
    qlik_emulator.add_smtp_user("rotating-user", "first-Secret-41")
    creds = {"username": "rotating-user"}
    id_, _inputs, outs = driver.check_and_create(
        basic_props(qlik_emulator, email_password="first-Secret-41", **creds)
    )
    qlik_emulator.add_smtp_user("rotating-user", "rotated-Secret-42")
    news = driver.checked(
        basic_props(qlik_emulator, email_password="rotated-Secret-42", verify_connection=True,
                    **creds)
    )
    diff = driver.diff(id_, outs, news)
    assert diff.changes == P.DiffResponse.DIFF_SOME
    qlik_emulator.clear_requests()
    updated = driver.update(id_, outs, news)
    assert calls(qlik_emulator) == [
        (PATCH, "/", 204), (GET, "/", 200), ("POST", "/actions/verify-connection", 200)
    ]
    assert plain(updated.properties)["email_password"] == "rotated-Secret-42"
    assert is_secret(updated.properties, "email_password")


def test_same_inputs_diff_to_nothing(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    id_, _inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    news = driver.checked(basic_props(qlik_emulator))
    assert driver.diff(id_, outs, news).changes == P.DiffResponse.DIFF_NONE


def test_read_shows_console_drift(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    props = basic_props(qlik_emulator)
    id_, inputs, outs = driver.check_and_create(props)
    qlik_emulator.set_config("demo", {
        "serverAddress": props["server_address"], "serverPort": 587, "securityType": "StartTLS",
        "emailAddress": props["email_address"], "username": props["username"],
        "emailPassword": props["email_password"],
    })
    qlik_emulator.clear_requests()
    read = driver.read(id_, outs, inputs)
    assert calls(qlik_emulator) == [(GET, "/", 200)]
    assert read.id == id_
    state, rebuilt = plain(read.properties), plain(read.inputs)
    assert (state["server_port"], state["security_type"]) == (587, "StartTLS")
    assert (rebuilt["server_port"], rebuilt["security_type"]) == (587, "StartTLS")
    assert rebuilt["email_password"] == props["email_password"]
    # the next `up` brings the tenant back to the declared state
    news = driver.checked(props)
    assert driver.diff(id_, read.properties, news).changes == P.DiffResponse.DIFF_SOME
    qlik_emulator.clear_requests()
    driver.update(id_, read.properties, news)
    assert calls(qlik_emulator) == [(PATCH, "/", 204), (GET, "/", 200)]
    assert live(qlik_emulator)["serverPort"] == 465


def test_read_shows_removed_password(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    props = basic_props(qlik_emulator)
    id_, inputs, outs = driver.check_and_create(props)
    qlik_emulator.set_config("demo", {
        k: v for k, v in {
            "serverAddress": props["server_address"], "serverPort": 465,
            "securityType": "SSL/TLS", "emailAddress": props["email_address"],
            "username": props["username"],
        }.items()
    })
    read = driver.read(id_, outs, inputs)
    state, rebuilt = plain(read.properties), plain(read.inputs)
    assert state["password_exists"] is False
    assert "email_password" not in rebuilt
    assert state.get("email_password") is None
    news = driver.checked(props)
    diff = driver.diff(id_, read.properties, news)
    assert diff.changes == P.DiffResponse.DIFF_SOME
    qlik_emulator.clear_requests()
    updated = driver.update(id_, read.properties, news)
    assert calls(qlik_emulator) == [(PATCH, "/", 204), (GET, "/", 200)]
    assert plain(updated.properties)["password_exists"] is True


def test_read_of_config_deleted_outside_pulumi(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    id_, inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    driver.delete(id_, outs)
    read = driver.read(id_, outs, inputs)
    assert read.id == ""


def test_delete_then_delete_missing(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    id_, _inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    qlik_emulator.clear_requests()
    driver.delete(id_, outs)
    # GET first: only the configuration this resource wrote is deleted
    assert calls(qlik_emulator) == [(GET, "/", 200), (DELETE, "/", 204)]
    assert live(qlik_emulator)["isValid"] is False
    qlik_emulator.clear_requests()
    driver.delete(id_, outs)  # already gone: no error, nothing to delete
    assert calls(qlik_emulator) == [(GET, "/", 200)]


def test_changed_tenant_replaces(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    acme = qlik_emulator.tenant("acme")
    id_, _inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    news = driver.checked(
        basic_props(qlik_emulator, tenant_url=acme.url, api_key=acme.api_key)
    )
    diff = driver.diff(id_, outs, news)
    assert diff.changes == P.DiffResponse.DIFF_SOME
    assert list(diff.replaces) == ["tenant_url"]
    # naming the stack's own tenant explicitly is not a move
    demo_url = qlik_emulator.tenant("demo").url
    same = driver.checked(basic_props(qlik_emulator, tenant_url=demo_url))
    assert list(driver.diff(id_, outs, same).replaces) == []


def test_per_resource_tenant_and_key(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    acme = qlik_emulator.tenant("acme")
    id_, _inputs, outs = driver.check_and_create(
        basic_props(qlik_emulator, tenant_url=acme.url, api_key=acme.api_key)
    )
    assert id_ == acme.tenant_id
    assert calls(qlik_emulator, "acme") == [(GET, "/", 200), (PUT, "/", 204), (GET, "/", 200)]
    assert calls(qlik_emulator, "demo") == []
    assert is_secret(outs, "api_key")


def test_patch_removed_falls_back_to_put_and_remembers(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    # tenant acme, per-resource credentials: the "PATCH is gone" memory is per tenant
    acme = qlik_emulator.tenant("acme")
    creds = {"tenant_url": acme.url, "api_key": acme.api_key}
    id_, _inputs, outs = driver.check_and_create(basic_props(qlik_emulator, **creds))
    qlik_emulator.add_fault("acme", "patch_removed", status=410)
    news = driver.checked(basic_props(qlik_emulator, server_port=2465, **creds))
    qlik_emulator.clear_requests()
    updated = driver.update(id_, outs, news)
    assert calls(qlik_emulator, "acme") == [(PATCH, "/", 410), (PUT, "/", 204), (GET, "/", 200)]
    assert plain(updated.properties)["server_port"] == 2465
    news2 = driver.checked(basic_props(qlik_emulator, server_port=465, **creds))
    qlik_emulator.clear_requests()
    driver.update(id_, updated.properties, news2)
    assert calls(qlik_emulator, "acme") == [(PUT, "/", 204), (GET, "/", 200)]
    assert "switching to PUT" in driver.server.stderr()


def test_microsoft365_create_and_switch(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    id_, _inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    m365 = {
        "service_provider": "Microsoft365",
        "client_id": "12345678-1234-1234-1234-123456789012",
        "client_secret": "m365-Client-Secret-value",
        "provider_tenant_id": "87654321-4321-4321-4321-210987654321",
        "email_address": "alerts@example.com",
    }
    news = driver.checked(m365)
    assert driver.diff(id_, outs, news).changes == P.DiffResponse.DIFF_SOME
    qlik_emulator.clear_requests()
    updated = driver.update(id_, outs, news)
    assert calls(qlik_emulator) == [(PUT, "/", 204), (GET, "/", 200)]
    state = plain(updated.properties)
    assert state["service_provider"] == "Microsoft365"
    assert state["client_id"] == m365["client_id"]
    assert state["provider_tenant_id"] == m365["provider_tenant_id"]
    assert state.get("server_address") is None
    assert is_secret(updated.properties, "client_secret")
    answer = live(qlik_emulator)
    assert answer["serviceProvider"] == "Microsoft365"
    assert m365["client_secret"] not in str(answer)
    # rotating the client secret is a PUT (PATCH knows BasicAuth paths only)
    news2 = driver.checked({**m365, "client_secret": "rotated-m365-secret"})
    qlik_emulator.clear_requests()
    driver.update(id_, updated.properties, news2)
    assert calls(qlik_emulator) == [(PUT, "/", 204), (GET, "/", 200)]


def test_test_email_is_delivered(driver: ProviderDriver, qlik_emulator: Emulator) -> None:
    driver.check_and_create(basic_props(qlik_emulator, test_email_recipient="admin@example.com",
                             verify_connection=True))
    assert calls(qlik_emulator)[-2:] == [
        ("POST", "/actions/verify-connection", 200), ("POST", "/actions/send-test-email", 200)
    ]
    mail = qlik_emulator.mailbox()
    assert [m["to"] for m in mail] in (["admin@example.com"], [["admin@example.com"]])
