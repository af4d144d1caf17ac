"""Undo a process-wide patch that Pulumi's Python SDK leaves behind.

``pulumi.dynamic.dynamic.serialize_provider`` (SDK 3.272, called by every
``pulumi.dynamic.Resource``) wraps ``pickle._Pickler._batch_setitems`` in a sorting
closure and never restores it, so each dynamic resource built in a process adds one
more wrapper around the previous one. Pickling a dict then recurses once per resource
ever built: after roughly a thousand (a fleet run over hundreds of tenants in one
process, or a test suite) every ``__provider`` fails with ``RecursionError``.

``unwrap_batch_setitems`` puts the real method back before a resource is built;
the SDK then wraps it once, which is all its sorting needs. Remove this module when
the SDK restores the method itself.
"""

from __future__ import annotations

import pickle
from typing import Any

_REAL_QUALNAME = "_Pickler._batch_setitems"


def _real_batch_setitems(method: Any) -> Any:
    """Follow the SDK's closures (``unsorted_batch_setitems``) down to pickle's own method."""
    seen = 0
    while getattr(method, "__qualname__", _REAL_QUALNAME) != _REAL_QUALNAME and seen < 100_000:
        cells = dict(zip(method.__code__.co_freevars, method.__closure__ or (), strict=False))
        inner = cells.get("unsorted_batch_setitems")
        if inner is None:
            return None  # someone else's wrapper: leave it alone
        method = inner.cell_contents
        seen += 1
    return method


def unwrap_batch_setitems() -> None:
    """Restore ``pickle._Pickler._batch_setitems`` if the SDK left wrappers on it."""
    current = pickle._Pickler.__dict__.get("_batch_setitems")
    if current is None or getattr(current, "__qualname__", "") == _REAL_QUALNAME:
        return
    real = _real_batch_setitems(current)
    if real is not None:
        pickle._Pickler._batch_setitems = real  # type: ignore[attr-defined]
