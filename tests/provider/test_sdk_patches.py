"""The SDK's serialize_provider leaves a pickle patch that piles up per resource.

Pulumi 3.272's ``serialize_provider`` wraps ``pickle._Pickler._batch_setitems`` and
never restores it; after about a thousand dynamic resources in one process every
``__provider`` fails with RecursionError (seen in the full test suite, and what a fleet
run over hundreds of tenants in one process would hit). Driven through the SDK's real
function with our real provider.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from qlik_email_resource.provider import TenantEmailConfigProvider
from qlik_email_resource.sdk_patches import unwrap_batch_setitems

SERIALIZATIONS = 1500  # past the default recursion limit of 1000


@pytest.fixture(autouse=True)
def _restore_pickle() -> Iterator[None]:
    original = pickle._Pickler.__dict__["_batch_setitems"]
    yield
    pickle._Pickler._batch_setitems = original


def test_the_sdk_patch_piles_up_without_the_unwrap() -> None:
    """The bug is the SDK's: without our unwrap the 1500th pickle fails."""
    with pytest.raises(RecursionError):
        for _ in range(SERIALIZATIONS):
            serialize_provider(TenantEmailConfigProvider())


def test_unwrap_keeps_every_serialization_working_and_identical() -> None:
    first = serialize_provider(TenantEmailConfigProvider())
    for _ in range(SERIALIZATIONS):
        unwrap_batch_setitems()
        assert serialize_provider(TenantEmailConfigProvider()) == first


def test_unwrap_leaves_a_foreign_wrapper_alone() -> None:
    real = pickle._Pickler.__dict__["_batch_setitems"]

    def someone_elses(self, items):  # type: ignore[no-untyped-def]
        return real(self, items)

    pickle._Pickler._batch_setitems = someone_elses
    unwrap_batch_setitems()
    assert pickle._Pickler.__dict__["_batch_setitems"] is someone_elses
