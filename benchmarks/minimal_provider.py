"""The smallest useful dynamic provider: its create makes one GET to the tenant.

The cold-start benchmark spawns Pulumi's dynamic provider host with this
provider and with ours, and compares the time to the first completed Create.
It is what a hand-written "call the API from a dynamic provider" takes, so the
ratio shows what our provider adds on top (imports, validation, client set-up).
"""

from __future__ import annotations

import os
from typing import Any

import requests
from pulumi.dynamic import CreateResult, ResourceProvider


class MinimalProvider(ResourceProvider):
    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        response = requests.get(
            props["url"],
            headers={"Authorization": f"Bearer {os.environ['BENCH_API_KEY']}"},
            verify=os.environ.get("QLIK_CA_BUNDLE") or True,
            timeout=30,
        )
        response.raise_for_status()
        return CreateResult(id_="minimal", outs={"status": response.status_code})
