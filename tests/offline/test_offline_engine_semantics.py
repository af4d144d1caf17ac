"""The offline runner against the engine's own step logic (issue #11 item 4).

Each test names the Go function of Pulumi's engine (pkg/resource/deploy, v3.259
source, close to the v3.276 CLI we target) whose behaviour it pins. Real parts:
Pulumi's dynamic-provider host running the toy provider, and pulumi-policy
analyzers (the toy pack and a probe pack written here) over gRPC.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pulumi
import pytest

from qlik_email_resource.offline import PolicyViolationError
from qlik_email_resource.offline.grpc_servers import AnalyzerServer
from tests.offline.toy_provider import Thing

HERE = Path(__file__).resolve().parent
UNKNOWN = "[unknown]"  # how the CLI prints an unknown value (display/object_diff.go)

# A pack that reports what the engine must never show a policy (internal `__` keys,
# the raw string port the provider's Check turns into an integer) and, as a stack
# policy, the `serial` output that only the provider computes.
PROBE_PACK = '''
from pulumi_policy import (
    EnforcementLevel, PolicyPack, ResourceValidationPolicy, StackValidationPolicy,
)


def internal_keys(args, report):
    hidden = sorted(k for k in args.props if k.startswith("__"))
    if hidden:
        report("internal keys reached the policy: " + ", ".join(hidden))


def raw_port(args, report):
    if isinstance(args.props.get("port"), str):
        report("port is the raw input string, not the provider-checked integer")


def final_serial(args, report):
    for resource in args.resources:
        serial = resource.props.get("serial")
        if serial is not None:
            report(f"final serial {int(serial)}", resource.urn)


PolicyPack(
    name="engine-probe",
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=[
        ResourceValidationPolicy(name="probe-internal-keys", description="No __ keys.",
                                 validate=internal_keys),
        ResourceValidationPolicy(name="probe-raw-port", description="Checked inputs.",
                                 validate=raw_port),
        StackValidationPolicy(name="probe-final-serial", description="Final outputs.",
                              validate=final_serial),
    ],
)
'''


@pytest.fixture(scope="module")
def probe_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pack = tmp_path_factory.mktemp("probe-pack")
    (pack / "__main__.py").write_text(textwrap.dedent(PROBE_PACK))
    return pack



def records(store: Path) -> dict[str, Any]:
    return json.loads(store.read_text())["records"] if store.exists() else {}


def found(result_or_error: Any) -> list[tuple[str, str, str]]:
    return sorted(
        (v.policy, v.level, v.message.splitlines()[-1]) for v in result_or_error.violations
    )


def test_resource_policies_see_checked_inputs_without_internal_keys(
    make_stack: Any, probe_pack: Path
) -> None:
    """stepGenerator.continueStepsFromImport (step_generator.go) runs analyzeAll on
    ``inputs = resp.Properties``, the provider's Check output; analyzer.Analyze
    (pkg/resource/plugin/analyzer_plugin.go) marshals them with SkipInternalKeys, so
    ``__provider`` never reaches a policy. The toy Check turns port "465" into 465."""
    stack = make_stack(config={"toy:things": "alpha"}, policy_packs=[probe_pack])
    with stack:
        preview = stack.preview()
        assert found(preview) == []
        up = stack.up()
    assert [v.policy for v in up.violations if v.policy != "probe-final-serial"] == []


def test_up_checks_resource_policies_again_in_its_apply_pass(
    make_stack: Any, store: Path, toy_analyzer: AnalyzerServer, tmp_path: Path
) -> None:
    """analyzeResource (analyze_snapshot.go) marks a resource with a mandatory
    violation invalid unless dryRun, and continueStepsFromImport bails ("resource %s
    is invalid") before its step. Here b's security comes from a's output: unknown
    in the preview, "none" in the update, so only the update's check can catch it."""

    def chained() -> None:
        password = pulumi.Config("toy").require_secret("password")
        a = Thing("a", {"name": "a", "port": "465", "security": "tls", "password": password})
        Thing("b", {"name": "b", "port": "465", "password": password,
                    "security": a.serial.apply(lambda _: "none")})

    stack = make_stack(chained, analyzer=toy_analyzer)
    with pytest.raises(PolicyViolationError) as info:
        stack.up()
    assert [(v.policy, v.urn.rsplit("::", 1)[-1]) for v in info.value.violations] == [
        ("toy-no-plain", "b")
    ]
    assert "nothing was written" not in str(info.value)
    assert list(records(store)) == ["a"], "b must not be created"
    assert [r.name for r in stack.state().resources] == ["a"], "a was created: kept in state"


def test_stack_policies_run_on_the_final_outputs_after_the_apply(
    make_stack: Any, store: Path, probe_pack: Path
) -> None:
    """stepGenerator.AnalyzeResources (step_generator.go): "AnalyzeStack is called on
    the final outputs of each resource", and deploymentExecutor.Execute
    (deployment_executor.go) calls it after the steps of the update ran. The toy's
    ``serial`` is computed by Create: the preview cannot know it."""
    stack = make_stack(config={"toy:things": "alpha"}, policy_packs=[probe_pack])
    with stack:
        result = stack.up()
    serial = result.outputs["alpha_serial"]
    assert isinstance(serial, int)
    assert ("probe-final-serial", "advisory", f"final serial {serial}") in found(result)


def test_a_mandatory_stack_policy_after_the_apply_fails_up_but_keeps_the_state(
    make_stack: Any, store: Path, probe_pack: Path
) -> None:
    """AnalyzeResources records a mandatory stack diagnostic as sawError, and
    Execute then fails the update ("step generator errored") after its steps were
    applied and saved."""
    stack = make_stack(
        config={"toy:things": "alpha"}, policy_packs=[probe_pack],
        policy_config={"probe-final-serial": {"enforcementLevel": "mandatory"}},
    )
    with stack, pytest.raises(PolicyViolationError) as info:
        stack.up()
    assert [v.policy for v in info.value.violations] == ["probe-final-serial"]
    assert "nothing was written" not in str(info.value)
    assert list(records(store)) == ["alpha"]
    assert [r.name for r in stack.state().resources] == ["alpha"]


def test_a_previewed_update_shows_the_checked_inputs_and_unknown_computed_outputs(
    make_stack: Any,
) -> None:
    """UpdateStep.Apply (step.go) calls provider.Update with Preview; provider.Update
    (pkg/resource/plugin/provider_plugin.go) answers a provider without preview
    support (the dynamic host's Configure sets no supportsPreview) with NewInputs
    alone. What the provider computes (serial) is unknown, not its old value."""
    make_stack(config={"toy:things": "alpha"}).up()
    preview = make_stack(config={"toy:things": "alpha", "toy:port": "587"}).preview()
    assert [(s.op, s.changed_fields) for s in preview.steps] == [("update", ("port",))]
    assert preview.outputs["alpha_port"] == 587
    assert preview.outputs["alpha_serial"] == UNKNOWN


def test_refresh_asks_the_providers_diff_after_read(make_stack: Any, store: Path) -> None:
    """RefreshStep.Apply (step.go) calls diffResource after Read (new inputs and
    outputs as the olds, the old inputs as the news) and ResultOp reports no change
    when the provider's Diff says DiffNone, whatever else the outputs gained."""
    stack = make_stack(config={"toy:things": "alpha"})
    stack.up()
    data = json.loads(store.read_text())
    data["records"]["alpha"]["note"] = "added in a console"  # an output Diff ignores
    store.write_text(json.dumps(data))
    refreshed = stack.refresh()
    assert [(s.op, s.changed_fields) for s in refreshed.steps] == [("read", ())]
    assert not refreshed.changed
    assert stack.state().resources[0].outputs["note"] == "added in a console"

    data["records"]["alpha"]["security"] = "none"  # an input Diff compares
    store.write_text(json.dumps(data))
    drifted = stack.refresh()
    assert [(s.op, s.changed_fields) for s in drifted.steps] == [("read", ("security",))]
