"""The offline runner's engine semantics, against a throw-away dynamic provider.

Real parts throughout: Pulumi's dynamic-provider host and the pulumi-policy
analyzer run as subprocesses over gRPC; only the provider is a toy, so these
tests pin the runner and not the Qlik resource.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pulumi
import pytest

from qlik_email_resource.offline import (
    HEADER,
    OfflineRunError,
    OfflineStack,
    PolicyViolationError,
    Secret,
)
from qlik_email_resource.offline.grpc_servers import AnalyzerServer, ProviderServer
from tests.offline.toy_provider import Thing, toy_program

HERE = Path(__file__).resolve().parent
PASSWORD = "toy-pw-4f1c9b27"
TYPE = "pulumi-python:dynamic/toy:Thing"


@pytest.fixture
def make_stack(
    tmp_path: Path, store: Path, provider: ProviderServer, toy_analyzer: AnalyzerServer
) -> Any:
    store.unlink(missing_ok=True)

    def make(stack: str = "dev", **config: Any) -> OfflineStack:
        return OfflineStack(
            toy_program, project="toy", stack=stack,
            config={"toy:password": Secret(PASSWORD), **config},
            state_file=tmp_path / f"{stack}.json",
            provider_server=provider, analyzer=toy_analyzer, quiet=True,
        )

    return make


def writes(store: Path) -> list[list[str]]:
    return json.loads(store.read_text())["writes"] if store.exists() else []


def records(store: Path) -> dict[str, Any]:
    return json.loads(store.read_text())["records"] if store.exists() else {}


def ops(result: Any) -> list[tuple[str, str]]:
    return sorted((s.urn.rsplit("::", 1)[-1], s.op) for s in result.steps)


def test_up_creates_then_noop_up_writes_nothing(make_stack: Any, store: Path) -> None:
    stack = make_stack(**{"toy:things": "alpha,beta"})
    first = stack.up()
    assert first.ok and first.header == HEADER
    assert ops(first) == [("alpha", "create"), ("beta", "create")]
    assert sorted(records(store)) == ["alpha", "beta"]
    assert first.outputs["password"] == "[secret]"
    assert first.outputs["alpha_port"] == 465
    assert {s.type for s in first.steps} == {TYPE}

    before = writes(store)
    second = stack.up()
    assert ops(second) == [("alpha", "same"), ("beta", "same")]
    assert writes(store) == before


def test_noop_up_leaves_the_state_file_alone_but_new_outputs_are_saved(
    tmp_path: Path, store: Path, provider: ProviderServer
) -> None:
    # A no-op up skips its apply pass; a changed export alone must still reach state.
    store.unlink(missing_ok=True)

    def program() -> None:
        cfg = pulumi.Config("toy")
        thing = Thing("alpha", {"name": "alpha", "port": "465", "security": "tls",
                                "password": cfg.require_secret("password")})
        pulumi.export("port", thing.port)
        pulumi.export("label", cfg.get("label") or "first")

    def stack(**config: Any) -> OfflineStack:
        return OfflineStack(
            program, project="toy", stack="dev",
            config={"toy:password": Secret(PASSWORD), **config},
            state_file=tmp_path / "dev.json", provider_server=provider, quiet=True,
        )

    stack().up()
    state_file = tmp_path / "dev.json"
    saved = state_file.read_bytes()
    noop = stack().up()
    assert ops(noop) == [("alpha", "same")] and noop.outputs["label"] == "first"
    assert state_file.read_bytes() == saved

    relabelled = stack(**{"toy:label": "second"}).up()
    assert ops(relabelled) == [("alpha", "same")]
    assert relabelled.outputs["label"] == "second"
    assert stack(**{"toy:label": "second"}).state().outputs["label"] == "second"


def test_update_changes_one_field(make_stack: Any, store: Path) -> None:
    make_stack(**{"toy:things": "alpha"}).up()
    result = make_stack(**{"toy:things": "alpha", "toy:port": "587"}).up()
    assert [(s.op, s.changed_fields) for s in result.steps] == [("update", ("port",))]
    assert writes(store)[-1] == ["update", "alpha"]
    assert records(store)["alpha"]["port"] == 587
    # the provider's outputs reach the program: serial counts the store's writes
    assert result.outputs["alpha_serial"] == 2


def test_replace_creates_new_then_deletes_old(make_stack: Any, store: Path) -> None:
    make_stack(**{"toy:things": "alpha"}).up()
    result = make_stack(**{"toy:things": "alpha", "toy:suffix": "-2"}).up()
    assert [(s.op, s.changed_fields) for s in result.steps] == [("replace", ("name",))]
    assert writes(store)[-2:] == [["create", "alpha-2"], ["delete", "alpha"]]
    assert list(records(store)) == ["alpha-2"]


def test_preview_plans_without_writing(make_stack: Any, store: Path, tmp_path: Path) -> None:
    result = make_stack(**{"toy:things": "alpha"}).preview()
    assert ops(result) == [("alpha", "create")]
    assert writes(store) == []
    assert not (tmp_path / "dev.json").exists()


def test_removed_resource_is_deleted(make_stack: Any, store: Path) -> None:
    make_stack(**{"toy:things": "alpha,beta"}).up()
    result = make_stack(**{"toy:things": "alpha"}).up()
    assert ops(result) == [("alpha", "same"), ("beta", "delete")]
    assert writes(store)[-1] == ["delete", "beta"]
    assert list(records(store)) == ["alpha"]


def test_refresh_reports_drift_and_next_up_repairs(make_stack: Any, store: Path) -> None:
    stack = make_stack(**{"toy:things": "alpha"})
    stack.up()
    data = json.loads(store.read_text())
    data["records"]["alpha"]["security"] = "none"  # changed behind the runner's back
    store.write_text(json.dumps(data))

    refreshed = stack.refresh()
    assert [(s.op, s.changed_fields) for s in refreshed.steps] == [("read", ("security",))]
    assert stack.state().resources[0].outputs["security"] == "none"

    repaired = stack.up()
    assert [(s.op, s.changed_fields) for s in repaired.steps] == [("update", ("security",))]
    assert records(store)["alpha"]["security"] == "tls"


def test_refresh_drops_a_resource_deleted_out_of_band(make_stack: Any, store: Path) -> None:
    stack = make_stack(**{"toy:things": "alpha"})
    stack.up()
    store.write_text(json.dumps({"records": {}, "writes": []}))
    assert ops(stack.refresh()) == [("alpha", "delete")]
    assert stack.state().resources == []


def test_destroy_deletes_everything(make_stack: Any, store: Path) -> None:
    stack = make_stack(**{"toy:things": "alpha,beta"})
    stack.up()
    result = stack.destroy()
    assert ops(result) == [("alpha", "delete"), ("beta", "delete")]
    assert records(store) == {}
    assert stack.state().resources == []


def test_mandatory_policy_blocks_up_and_writes_nothing(
    make_stack: Any, store: Path, tmp_path: Path
) -> None:
    stack = make_stack(**{"toy:things": "alpha", "toy:security": "none", "toy:port": "25"})
    with pytest.raises(PolicyViolationError) as info:
        stack.up()
    assert [v.policy for v in info.value.violations] == ["toy-no-plain"]
    assert "nothing was written" in str(info.value)
    assert writes(store) == []
    assert not (tmp_path / "dev.json").exists()
    # preview reports the same without raising; the advisory rule shows too
    preview = stack.preview()
    assert not preview.ok
    assert sorted((v.policy, v.level) for v in preview.violations) == [
        ("toy-no-plain", "mandatory"),
        ("toy-port-advice", "advisory"),
    ]


def test_advisory_violation_is_reported_and_up_proceeds(make_stack: Any, store: Path) -> None:
    result = make_stack(**{"toy:things": "alpha", "toy:port": "587"}).up()
    assert result.ok
    assert [(v.policy, v.level) for v in result.violations] == [("toy-port-advice", "advisory")]
    assert list(records(store)) == ["alpha"]


def test_check_failure_raises_with_the_providers_reason(make_stack: Any, store: Path) -> None:
    with pytest.raises(OfflineRunError, match="port: port must be an integer"):
        make_stack(**{"toy:things": "alpha", "toy:port": "many"}).up()
    assert writes(store) == []


def test_state_file_holds_no_secret_in_clear(make_stack: Any, tmp_path: Path) -> None:
    make_stack(**{"toy:things": "alpha"}).up()
    text = (tmp_path / "dev.json").read_text()
    assert PASSWORD not in text
    resource = json.loads(text)["resources"][0]
    assert set(resource["inputs"]["password"]) == {"secure"}
    assert set(resource["outputs"]["password"]) == {"secure"}
    assert set(resource["inputs"]["__provider"]) == {"secure"}
    key_file = tmp_path / "dev.json.key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_passphrase_encrypts_state_and_a_wrong_one_is_refused(
    make_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QLIK_OFFLINE_PASSPHRASE", "correct horse")
    stack = make_stack(**{"toy:things": "alpha"})
    stack.up()
    assert not (tmp_path / "dev.json.key").exists()
    assert PASSWORD not in (tmp_path / "dev.json").read_text()
    assert stack.state().resources[0].inputs["password"]["value"] == PASSWORD
    monkeypatch.setenv("QLIK_OFFLINE_PASSPHRASE", "wrong")
    with pytest.raises(OfflineRunError, match="does not match the passphrase"):
        stack.up()


def test_stacks_run_one_after_another_in_one_process(make_stack: Any, store: Path) -> None:
    for i in range(5):
        result = make_stack(stack=f"s{i}", **{"toy:things": f"t{i}"}).up()
        assert ops(result) == [(f"t{i}", "create")]
        assert result.stack == f"s{i}"
    assert sorted(records(store)) == [f"t{i}" for i in range(5)]


def test_program_exception_is_an_offline_run_error(tmp_path: Path) -> None:
    def broken() -> None:
        raise ValueError("no such setting")

    stack = OfflineStack(broken, project="toy", stack="dev", quiet=True)
    with pytest.raises(OfflineRunError, match="ValueError: no such setting"):
        stack.up()


def test_program_directory_runs_with_its_pulumi_yaml(
    tmp_path: Path, store: Path, provider: ProviderServer, capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "prog"
    program.mkdir()
    (program / "Pulumi.yaml").write_text(
        "name: toyproj\nruntime: python\nconfig:\n"
        "  toy:things:\n    value: gamma\n"
        "  greeting:\n    type: string\n    default: hello\n"
    )
    (program / "__main__.py").write_text(
        "import pulumi\nfrom tests.offline.toy_provider import toy_program\n"
        "toy_program()\npulumi.export('greeting', pulumi.Config().get('greeting'))\n"
    )
    stack = OfflineStack(
        program, stack="dev", config={"toy:password": Secret(PASSWORD)},
        state_file=tmp_path / "state.json", provider_server=provider,
    )
    result = stack.up()
    assert result.project == "toyproj"
    assert ops(result) == [("gamma", "create")]
    assert result.outputs["greeting"] == "hello"
    out = capsys.readouterr().out
    assert HEADER in out and PASSWORD not in out
    assert os.getcwd() != str(program)


def test_stacks_started_from_threads_are_serialised_and_all_succeed(
    make_stack: Any, store: Path
) -> None:
    import threading

    stacks = [make_stack(stack=f"th{i}", **{"toy:things": f"th{i}"}) for i in range(4)]
    results: dict[int, Any] = {}

    def run(i: int) -> None:
        results[i] = stacks[i].up()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [ops(results[i]) for i in range(4)] == [[(f"th{i}", "create")] for i in range(4)]
    assert sorted(records(store)) == [f"th{i}" for i in range(4)]
