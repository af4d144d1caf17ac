"""Rate limits, applied by the tenant API in front of its handlers (with ``faults.py``).

They follow Qlik's rate-limiting page (https://qlik.dev/apis/rest/rate-limiting; summarised
in docs/emulator.md, "What it does like Qlik"): per tier, per user, per tenant; Tier 1
(GET) 1000/min, Tier 2 (everything else) 100/min, evaluated over a 5-minute window to allow
bursts. Token buckets model that: each holds ``window`` seconds of allowance.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_LIMITS = {"tier1": 1000.0, "tier2": 100.0, "window": 300.0}


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
