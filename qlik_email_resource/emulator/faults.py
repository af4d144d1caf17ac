"""Fault injection: what an injected fault does to a tenant's next API calls.

Each fault kind is one class below, registered with ``@fault_kind``: the parameters it
takes, how they are checked, which requests it matches and what it does to them. Adding a
kind is adding one class here (and its line in docs/emulator.md, "Faults").

Parameters are checked when a fault is added: a bad value found later, while answering,
would break every request of the tenant instead of the one call that added it.

The layer decides, the tenant API (``http.py``) acts: :meth:`Faults.take` folds every fault
that applies to a request into one :class:`Action` (sleep, drop, or answer a status), and
the API carries that out in front of its handlers.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .wire import EMAIL_CONFIG

# The methods the API documents (HEAD is GET without a body): what ``methods`` may name.
FAULT_METHODS = ("GET", "HEAD", "PUT", "PATCH", "DELETE", "POST")
MAX_COUNT = 1_000_000
MAX_RETRY_AFTER = 3600
MAX_LATENCY = 600.0


class FaultError(ValueError):
    """A fault description that cannot be used; the message says what to fix."""


@dataclass
class Action:
    """What the fault layer wants done with one request."""

    sleep: float = 0.0
    drop: bool = False
    status: int | None = None
    retry_after: int | None = None

    @property
    def decided(self) -> bool:
        """Whether a fault already chose the answer (a status or a drop): the first wins."""
        return self.drop or self.status is not None


class Fault(ABC):
    """One injected fault of one tenant; a subclass per kind, registered by ``@fault_kind``."""

    kind: ClassVar[str]
    # Every parameter the kind takes besides tenant and kind, in the order error texts list
    # them; anything else is refused.
    takes: ClassVar[tuple[str, ...]]
    # How many matching calls it answers when no count is given; None: every one, for ever.
    default_count: ClassVar[int | None] = None

    def __init__(self, tenant: str, params: dict[str, Any], remaining: int | None):
        self.tenant = tenant
        self.params = params
        self.remaining = remaining

    @classmethod
    def create(cls, tenant: str, params: Mapping[str, Any]) -> Fault:
        """A fault of this kind from the caller's parameters, every one checked."""
        unknown = sorted(set(params) - set(cls.takes))
        if unknown:
            raise FaultError(f"a {cls.kind} fault takes no {', '.join(unknown)}: its "
                             f"parameters are {', '.join(cls.takes)}")
        count = params.get("count")
        if count is not None:
            count = _integer("count", count, 1, MAX_COUNT)
        checked = cls.checked_params(params)
        if "methods" in params:
            checked["methods"] = _methods(params["methods"])
        return cls(tenant, checked, count or cls.default_count)

    @classmethod
    def checked_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """The kind's own parameters, checked and normalised (count and methods are shared
        and checked by :meth:`create`)."""
        return {}

    def matches(self, method: str, path: str) -> bool:
        methods = self.params.get("methods")
        # HEAD is GET without a body, so a GET fault answers it too.
        return not methods or method in methods or (method == "HEAD" and "GET" in methods)

    @abstractmethod
    def apply(self, action: Action) -> bool:
        """Add this fault's effect to the request's action; False when it had none (an
        earlier fault already decided the answer), so it is not used up."""

    def describe(self) -> dict[str, Any]:
        """What the admin API and ``emu.add_fault``/``list_faults`` show."""
        return {"tenant": self.tenant, "kind": self.kind, "count": self.remaining,
                **self.params}


FAULT_KINDS: dict[str, type[Fault]] = {}
_Kind = TypeVar("_Kind", bound=type[Fault])


def fault_kind(cls: _Kind) -> _Kind:
    """Register a fault kind under its ``kind`` name (the order of registration is the
    order error texts list the kinds in)."""
    FAULT_KINDS[cls.kind] = cls
    return cls


@fault_kind
class StatusFault(Fault):
    """The next ``count`` matching calls answer ``status`` in Qlik's error shape."""

    kind = "status"
    takes = ("status", "count", "retry_after", "methods")
    default_count = 1

    @classmethod
    def checked_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        checked = {"status": _integer("status", params.get("status"), 400, 599)}
        if params.get("retry_after") is not None:
            checked["retry_after"] = _integer("retry_after", params["retry_after"], 0,
                                              MAX_RETRY_AFTER)
        return checked

    def apply(self, action: Action) -> bool:
        if action.decided:
            return False
        action.status = self.params["status"]
        action.retry_after = self.params.get("retry_after")
        return True


@fault_kind
class LatencyFault(Fault):
    """Matching calls wait ``seconds`` before they are answered (every call if no count)."""

    kind = "latency"
    takes = ("seconds", "count", "methods")

    @classmethod
    def checked_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        seconds = params.get("seconds")
        if (isinstance(seconds, bool) or not isinstance(seconds, int | float)
                or not 0 <= seconds <= MAX_LATENCY):
            raise FaultError(f"seconds must be a number from 0 to {MAX_LATENCY:g}, "
                             f"got {_shown(seconds)}")
        return {"seconds": seconds}

    def apply(self, action: Action) -> bool:
        # Latency adds up and still lets the request through to whatever answers it.
        action.sleep += float(self.params["seconds"])
        return True


@fault_kind
class DropFault(Fault):
    """The next ``count`` matching calls get their connection closed, no answer."""

    kind = "drop"
    takes = ("count", "methods")
    default_count = 1

    def apply(self, action: Action) -> bool:
        if action.decided:
            return False
        action.drop = True
        return True


@fault_kind
class PatchRemovedFault(Fault):
    """PATCH on the email config answers ``status`` from now on, as after Qlik's sunset."""

    kind = "patch_removed"
    takes = ("status",)

    @classmethod
    def checked_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        status = params.get("status", 405)
        if isinstance(status, bool) or status not in (404, 405, 410):
            raise FaultError(f"status of a patch_removed fault must be 405, 410 or 404, "
                             f"got {_shown(status)}")
        return {"status": status}

    def matches(self, method: str, path: str) -> bool:
        return method == "PATCH" and path == EMAIL_CONFIG

    def apply(self, action: Action) -> bool:
        if action.decided:
            return False
        action.status = self.params["status"]
        action.retry_after = None
        return True


def new_fault(tenant: str, kind: Any, params: Mapping[str, Any]) -> Fault:
    """A fault of a registered kind, its parameters checked; else :class:`FaultError`."""
    fault_class = FAULT_KINDS.get(kind) if isinstance(kind, str) else None
    if fault_class is None:
        raise FaultError(f"{kinds_expected()}, got {_shown(kind)}")
    return fault_class.create(tenant, params)


def kinds_expected() -> str:
    """The error text for a missing or unknown kind."""
    return f"kind must be one of {', '.join(FAULT_KINDS)}"


class Faults:
    """The faults injected so far, every tenant's, in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, tenant: str, kind: str, **params: Any) -> dict[str, Any]:
        fault = new_fault(tenant, kind, params)
        with self._lock:
            self._faults.append(fault)
        return fault.describe()

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.describe() for fault in self._faults]

    def take(self, tenant: str, method: str, path: str) -> Action:
        """Consume the faults that apply to this request, in the order they were added.

        Latency adds up and still lets the request through; the first status or drop fault
        decides the answer."""
        action = Action()
        with self._lock:
            for fault in list(self._faults):
                if fault.tenant != tenant or not fault.matches(method, path):
                    continue
                if not fault.apply(action):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
        return action


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FaultError(f"{name} must be an integer from {low} to {high}, got {_shown(value)}")
    return value


def _methods(value: Any) -> list[str]:
    if not (isinstance(value, list) and value and all(isinstance(m, str) for m in value)):
        raise FaultError("methods must be a non-empty list of method names (leave it out to "
                         f"match every method), got {_shown(value)}")
    methods = [m.upper() for m in value]
    unknown = [m for m in methods if m not in FAULT_METHODS]
    if unknown:
        raise FaultError(f"methods may name {', '.join(FAULT_METHODS)}; "
                         f"not {', '.join(unknown)}")
    return methods
