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
        return not methods or method in methods


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
        if kind not in FAULT_KINDS:
            raise FaultError(f"unknown fault kind {kind!r}: use one of {', '.join(FAULT_KINDS)}")
        count = params.pop("count", None)
        if count is not None and (not isinstance(count, int) or count < 1):
            raise FaultError("count must be a positive integer")
        if kind == "status":
            status = params.get("status")
            if not isinstance(status, int) or not 400 <= status <= 599:
                raise FaultError("status fault needs an integer status between 400 and 599")
            count = 1 if count is None else count
        elif kind == "latency":
            seconds = params.get("seconds")
            if not isinstance(seconds, int | float) or not 0 <= seconds <= 600:
                raise FaultError("latency fault needs seconds between 0 and 600")
        elif kind == "drop":
            count = 1 if count is None else count
        elif kind == "patch_removed":
            status = params.setdefault("status", 405)
            if status not in (404, 405, 410):
                raise FaultError("patch_removed status must be 405, 410 or 404")
            count = None
        methods = params.get("methods")
        if methods is not None and not (
            isinstance(methods, list) and all(isinstance(m, str) for m in methods)
        ):
            raise FaultError("methods must be a list of HTTP method names")
        if methods:
            params["methods"] = [m.upper() for m in methods]
        unknown = set(params) - {"status", "seconds", "retry_after", "methods"}
        if unknown:
            raise FaultError(f"unknown fault parameters {sorted(unknown)}")
        fault = Fault(tenant, kind, params, count)
        with self._lock:
            self._faults.append(fault)
        return {"tenant": tenant, "kind": kind, "count": count, **params}

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
                        action.status = int(fault.params["status"])
                        retry = fault.params.get("retry_after")
                        action.retry_after = int(retry) if retry is not None else None
                else:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
        return action
