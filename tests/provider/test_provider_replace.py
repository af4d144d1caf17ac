"""A replace never deletes the configuration it just wrote.

The email configuration is a singleton per tenant, so two resources (the old and
the new of a replace) can point at one configuration. Each test drives the
engine's own call sequence through the real provider host and then asks the
emulator what the tenant holds:

- create-before-replace: Check(new) → Diff → Create(new) → Delete(old);
- delete-before-replace: Check(new) → Diff → Delete(old) → Create(new).
"""

from __future__ import annotations

from typing import Any

from pulumi.runtime.proto import provider_pb2 as P

from qlik_email_resource.emulator import Emulator
from qlik_email_resource.offline.grpc_servers import to_struct
from qlik_email_resource.offline.provider_driver import ProviderDriver
from tests.support.provider import basic_props, calls, plain

GET, PUT, DELETE = "GET", "PUT", "DELETE"


def snapshot(emu: Emulator, tenant: str = "demo") -> dict[str, Any] | None:
    """The tenant's configuration as the emulator holds it, its modification time included,
    to see that nothing rewrote it (None: no configuration)."""
    obj = emu.backend.tenant(tenant)
    assert obj is not None
    with obj.lock:
        cfg = obj.config
        return None if cfg is None else {**cfg.fields, "modificationTime": cfg.modification_time}


def on(emu: Emulator, url: str, tenant: str = "demo", **overrides: Any) -> dict[str, Any]:
    """Props for ``tenant`` reached at ``url``, with that tenant's own key."""
    return basic_props(emu, tenant_url=url, api_key=emu.tenant(tenant).api_key, **overrides)


def as_localhost(url: str) -> str:
    # The same emulator tenant, through another host name: Qlik could not tell either.
    return url.replace("://127.0.0.1:", "://localhost:")


def test_spellings_of_the_same_tenant_url_are_no_change(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    url = qlik_emulator.tenant("demo").url  # https://127.0.0.1:PORT/t/demo
    id_, inputs, outs = driver.check_and_create(on(qlik_emulator, url))
    rest = url.split("://", 1)[1]
    local = as_localhost(url)
    _, _, local_outs = driver.check_and_create(on(qlik_emulator, local))
    qlik_emulator.clear_requests()
    for state, spellings, canonical in (
        (outs, [url + "/", "HTTPS://" + rest, "hTTps://" + rest + "/"], url),
        (local_outs, [local.replace("localhost", "LocalHost") + "/"], local),
    ):
        for spelling in spellings:
            news = driver.check(on(qlik_emulator, spelling), olds=inputs)
            assert not news.failures
            assert plain(news.inputs)["tenant_url"] == canonical
            diff = driver.diff(id_, state, news.inputs)
            assert diff.changes == P.DiffResponse.DIFF_NONE, spelling
            assert list(diff.replaces) == []
    # a state saved before URLs were normalised is no change either
    old_spelling = to_struct({**plain(outs), "__provider": driver.provider,
                              "tenant_url": url.upper().replace("/T/DEMO", "/t/demo") + "/"})
    news = driver.checked(on(qlik_emulator, url))
    assert driver.diff(id_, old_spelling, news).changes == P.DiffResponse.DIFF_NONE
    assert calls(qlik_emulator) == []


def test_another_tenant_replaces_delete_first(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    id_, inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    acme = qlik_emulator.tenant("acme")
    news = driver.check(on(qlik_emulator, acme.url, "acme"), olds=inputs).inputs
    diff = driver.diff(id_, outs, news)
    assert list(diff.replaces) == ["tenant_url"]
    assert diff.deleteBeforeReplace is True
    # an update that stays on the tenant keeps create-before-replace semantics: no replace
    same = driver.check(basic_props(qlik_emulator, server_port=2465), olds=inputs).inputs
    diff = driver.diff(id_, outs, same)
    assert list(diff.replaces) == [] and diff.deleteBeforeReplace is False


def test_create_before_replace_on_the_same_tenant_keeps_the_new_config(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    """127.0.0.1 → localhost is another URL to the engine and the same tenant to Qlik.

    An engine (or an old stack) that creates the new resource first and deletes the
    old one last must not wipe what the new one just wrote.
    """
    url = qlik_emulator.tenant("demo").url
    old_id, old_inputs, old_outs = driver.check_and_create(on(qlik_emulator, url))
    news = driver.check(on(qlik_emulator, as_localhost(url), sender_name="Moved"),
                           olds=old_inputs).inputs
    diff = driver.diff(old_id, old_outs, news)
    assert list(diff.replaces) == ["tenant_url"]
    created = driver.create(news)
    written = snapshot(qlik_emulator)
    assert written is not None and written["senderName"] == "Moved"
    qlik_emulator.clear_requests()
    driver.delete(old_id, old_outs)  # the engine deletes the replaced resource last
    assert snapshot(qlik_emulator) == written, "the old resource's delete wiped the new config"
    assert DELETE not in [method for method, _, _ in calls(qlik_emulator)]
    assert "was left in place" in driver.server.stderr()
    # the new resource still owns it and can delete it
    driver.delete(created.id, created.properties)
    assert snapshot(qlik_emulator) is None


def test_delete_before_replace_on_the_same_tenant_ends_with_the_new_config(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    url = qlik_emulator.tenant("demo").url
    old_id, old_inputs, old_outs = driver.check_and_create(on(qlik_emulator, url))
    news = driver.check(on(qlik_emulator, as_localhost(url), sender_name="Moved"),
                           olds=old_inputs).inputs
    assert driver.diff(old_id, old_outs, news).deleteBeforeReplace is True
    qlik_emulator.clear_requests()
    driver.delete(old_id, old_outs)
    assert calls(qlik_emulator) == [(GET, "/", 200), (DELETE, "/", 204)]
    created = driver.create(news)
    assert created.id == qlik_emulator.tenant("demo").tenant_id
    written = snapshot(qlik_emulator)
    assert written is not None and written["senderName"] == "Moved"


def test_delete_leaves_a_config_changed_since_the_last_write(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    id_, inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    qlik_emulator.set_config("demo", {"serverAddress": "console.example.com", "serverPort": 587,
                                      "securityType": "StartTLS",
                                      "emailAddress": "console@example.com"})
    qlik_emulator.clear_requests()
    driver.delete(id_, outs)
    assert calls(qlik_emulator) == [(GET, "/", 200)]
    kept = snapshot(qlik_emulator)
    assert kept is not None and kept["serverAddress"] == "console.example.com"
    stderr = driver.server.stderr()
    assert "was left in place" in stderr and "changed at" in stderr
    # after a refresh the state knows that configuration: destroy deletes it
    read = driver.read(id_, outs, inputs)
    driver.delete(read.id, read.properties)
    assert snapshot(qlik_emulator) is None


def test_delete_leaves_the_config_of_another_tenant(
    driver: ProviderDriver, qlik_emulator: Emulator
) -> None:
    _id, _inputs, outs = driver.check_and_create(basic_props(qlik_emulator))
    elsewhere = to_struct({**plain(outs), "__provider": driver.provider,
                           "tenant_id": "another-tenant-id"})
    driver.delete("another-tenant-id", elsewhere)
    assert snapshot(qlik_emulator) is not None
    assert "another-tenant-id" in driver.server.stderr()
