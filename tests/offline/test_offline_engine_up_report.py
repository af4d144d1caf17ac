"""What the offline runner's ``up`` reports, against what ``pulumi up`` reports.

Divergences the conformance corpus (tests/conformance) found; each test names the
CLI/engine function (pulumi/pulumi v3.276.0) or the SDK function it follows. Real
parts: Pulumi's dynamic-provider host running the toy provider, and the toy
pulumi-policy pack over gRPC.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from qlik_email_resource.offline import OfflineRunError
from qlik_email_resource.offline.grpc_servers import AnalyzerServer
from tests.offline.toy_provider import Thing, toy_program

HERE = Path(__file__).resolve().parent
CANT_RUN = "can't run policy 'toy-no-plain'"



def writes(store: Path) -> list[list[str]]:
    return json.loads(store.read_text())["writes"] if store.exists() else []


def chained() -> None:
    """b's security comes from a's computed serial: unknown in a preview only."""
    password = pulumi.Config("toy").require_secret("password")
    a = Thing("a", {"name": "a", "port": "465", "security": "tls", "password": password})
    Thing("b", {"name": "b", "port": "465", "password": password,
                "security": a.serial.apply(lambda _: "tls")})


# -- policy findings of both passes --------------------------------------------------------


def test_up_reports_the_preview_pass_findings_too(
    make_stack: Any, toy_analyzer: AnalyzerServer
) -> None:
    """``pulumi up`` previews first and shows that preview's policy findings before
    the update's (pkg/backend/apply.go, PreviewThenPromptThenExecute: PreviewThenPrompt
    runs and displays unless --skip-preview; the run's event stream carries both
    passes' policy events). pulumi-policy cannot judge b's security during the preview
    (it is unknown) and says so as an advisory; the update pass knows it ("tls") and
    finds nothing. The runner reported only the update's findings."""
    stack = make_stack(chained, analyzer=toy_analyzer)
    preview = stack.preview()
    assert [(v.policy, v.level, v.urn.rsplit("::", 1)[-1]) for v in preview.violations
            if CANT_RUN in v.message] == [("toy-no-plain", "advisory", "b")]
    up = stack.up()
    assert [(v.policy, v.level, v.urn.rsplit("::", 1)[-1]) for v in up.violations
            if CANT_RUN in v.message] == [("toy-no-plain", "advisory", "b")]
    assert up.ok and [s.op for s in up.steps] == ["create", "create"]


def test_a_finding_of_both_passes_is_listed_once(
    make_stack: Any, toy_analyzer: AnalyzerServer
) -> None:
    """A finding on a value known in both passes (port 587: toy-port-advice) is reported
    by the preview and again by the update (two policy events of one ``pulumi up``,
    one in each pass's Policies section); ``up``'s list names it once."""
    stack = make_stack(config={"toy:things": "alpha", "toy:port": "587"}, analyzer=toy_analyzer)
    up = stack.up()
    assert [(v.policy, v.level, v.message.splitlines()[-1]) for v in up.violations] == [
        ("toy-port-advice", "advisory", "port is not 465")
    ]


def test_a_failed_up_carries_what_it_did_and_found(
    make_stack: Any, store: Path, toy_analyzer: AnalyzerServer
) -> None:
    """The error of a failed step names the cause; its ``result`` keeps the steps that
    completed and the findings so far. Here the preview pass's Check refuses b's port
    (stepGenerator.continueStepsFromImport: analyzeAll runs on Check's output before
    the failures stop the step): nothing is written."""
    program_config = {"toy:things": "alpha,beta", "toy:port": "587"}
    stack = make_stack(config=program_config, analyzer=toy_analyzer)
    stack.up()

    def bad_beta() -> None:
        password = pulumi.Config("toy").require_secret("password")
        Thing("alpha", {"name": "alpha", "port": "587", "security": "tls", "password": password})
        Thing("beta", {"name": "beta", "port": "not-a-port", "security": "tls",
                       "password": password})

    before = writes(store)
    failing = make_stack(bad_beta, config=program_config, analyzer=toy_analyzer)
    with pytest.raises(OfflineRunError) as info:
        failing.up()
    assert "port must be an integer" in str(info.value)
    result = info.value.result
    assert result is not None and result.operation == "up" and not result.ok
    assert [(s.urn.rsplit("::", 1)[-1], s.op) for s in result.steps] == [("alpha", "same")]
    assert ("toy-port-advice", "beta") in {
        (v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations
    }
    assert writes(store) == before, "a failed preview pass writes nothing"


# -- stack outputs ---------------------------------------------------------------------------


def test_a_stack_output_whose_value_is_none_is_no_output(make_stack: Any) -> None:
    """The SDK registers the stack's outputs through rpc.serialize_properties
    (pulumi/runtime/stack.py Stack._finish -> resource.register_resource_outputs), which
    drops every top-level property that serializes to None ("We treat properties that
    serialize to None as if they don't exist"): the engine never sees such an output,
    neither in a preview nor in state. Nested None values are kept, as the SDK keeps them."""

    def program() -> None:
        toy_program()
        pulumi.export("plain_none", None)
        pulumi.export("output_none", pulumi.Output.from_input(None))
        pulumi.export("nested_none", {"kept": None})

    stack = make_stack(program, config={"toy:things": "alpha"})
    preview = stack.preview()
    up = stack.up()
    for outputs in (preview.outputs, up.outputs, stack.state().outputs):
        assert "plain_none" not in outputs and "output_none" not in outputs
        assert outputs["nested_none"] == {"kept": None}
        assert "alpha_port" in outputs
    again = stack.up()
    assert [s.op for s in again.steps] == ["same"] and not again.changed
