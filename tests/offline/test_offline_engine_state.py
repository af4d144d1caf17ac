"""What the offline runner keeps in state between runs, as the engine does.

The program here is a directory whose ``__main__.py`` defines its own dynamic
provider, as a user's program may: the class lives in ``__main__``, so the SDK
pickles it by value into ``__provider`` and Pulumi's real provider host runs it.
Its records live in the JSON file named by the stack config ``store:path``, read
in ``configure()`` inside the provider process, the way credentials are.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from qlik_email_resource.offline import OfflineRunError, OfflineStack

PROGRAM = '''
import json
from pathlib import Path

import pulumi
from pulumi.dynamic import (
    CheckResult, CreateResult, DiffResult, ReadResult, Resource, ResourceProvider,
)


class StoreProvider(ResourceProvider):
    def configure(self, req):
        self.path = Path(req.config.get("store:path"))

    def _records(self):
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def _save(self, records):
        self.path.write_text(json.dumps(records))

    def check(self, olds, news):
        return CheckResult(news, [])

    def diff(self, id_, olds, news):
        renamed = olds.get("name") != news.get("name")
        return DiffResult(changes=renamed, replaces=["name"] if renamed else [],
                          delete_before_replace=False)

    def create(self, props):
        records = self._records()
        records[props["name"]] = {"name": props["name"]}
        self._save(records)
        return CreateResult(props["name"], {"name": props["name"], "path": str(self.path)})

    def read(self, id_, props):
        record = self._records().get(id_)
        if record is None:
            return ReadResult("", {})
        return ReadResult(id_, {**record, "path": str(self.path)})

    def delete(self, id_, props):
        if Path(str(self.path) + ".refuse-delete").exists():
            raise RuntimeError(f"the store refused to delete {id_}")
        records = self._records()
        records.pop(id_, None)
        self._save(records)


class Item(Resource, module="store", name="Item"):
    def __init__(self, name, props):
        super().__init__(StoreProvider(), name, {**props, "path": None})


item = Item("item", {"name": pulumi.Config("store").get("name") or "first"})
pulumi.export("name", item.name)
'''


@pytest.fixture
def program(tmp_path: Path) -> Path:
    directory = tmp_path / "program"
    directory.mkdir()
    (directory / "__main__.py").write_text(textwrap.dedent(PROGRAM))
    return directory


def make(program: Path, state: Path, **config: str) -> OfflineStack:
    return OfflineStack(
        program, project="store", stack="dev",
        config={f"store:{k}": v for k, v in config.items()}, state_file=state, quiet=True,
    )


def records(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def test_a_replaced_resource_whose_delete_failed_stays_pending_delete(
    program: Path, tmp_path: Path
) -> None:
    """CreateStep.Apply (step.go) marks the replaced resource ``Delete = true`` before
    its delete is tried, so a failed delete leaves it in state; the next update's
    stepGenerator.GenerateDeletes deletes every ``res.Delete`` resource again, and
    buildResourceMaps (deployment.go) keeps such resources out of the olds."""
    store, state = tmp_path / "records.json", tmp_path / "state.json"
    with make(program, state, path=str(store)) as stack:
        stack.up()
    refuse = Path(str(store) + ".refuse-delete")
    refuse.touch()
    with make(program, state, path=str(store), name="second") as stack:
        with pytest.raises(OfflineRunError, match="refused to delete first"):
            stack.up()
        kept = [(r.name, r.id, r.delete) for r in stack.state().resources]
    assert sorted(kept) == [("item", "first", True), ("item", "second", False)]
    assert sorted(records(store)) == ["first", "second"]

    refuse.unlink()
    with make(program, state, path=str(store), name="second") as stack:
        preview = stack.preview()
        assert sorted(s.op for s in preview.steps) == ["delete", "same"]
        result = stack.up()
        assert sorted(s.op for s in result.steps) == ["delete", "same"]
        assert [(r.id, r.delete) for r in stack.state().resources] == [("second", False)]
    assert sorted(records(store)) == ["second"]


def test_refresh_and_destroy_configure_the_provider_from_the_last_up(
    program: Path, tmp_path: Path
) -> None:
    """Deployment.EnsureProvider (deployment.go) loads a resource's provider for
    stepGenerator.GenerateRefreshes and GenerateDeletes from its old state ("find its
    old state and just Same it"): the default provider's inputs, which
    Target.GetPackageConfig (target.go) filled with the whole stack config at the
    last update. Config changed since then reaches the provider only through up."""
    first, elsewhere = tmp_path / "first.json", tmp_path / "elsewhere.json"
    state = tmp_path / "state.json"
    with make(program, state, path=str(first)) as stack:
        stack.up()
    assert list(records(first)) == ["first"]

    with make(program, state, path=str(elsewhere)) as stack:
        refreshed = stack.refresh()
        assert [(s.op, s.changed_fields) for s in refreshed.steps] == [("read", ())]
        destroyed = stack.destroy()
        assert [s.op for s in destroyed.steps] == ["delete"]
    assert records(first) == {}, "destroy must delete through the config of the last up"
    assert not elsewhere.exists()
