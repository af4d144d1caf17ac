"""The offline runner's stack state: a JSON file whose secrets are encrypted.

In memory a secret is Pulumi's own wire wrapper (``{sig: secret-sig, "value": v}``,
see ``pulumi.runtime.rpc``), so the same value can go to the mocks and the servers
unchanged. On disk every wrapper becomes ``{"secure": "<Fernet token>"}``, the shape
Pulumi's passphrase secrets provider uses. The key comes from the passphrase in
``QLIK_OFFLINE_PASSPHRASE`` (scrypt, salt kept in the file, like ``encryptionsalt``)
or, without it, from a 0600 key file beside the state.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pulumi.runtime import rpc

from qlik_email_resource.testing.results import OfflineRunError

PASSPHRASE_ENV = "QLIK_OFFLINE_PASSPHRASE"
FORMAT_VERSION = 1
_CHECK_PLAINTEXT = b"qlik-offline-state"
_SECURE = "secure"


def wrap_secret(value: Any) -> dict[str, Any]:
    return {rpc._special_sig_key: rpc._special_secret_sig, "value": value}


def is_secret(value: Any) -> bool:
    return bool(rpc.is_rpc_secret(value))


def unwrap_all(value: Any) -> Any:
    """Every secret wrapper removed, at any depth (what a dynamic provider receives)."""
    if is_secret(value):
        return unwrap_all(value["value"])
    if isinstance(value, Mapping):
        return {k: unwrap_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_all(v) for v in value]
    return value


def secret_keys(props: Mapping[str, Any]) -> set[str]:
    """Top-level keys whose value is, or contains, a secret."""
    return {k for k, v in props.items() if _contains_secret(v)}


def _contains_secret(value: Any) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, Mapping):
        return any(_contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secret(v) for v in value)
    return False


def rewrap(props: Mapping[str, Any], keys: set[str]) -> dict[str, Any]:
    """Mark ``keys`` secret again, as the engine does for a provider's plain outputs."""
    return {
        k: wrap_secret(unwrap_all(v)) if k in keys and v is not None and not is_secret(v) else v
        for k, v in props.items()
    }


@dataclass
class ResourceState:
    urn: str
    type: str
    name: str
    custom: bool
    dynamic: bool
    id: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class StackState:
    project: str
    stack: str
    resources: list[ResourceState] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def by_urn(self) -> dict[str, ResourceState]:
        return {r.urn: r for r in self.resources}


class StateFile:
    """Load and save one stack's state; writes are atomic (temp file + rename)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fernet: Fernet | None = None
        self._encryption: dict[str, str] | None = None

    @property
    def key_file(self) -> Path:
        return self.path.with_name(self.path.name + ".key")

    def load(self, project: str, stack: str) -> StackState:
        if not self.path.exists():
            return StackState(project, stack)
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise OfflineRunError(
                f"cannot read state file {self.path}: {exc}; restore it or delete it to start over"
            ) from None
        if doc.get("version") != FORMAT_VERSION:
            raise OfflineRunError(
                f"state file {self.path} has format version {doc.get('version')!r}, "
                f"this runner reads version {FORMAT_VERSION}; use a new state file"
            )
        if (doc.get("project"), doc.get("stack")) != (project, stack):
            raise OfflineRunError(
                f"state file {self.path} belongs to {doc.get('project')}/{doc.get('stack')}, "
                f"not {project}/{stack}; give each stack its own state file"
            )
        self._encryption = doc.get("encryption")
        self._fernet = None  # the passphrase may have changed since the last load
        fernet = self._cipher()
        return StackState(
            project=project,
            stack=stack,
            resources=[
                ResourceState(
                    urn=r["urn"], type=r["type"], name=r["name"], custom=r["custom"],
                    dynamic=r["dynamic"], id=r.get("id", ""),
                    inputs=_decrypt(r.get("inputs", {}), fernet),
                    outputs=_decrypt(r.get("outputs", {}), fernet),
                )
                for r in doc.get("resources", [])
            ],
            outputs=_decrypt(doc.get("outputs", {}), fernet),
        )

    def save(self, state: StackState, tool: str) -> None:
        fernet = self._cipher()
        doc = {
            "version": FORMAT_VERSION,
            "tool": tool,
            "project": state.project,
            "stack": state.stack,
            "encryption": self._encryption,
            "resources": [
                {
                    "urn": r.urn, "type": r.type, "name": r.name, "custom": r.custom,
                    "dynamic": r.dynamic, "id": r.id,
                    "inputs": _encrypt(r.inputs, fernet),
                    "outputs": _encrypt(r.outputs, fernet),
                }
                for r in state.resources
            ],
            "outputs": _encrypt(state.outputs, fernet),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _cipher(self) -> Fernet:
        if self._fernet is None:
            if self._encryption is None:
                self._encryption = self._new_encryption()
            self._fernet = self._open(self._encryption)
        return self._fernet

    def _new_encryption(self) -> dict[str, str]:
        passphrase = os.environ.get(PASSPHRASE_ENV)
        if passphrase:
            salt = base64.b64encode(os.urandom(16)).decode()
            fernet = Fernet(_derive(passphrase, salt))
            return {
                "method": "passphrase",
                "salt": salt,
                "check": fernet.encrypt(_CHECK_PLAINTEXT).decode(),
            }
        if not self.key_file.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
        return {"method": "keyfile", "key_file": self.key_file.name}

    def _open(self, encryption: Mapping[str, str]) -> Fernet:
        if encryption.get("method") == "passphrase":
            passphrase = os.environ.get(PASSPHRASE_ENV)
            if not passphrase:
                raise OfflineRunError(
                    f"state file {self.path} is encrypted with a passphrase; "
                    f"set {PASSPHRASE_ENV} to the passphrase used when it was created"
                )
            fernet = Fernet(_derive(passphrase, encryption["salt"]))
            try:
                fernet.decrypt(encryption["check"].encode())
            except InvalidToken:
                raise OfflineRunError(
                    f"{PASSPHRASE_ENV} does not match the passphrase of state file {self.path}; "
                    "set the passphrase used when it was created"
                ) from None
            return fernet
        key_file = self.path.with_name(encryption.get("key_file", self.key_file.name))
        try:
            return Fernet(key_file.read_bytes().strip())
        except (OSError, ValueError):
            raise OfflineRunError(
                f"cannot read the key file {key_file} that encrypts secrets in {self.path}; "
                "restore it (or delete the state file to start over)"
            ) from None


@functools.lru_cache(maxsize=64)
def _derive(passphrase: str, salt: str) -> bytes:
    kdf = Scrypt(salt=base64.b64decode(salt), length=32, n=2**14, r=8, p=1)
    return base64.urlsafe_b64encode(kdf.derive(passphrase.encode()))


def _encrypt(value: Any, fernet: Fernet) -> Any:
    if is_secret(value):
        plain = json.dumps(unwrap_all(value)).encode()
        return {_SECURE: fernet.encrypt(plain).decode()}
    if isinstance(value, Mapping):
        return {k: _encrypt(v, fernet) for k, v in value.items()}
    if isinstance(value, list):
        return [_encrypt(v, fernet) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # a protobuf Struct turned every int into a float
    return value


def _decrypt(value: Any, fernet: Fernet) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {_SECURE}:
            try:
                return wrap_secret(json.loads(fernet.decrypt(value[_SECURE].encode())))
            except InvalidToken:
                raise OfflineRunError(
                    "a secret in the state file cannot be decrypted with this key; "
                    "restore the key file or passphrase it was written with"
                ) from None
        return {k: _decrypt(v, fernet) for k, v in value.items()}
    if isinstance(value, list):
        return [_decrypt(v, fernet) for v in value]
    return value
