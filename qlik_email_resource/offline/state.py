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
import contextlib
import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from qlik_email_resource import secret_wire
from qlik_email_resource.offline.lock import FileLock
from qlik_email_resource.offline.results import OfflineRunError

PASSPHRASE_ENV = "QLIK_OFFLINE_PASSPHRASE"
FORMAT_VERSION = 1
_CHECK_PLAINTEXT = b"qlik-offline-state"
_SECURE = "secure"


def unwrap_all(value: Any) -> Any:
    """Every secret wrapper removed, at any depth (what a dynamic provider receives)."""
    if secret_wire.is_wrapped(value):
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
    if secret_wire.is_wrapped(value):
        return True
    if isinstance(value, Mapping):
        return any(_contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secret(v) for v in value)
    return False


def rewrap(props: Mapping[str, Any], keys: set[str]) -> dict[str, Any]:
    """Mark ``keys`` secret again, as the engine does for a provider's plain outputs."""
    return {
        k: secret_wire.wrap(unwrap_all(v))
        if k in keys and v is not None and not secret_wire.is_wrapped(v)
        else v
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
    # Pending delete: a replaced resource whose delete failed; the next run deletes
    # it again (the engine's ``Delete: true``, see pkg/resource/deploy/step.go).
    delete: bool = False


@dataclass
class StackState:
    project: str
    stack: str
    resources: list[ResourceState] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    # The stack config of the last up (secrets as wrappers): what the engine keeps as
    # its default provider's inputs and configures refresh and destroy with.
    provider_config: dict[str, Any] = field(default_factory=dict)

    def by_urn(self) -> dict[str, ResourceState]:
        return {r.urn: r for r in self.resources}


class StateFile:
    """Load and save one stack's state, never losing or clobbering a state.

    A run holds :meth:`locked` from its load to its save, so another process
    cannot interleave (``save`` takes the lock itself when the caller does not).
    Writes are atomic: temp file, fsync, ``os.replace``, fsync of the directory.
    A file that is not ours, belongs to another stack, or does not decrypt with
    this key is refused with a message and left exactly as it is; so is a file
    that changed on disk since this object loaded it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fernet: Fernet | None = None
        self._encryption: dict[str, Any] | None = None
        self._lock = FileLock(
            self.lock_file,
            subject=f"state file {self.path}",
            advice="wait for that run to finish (if it dies, its lock goes with it), "
            "or give this stack another state file",
        )
        self._lock_depth = 0
        self._loaded = False
        self._loaded_digest: str | None = None  # sha256 of what load() read; None: no file

    @property
    def key_file(self) -> Path:
        return self.path.with_name(self.path.name + ".key")

    @property
    def lock_file(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state's OS lock (re-entrant); fails fast naming the process that has it."""
        if self._lock_depth == 0:
            self._lock.acquire()
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0:
                self._lock.release()

    def load(self, project: str, stack: str) -> StackState:
        raw = self._read()
        self._loaded, self._loaded_digest = True, _digest(raw)
        self._encryption, self._fernet = None, None  # the passphrase may have changed too
        if raw is None:
            return StackState(project, stack)
        doc = self._parse(raw)
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
        encryption = doc.get("encryption")
        if not isinstance(encryption, Mapping):
            raise self._damaged("it has no encryption settings")
        self._encryption = dict(encryption)
        fernet = self._cipher()
        try:
            return StackState(
                project=project,
                stack=stack,
                resources=[
                    ResourceState(
                        urn=r["urn"], type=r["type"], name=r["name"], custom=r["custom"],
                        dynamic=r["dynamic"], id=r.get("id", ""), delete=r.get("delete") is True,
                        inputs=_decrypt(r.get("inputs", {}), fernet),
                        outputs=_decrypt(r.get("outputs", {}), fernet),
                    )
                    for r in doc["resources"]
                ],
                outputs=_decrypt(doc.get("outputs", {}), fernet),
                provider_config=_decrypt(doc.get("provider_config", {}), fernet),
            )
        except InvalidToken:
            raise OfflineRunError(
                f"a secret in state file {self.path} cannot be decrypted with "
                f"{self._key_source()}; restore the key file or passphrase it was written with"
            ) from None
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise self._damaged(f"an entry is malformed ({type(exc).__name__})") from None

    def save(self, state: StackState, tool: str) -> None:
        with self.locked():
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
                        "dynamic": r.dynamic, "id": r.id, **({"delete": True} if r.delete else {}),
                        "inputs": _encrypt(r.inputs, fernet),
                        "outputs": _encrypt(r.outputs, fernet),
                    }
                    for r in state.resources
                ],
                "outputs": _encrypt(state.outputs, fernet),
                "provider_config": _encrypt(state.provider_config, fernet),
            }
            data = json.dumps(doc, indent=2, sort_keys=True).encode()
            if self._loaded and _digest(self._read()) != self._loaded_digest:
                raise self._conflict(data)
            _atomic_write(self.path, data)
            self._loaded, self._loaded_digest = True, _digest(data)

    # -- reading ----------------------------------------------------------------------

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise OfflineRunError(
                f"cannot read state file {self.path} ({exc.strerror}); "
                "check the path and its permissions"
            ) from None

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise self._damaged(f"it is not valid JSON ({exc})") from None
        if isinstance(doc, dict) and doc.keys() >= _OWN_KEYS and isinstance(
            doc["resources"], list
        ):
            return doc
        looks_like = (
            " (it looks like a Pulumi CLI checkpoint or `pulumi stack export`)"
            if isinstance(doc, dict) and "deployment" in doc
            else ""
        )
        raise OfflineRunError(
            f"{self.path} is not a state file of the offline runner{looks_like}; it was left "
            "as it is: pass another state file, or move this one away"
        )

    def _damaged(self, what: str) -> OfflineRunError:
        return OfflineRunError(
            f"state file {self.path} is damaged: {what}; it was left as it is: restore it "
            "from a backup, or delete it to start over"
        )

    def _conflict(self, data: bytes) -> OfflineRunError:
        # Someone wrote the state without the lock (or deleted the lock file) since
        # we read it. Overwriting would lose their run, dropping ours would lose
        # ours: keep ours beside it and let a human merge.
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        kept = self.path.with_name(f"{self.path.stem}.conflict-{stamp}-{os.getpid()}.json")
        _atomic_write(kept, data)
        return OfflineRunError(
            f"state file {self.path} changed since this run loaded it (another run wrote it "
            f"without holding {self.lock_file.name}); it was not overwritten. This run's state "
            f"is in {kept}: keep the right one as {self.path.name} and run again"
        )

    # -- keys ---------------------------------------------------------------------------

    def _cipher(self) -> Fernet:
        if self._fernet is None:
            if self._encryption is None:
                self._encryption = self._new_encryption()
            self._fernet = self._open(self._encryption)
        return self._fernet

    def _new_encryption(self) -> dict[str, Any]:
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
            self._create_key_file()
        fernet = self._read_key_file(self.key_file)
        # The check tells a wrong key from a right one even in a state without secrets.
        return {
            "method": "keyfile",
            "key_file": self.key_file.name,
            "check": fernet.encrypt(_CHECK_PLAINTEXT).decode(),
        }

    def _create_key_file(self) -> None:
        # link() publishes the key whole or not at all and fails if the file exists:
        # a run that loses that race uses the winner's key instead of crashing.
        parent = self.key_file.parent
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.key_file.name + ".", suffix=".tmp", dir=parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, self.key_file)
        except FileExistsError:
            pass
        except OSError as exc:
            raise OfflineRunError(
                f"cannot create the key file {self.key_file} ({exc.strerror}); keep the state "
                f"on a local file system, or set {PASSPHRASE_ENV} to encrypt with a passphrase"
            ) from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        _fsync_dir(parent)

    def _open(self, encryption: Mapping[str, Any]) -> Fernet:
        if encryption.get("method") == "passphrase":
            passphrase = os.environ.get(PASSPHRASE_ENV)
            if not passphrase:
                raise OfflineRunError(
                    f"state file {self.path} is encrypted with a passphrase; "
                    f"set {PASSPHRASE_ENV} to the passphrase used when it was created"
                )
            try:
                fernet = Fernet(_derive(passphrase, str(encryption["salt"])))
                fernet.decrypt(str(encryption["check"]).encode())
            except InvalidToken:
                raise OfflineRunError(
                    f"{PASSPHRASE_ENV} does not match the passphrase of state file {self.path}; "
                    "set the passphrase used when it was created"
                ) from None
            except (KeyError, ValueError, TypeError):
                raise self._damaged("its passphrase settings are malformed") from None
            return fernet
        name = encryption.get("key_file", self.key_file.name)
        if not isinstance(name, str) or not name or Path(name).name != name:
            # Only a name beside the state: a path in a foreign file must not pick our key.
            raise self._damaged("its key_file entry is not a file name")
        key_file = self.path.with_name(name)
        fernet = self._read_key_file(key_file)
        check = encryption.get("check")
        if check is not None:  # files written before the check existed have none
            try:
                fernet.decrypt(str(check).encode())
            except InvalidToken:
                raise OfflineRunError(
                    f"the key file {key_file} is not the key that state file {self.path} was "
                    "written with; restore the original key file (nothing was changed)"
                ) from None
        return fernet

    def _read_key_file(self, key_file: Path) -> Fernet:
        try:
            return Fernet(key_file.read_bytes().strip())
        except (OSError, ValueError):
            raise OfflineRunError(
                f"cannot read the key file {key_file} that encrypts secrets in {self.path}; "
                "restore it (or delete the state file to start over)"
            ) from None

    def _key_source(self) -> str:
        if self._encryption and self._encryption.get("method") == "passphrase":
            return f"the passphrase in {PASSPHRASE_ENV}"
        name = (self._encryption or {}).get("key_file", self.key_file.name)
        return f"the key file {self.path.with_name(str(name))}"


_OWN_KEYS = frozenset({"version", "project", "stack", "resources"})


def _digest(raw: bytes | None) -> str | None:
    return hashlib.sha256(raw).hexdigest() if raw is not None else None


def _atomic_write(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never a part; a crash leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the data itself is synced
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=64)
def _derive(passphrase: str, salt: str) -> bytes:
    kdf = Scrypt(salt=base64.b64decode(salt), length=32, n=2**14, r=8, p=1)
    return base64.urlsafe_b64encode(kdf.derive(passphrase.encode()))


def _encrypt(value: Any, fernet: Fernet) -> Any:
    if secret_wire.is_wrapped(value):
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
            # InvalidToken goes to load(), which names the file and the key.
            return secret_wire.wrap(json.loads(fernet.decrypt(value[_SECURE].encode())))
        return {k: _decrypt(v, fernet) for k, v in value.items()}
    if isinstance(value, list):
        return [_decrypt(v, fernet) for v in value]
    return value
