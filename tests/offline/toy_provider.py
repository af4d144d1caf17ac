"""A throw-away dynamic provider for the offline runner's own tests.

Records live in a JSON file named by ``TOY_STORE`` (read in the provider
process at call time, like real credentials), and every write is logged there
so tests can tell a no-op from an update.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

FIELDS = ("port", "security", "password")
# The toy stacks' password: every test scans its output and state for it.
TOY_PASSWORD = "toy-pw-9d2e61a0"


def store_path() -> Path:
    return Path(os.environ["TOY_STORE"])


def load_store() -> dict[str, Any]:
    path = store_path()
    return json.loads(path.read_text()) if path.exists() else {"records": {}, "writes": []}


def save_store(store: dict[str, Any]) -> None:
    store_path().write_text(json.dumps(store))


@contextlib.contextmanager
def locked_store() -> Iterator[dict[str, Any]]:
    """The store, locked for a read-modify-write: the host serves calls in parallel."""
    with open(str(store_path()) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        store = load_store()
        yield store
        save_store(store)


def _record(props: dict[str, Any]) -> dict[str, Any]:
    return {k: props.get(k) for k in FIELDS}


class ToyProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {k: v for k, v in news.items()}
        failures = []
        try:
            inputs["port"] = int(news.get("port"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            failures.append(CheckFailure("port", "port must be an integer"))
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("name", *FIELDS) if olds.get(k) != news.get(k)]
        replaces = ["name"] if "name" in changed else []
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        with locked_store() as store:
            store["records"][props["name"]] = _record(props)
            store["writes"].append(["create", props["name"]])
        return CreateResult(props["name"], {**_plain(props), "serial": len(store["writes"])})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        record = load_store()["records"].get(id_)
        if record is None:
            return ReadResult("", {})
        return ReadResult(id_, {**_plain(props), **record})

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        with locked_store() as store:
            store["records"][id_] = _record(news)
            store["writes"].append(["update", id_])
        return UpdateResult({**_plain(news), "serial": len(store["writes"])})

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        with locked_store() as store:
            store["records"].pop(id_, None)
            store["writes"].append(["delete", id_])


def _plain(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != "__provider"}


class Thing(Resource, module="toy", name="Thing"):
    port: pulumi.Output[int]
    serial: pulumi.Output[int]

    def __init__(self, name: str, props: dict[str, Any], opts: Any = None) -> None:
        super().__init__(ToyProvider(), name, {**props, "serial": None}, opts)


def toy_program() -> None:
    """Config: toy:things (comma list), toy:port, toy:security, toy:password (secret)."""
    cfg = pulumi.Config("toy")
    suffix = cfg.get("suffix") or ""
    password = cfg.require_secret("password")
    for name in (cfg.get("things") or "alpha").split(","):
        if not name:
            continue
        thing = Thing(
            name,
            {
                "name": name + suffix,
                "port": cfg.get("port") or "465",
                "security": cfg.get("security") or "tls",
                "password": password,
            },
        )
        pulumi.export(f"{name}_port", thing.port)
        pulumi.export(f"{name}_serial", thing.serial)
    pulumi.export("password", password)
