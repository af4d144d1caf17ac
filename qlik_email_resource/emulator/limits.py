"""Rate limits and fault injection: the one layer that sits in front of the handlers.

Rate limits follow qlik.dev (reference §7): per tier, per user, per tenant; Tier 1 (GET)
1000/min, Tier 2 (everything else) 100/min, evaluated over a 5-minute window to allow
bursts. Token buckets model that: each holds ``window`` seconds of allowance.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = ("status", "latency", "drop", "patch_removed")
# The methods the API documents (HEAD is GET without a body): what ``methods`` may name.
FAULT_METHODS = ("GET", "HEAD", "PUT", "PATCH", "DELETE", "POST")
# The parameters each kind takes, besides tenant and kind.
FAULT_PARAMS = {
    "status": ("status", "count", "retry_after", "methods"),
    "latency": ("seconds", "count", "methods"),
    "drop": ("count", "methods"),
    "patch_removed": ("status",),
}
MAX_RETRY_AFTER = 3600
MAX_LATENCY = 600.0

DEFAULT_LIMITS = {"tier1": 1000.0, "tier2": 100.0, "window": 300.0}


class FaultError(ValueError):
    """A fault description that cannot be used; the message says what to fix."""


@dataclass
class _Bucket:
    capacity: float
    rate: float  # tokens per second
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take one token; return 0 or the seconds to wait for the next one."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    def __init__(self, settings: bool | Mapping[str, float] = True):
        self.enabled = settings is not False
        conf = dict(DEFAULT_LIMITS)
        if isinstance(settings, Mapping):
            unknown = set(settings) - set(conf)
            if unknown:
                raise ValueError(f"unknown rate-limit keys {sorted(unknown)}: "
                                 "use tier1, tier2, window")
            conf.update({k: float(v) for k, v in settings.items()})
        self.per_min = {"1": conf["tier1"], "2": conf["tier2"]}
        self.window = conf["window"]
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._lock = threading.Lock()

    @staticmethod
    def tier(method: str) -> str:
        return "1" if method in ("GET", "HEAD") else "2"

    def check(self, tenant: str, user: str, method: str) -> int:
        """0 if allowed, else the whole seconds for Retry-After (at least 1)."""
        if not self.enabled:
            return 0
        tier = self.tier(method)
        rate = self.per_min[tier] / 60.0
        now = time.monotonic()
        with self._lock:
            key = (tenant, user, tier)
            bucket = self._buckets.get(key)
            if bucket is None:
                capacity = max(1.0, self.per_min[tier] * self.window / 60.0)
                bucket = self._buckets[key] = _Bucket(capacity, rate, capacity, now)
            wait = bucket.take(now)
        return max(1, math.ceil(wait)) if wait else 0

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


@dataclass
class Fault:
    tenant: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    remaining: int | None = None  # None: for ever

    def matches(self, method: str, path: str) -> bool:
        if self.kind == "patch_removed":
            return method == "PATCH" and path == "/api/v1/transports/email-config"
        methods = self.params.get("methods")
        # HEAD is GET without a body, so a GET fault answers it too.
        return not methods or method in methods or (method == "HEAD" and "GET" in methods)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FaultError(f"{name} must be an integer from {low} to {high}, got {_shown(value)}")
    return value


def check_fault(kind: Any, params: Mapping[str, Any]) -> tuple[dict[str, Any], int | None]:
    """The fault's parameters, checked and normalised, and its count (None: for ever).

    Checked here, when the fault is added: a bad value found later, while answering,
    would break every request of the tenant instead of the one call that added it."""
    if not isinstance(kind, str) or kind not in FAULT_KINDS:
        raise FaultError(f"kind must be one of {', '.join(FAULT_KINDS)}, got {_shown(kind)}")
    unknown = sorted(set(params) - set(FAULT_PARAMS[kind]))
    if unknown:
        raise FaultError(f"a {kind} fault takes no {', '.join(unknown)}: its parameters are "
                         f"{', '.join(FAULT_PARAMS[kind])}")
    clean: dict[str, Any] = {}
    count = params.get("count")
    if count is not None:
        count = _integer("count", count, 1, 1_000_000)
    if kind == "status":
        clean["status"] = _integer("status", params.get("status"), 400, 599)
        if params.get("retry_after") is not None:
            clean["retry_after"] = _integer("retry_after", params["retry_after"], 0,
                                            MAX_RETRY_AFTER)
        count = count or 1
    elif kind == "latency":
        seconds = params.get("seconds")
        if (isinstance(seconds, bool) or not isinstance(seconds, int | float)
                or not 0 <= seconds <= MAX_LATENCY):
            raise FaultError(f"seconds must be a number from 0 to {MAX_LATENCY:g}, "
                             f"got {_shown(seconds)}")
        clean["seconds"] = seconds
    elif kind == "drop":
        count = count or 1
    else:  # patch_removed: PATCH is gone for good, as after Qlik's sunset
        status = params.get("status", 405)
        if isinstance(status, bool) or status not in (404, 405, 410):
            raise FaultError(f"status of a patch_removed fault must be 405, 410 or 404, "
                             f"got {_shown(status)}")
        clean["status"] = status
    if "methods" in params:
        clean["methods"] = _methods(params["methods"])
    return clean, count


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


@dataclass
class Action:
    """What the fault layer wants done with one request."""

    sleep: float = 0.0
    drop: bool = False
    status: int | None = None
    retry_after: int | None = None


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, tenant: str, kind: str, **params: Any) -> dict[str, Any]:
        clean, count = check_fault(kind, params)
        fault = Fault(tenant, kind, clean, count)
        with self._lock:
            self._faults.append(fault)
        return {"tenant": tenant, "kind": kind, "count": count, **clean}

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"tenant": f.tenant, "kind": f.kind, "count": f.remaining, **f.params}
                    for f in self._faults]

    def take(self, tenant: str, method: str, path: str) -> Action:
        """Consume the faults that apply to this request, in the order they were added.

        Latency adds up and still lets the request through; the first status or drop fault
        decides the answer."""
        action = Action()
        with self._lock:
            for fault in list(self._faults):
                if fault.tenant != tenant or not fault.matches(method, path):
                    continue
                if fault.kind == "latency":
                    action.sleep += float(fault.params["seconds"])
                elif action.status is None and not action.drop:
                    if fault.kind == "drop":
                        action.drop = True
                    else:
                        action.status = fault.params["status"]
                        action.retry_after = fault.params.get("retry_after")
                else:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
        return action
