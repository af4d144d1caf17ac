"""The engine's per-resource step logic, as a ``pulumi.runtime.Mocks``.

Each registration the program makes lands in ``new_resource``. Dynamic resources
go to the real dynamic-provider server exactly as the engine sends them:
secrets unwrapped (the dynamic host answers ``acceptSecrets=False``), ``Check``
against the previous inputs, the policies on Check's output, ``Diff`` against
the previous outputs, then ``Create``/``Update`` (or replace) unless this is a
preview (pkg/resource/deploy/step_generator.go, ``continueStepsFromImport``).
Everything else gets its inputs back, as under ``pulumi up`` with no provider
to ask.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import grpc
from pulumi.runtime import Mocks
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs
from pulumi.runtime.proto import analyzer_pb2, provider_pb2, resource_pb2

from qlik_email_resource.offline.grpc_servers import (
    AnalyzerServer,
    ProviderServer,
    from_struct,
    to_struct,
)
from qlik_email_resource.offline.results import (
    OfflineRunError,
    PolicyViolationError,
    Step,
    Violation,
)
from qlik_email_resource.offline.state import (
    ResourceState,
    StackState,
    rewrap,
    secret_keys,
    unwrap_all,
)

DYNAMIC_PREFIX = "pulumi-python:dynamic"
PROVIDER_KEY = "__provider"
RPC_TIMEOUT = 300.0
T = TypeVar("T")


def engine_urn(stack: str, project: str, type_: str, name: str) -> str:
    # The engine's URN for a top-level resource. MockMonitor's own URN prefixes the
    # Stack type ("pulumi:pulumi:Stack$..."), which the real engine does not.
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def provider_error(action: str, urn: str, exc: grpc.RpcError) -> OfflineRunError:
    """The provider's own message (last traceback line), not the whole traceback."""
    details = (exc.details() or "") if hasattr(exc, "details") else str(exc)
    lines = [line for line in details.strip().splitlines() if line.strip()]
    message = lines[-1].strip() if lines else f"gRPC {exc.code() if hasattr(exc, 'code') else ''}"
    return OfflineRunError(f"{action} of {urn} failed in the provider: {message}")


def call_provider(action: str, urn: str, method: Callable[..., T], request: Any) -> T:
    """One provider RPC; a failure becomes the provider's own message for ``urn``."""
    try:
        return method(request, timeout=RPC_TIMEOUT)
    except grpc.RpcError as exc:
        raise provider_error(action, urn, exc) from None


def analyzer_error(urn: str, exc: grpc.RpcError) -> OfflineRunError:
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return OfflineRunError(
        f"the policy pack failed while analyzing {urn or 'the stack'}: {details}; "
        "fix the policy (or the inputs it cannot read)"
    )


def violations_from(
    diagnostics: list[analyzer_pb2.AnalyzeDiagnostic], urn: str = ""
) -> list[Violation]:
    # A diagnostic at level remediate is a remediation that did not fix the resource:
    # the engine counts it as mandatory (analyzeResource, AnalyzeResources).
    return [
        Violation(
            policy=d.policyName,
            level="mandatory"
            if d.enforcementLevel == analyzer_pb2.REMEDIATE
            else analyzer_pb2.EnforcementLevel.Name(d.enforcementLevel).lower(),
            message=d.message,
            urn=d.urn or urn,
        )
        for d in diagnostics
    ]


def policy_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    """What a policy sees: internal ``__`` keys (``__provider``) left out, as the
    engine's analyzer.Analyze/AnalyzeStack marshal with SkipInternalKeys."""
    return {k: v for k, v in props.items() if not k.startswith("__")}


def declared_changes(
    old_outputs: Mapping[str, Any], old_inputs: Mapping[str, Any], news: Mapping[str, Any]
) -> tuple[str, ...]:
    """Declared fields whose new value differs from what the provider last reported."""
    keys = (set(news) | set(old_inputs)) - {PROVIDER_KEY}
    return tuple(
        sorted(k for k in keys if old_outputs.get(k, old_inputs.get(k)) != news.get(k))
    )


@dataclass
class Registration:
    """What the program registered, for AnalyzeStack and for the new state."""

    resource: ResourceState
    step: Step


class EngineMocks(Mocks):
    """Provider-backed mocks for one pass of the program (preview or apply)."""

    def __init__(
        self,
        *,
        project: str,
        stack: str,
        prior: StackState,
        preview: bool,
        provider: Callable[[], ProviderServer],
        analyzers: list[AnalyzerServer],
    ) -> None:
        self.project = project
        self.stack = stack
        # buildResourceMaps (deployment.go): pending deletes are no resource's old state.
        self.prior = {r.urn: r for r in prior.resources if not r.delete}
        self.preview = preview
        self._provider = provider
        self.analyzers = analyzers
        self.registrations: list[Registration] = []
        self.violations: list[Violation] = []
        self.errors: list[OfflineRunError] = []
        self.pending_deletes: list[ResourceState] = []
        self._lock = threading.Lock()

    # -- pulumi.runtime.Mocks -------------------------------------------------------

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        error = OfflineRunError(
            f"the program invokes {args.token}; the offline runner has no provider for "
            "invokes. Run it with the Pulumi CLI, or keep invokes out of this program"
        )
        self._fail(error)
        raise error

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        urn = engine_urn(self.stack, self.project, args.typ, args.name)
        with self._lock:
            if self.errors:
                # The engine stops at the first failure: nothing further is checked or
                # written (the run reports that first error).
                raise Halted(urn)
        try:
            with self._lock:
                if any(r.resource.urn == urn for r in self.registrations):
                    raise OfflineRunError(
                        f"duplicate resource URN {urn}; give each resource a unique name"
                    )
            prior = self.prior.get(urn)
            if args.custom and args.typ.startswith(DYNAMIC_PREFIX):
                registration = self._dynamic(urn, args, prior)
            else:
                registration = self._plain(urn, args, prior)
        except OfflineRunError as exc:
            self._fail(exc)
            raise
        except Exception as exc:  # the program must fail, with our message first
            error = OfflineRunError(f"{urn}: {type(exc).__name__}: {exc}")
            self._fail(error)
            raise error from None
        with self._lock:
            self.registrations.append(registration)
        state = registration.resource
        return (state.id or None), dict(state.outputs)

    # -- steps ------------------------------------------------------------------------

    def _plain(self, urn: str, args: MockResourceArgs, prior: ResourceState | None) -> Registration:
        inputs = dict(args.inputs)
        self._analyze(urn, args, inputs)  # no provider, no Check: the inputs as registered
        if prior is None:
            op = "create"
        elif unwrap_all(prior.inputs) == unwrap_all(inputs):
            op = "same"
        else:
            op = "update"
        resource_id = prior.id if prior else (f"{args.name}-id" if args.custom else "")
        state = ResourceState(
            urn=urn, type=args.typ, name=args.name, custom=bool(args.custom), dynamic=False,
            id=resource_id, inputs=inputs, outputs=inputs,
        )
        fields = declared_changes(prior.outputs, prior.inputs, inputs) if prior else ()
        return Registration(state, Step(urn, args.typ, op, fields if op == "update" else ()))

    def _dynamic(
        self, urn: str, args: MockResourceArgs, prior: ResourceState | None
    ) -> Registration:
        stub = self._provider().stub
        wrapped = dict(args.inputs)
        secrets = secret_keys(wrapped)
        news = unwrap_all(wrapped)
        old_inputs = unwrap_all(prior.inputs) if prior else {}
        old_outputs = unwrap_all(prior.outputs) if prior else {}
        names: dict[str, Any] = {"urn": urn, "name": args.name, "type": args.typ}

        check = call_provider(
            "check", urn, stub.Check,
            provider_pb2.CheckRequest(olds=to_struct(old_inputs), news=to_struct(news), **names),
        )
        # A provider may mark values secret itself; keep them secret, compare plain.
        raw_checked = from_struct(check.inputs)
        secrets |= secret_keys(raw_checked)
        checked = unwrap_all(raw_checked)
        # The engine analyzes Check's output (secrets marked again, as its provider
        # plugin does for a provider that takes none), even when Check failed.
        self._analyze(urn, args, rewrap(checked, secrets))
        if check.failures:
            reasons = "; ".join(f"{f.property or '(resource)'}: {f.reason}" for f in check.failures)
            raise OfflineRunError(f"the provider rejected the inputs of {urn}: {reasons}")

        op, delete_first = "create", False
        fields: tuple[str, ...] = ()
        if prior is not None:
            op, fields, delete_first = self._diff(
                stub, prior, old_inputs, old_outputs, checked, names
            )

        if self.preview:
            # A provider without preview support (the dynamic host sets no
            # supportsPreview) answers a previewed Create/Update with the checked
            # inputs alone (provider_plugin.go, provider.Create/Update), so what it
            # computes is unknown to the program; a same step keeps the old outputs.
            planned = old_outputs if op == "same" else checked
            resource_id = prior.id if prior is not None else ""
            outputs = planned
        else:
            resource_id, raw_outputs = self._apply(
                stub, op, prior, old_inputs, old_outputs, checked, delete_first, names
            )
            secrets |= secret_keys(raw_outputs)
            outputs = unwrap_all(raw_outputs)

        state = ResourceState(
            urn=urn, type=args.typ, name=args.name, custom=True, dynamic=True, id=resource_id,
            inputs=rewrap(checked, secrets), outputs=rewrap(outputs, secrets),
        )
        return Registration(state, Step(urn, args.typ, op, fields))

    def _diff(
        self,
        stub: Any,
        prior: ResourceState,
        old_inputs: dict[str, Any],
        old_outputs: dict[str, Any],
        checked: dict[str, Any],
        names: dict[str, Any],
    ) -> tuple[str, tuple[str, ...], bool]:
        diff = call_provider(
            "diff", names["urn"], stub.Diff,
            provider_pb2.DiffRequest(
                id=prior.id, olds=to_struct(old_outputs), news=to_struct(checked),
                old_inputs=to_struct(old_inputs), **names,
            ),
        )
        fields = declared_changes(old_outputs, old_inputs, checked)
        if diff.changes == provider_pb2.DiffResponse.DIFF_NONE:
            return "same", (), False
        if diff.changes == provider_pb2.DiffResponse.DIFF_SOME:
            if diff.replaces:
                return "replace", tuple(sorted(set(fields) | set(diff.replaces))), bool(
                    diff.deleteBeforeReplace
                )
            return "update", fields, False
        # DIFF_UNKNOWN: the engine falls back to comparing old and new inputs.
        input_changes = declared_changes(old_inputs, old_inputs, checked)
        return ("update", input_changes, False) if input_changes else ("same", (), False)

    def _apply(
        self,
        stub: Any,
        op: str,
        prior: ResourceState | None,
        old_inputs: dict[str, Any],
        old_outputs: dict[str, Any],
        checked: dict[str, Any],
        delete_first: bool,
        names: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        urn = names["urn"]
        if op == "same":
            assert prior is not None
            return prior.id, old_outputs
        if op == "update":
            assert prior is not None
            updated = call_provider(
                "update", urn, stub.Update,
                provider_pb2.UpdateRequest(
                    id=prior.id, olds=to_struct(old_outputs), news=to_struct(checked),
                    old_inputs=to_struct(old_inputs), **names,
                ),
            )
            return prior.id, from_struct(updated.properties)
        if op == "replace" and delete_first:
            assert prior is not None
            delete(stub, prior)
        created = call_provider(
            "create", urn, stub.Create,
            provider_pb2.CreateRequest(properties=to_struct(checked), **names),
        )
        if op == "replace" and not delete_first:
            assert prior is not None
            with self._lock:
                # The engine deletes replaced resources after the rest of the update.
                self.pending_deletes.append(prior)
        return created.id, from_struct(created.properties)

    def _analyze(self, urn: str, args: MockResourceArgs, properties: Mapping[str, Any]) -> None:
        """analyzeAll: every pack on the resource; a mandatory finding makes the
        resource invalid in an update (not in a preview: analyzeResource)."""
        found: list[Violation] = []
        for analyzer in self.analyzers:
            try:
                diagnostics = analyzer.analyze(
                    type_=args.typ, urn=urn, name=args.name,
                    properties=policy_properties(properties),
                )
            except grpc.RpcError as exc:
                raise analyzer_error(urn, exc) from None
            found.extend(violations_from(diagnostics, urn))
        with self._lock:
            self.violations.extend(found)
        mandatory = [v for v in found if v.level == "mandatory"]
        if mandatory and not self.preview:
            raise PolicyViolationError(mandatory, stage="apply")

    def _fail(self, error: OfflineRunError) -> None:
        with self._lock:
            self.errors.append(error)


class Halted(OfflineRunError):
    """A registration after the run's first failure: refused, never recorded."""

    def __init__(self, urn: str) -> None:
        super().__init__(f"{urn} was not processed: the run stopped at an earlier failure")


class EngineMonitor(MockMonitor):
    """``MockMonitor`` that reports a failed registration in its answer.

    The SDK asks for result reporting, and the engine answers a failed step with
    ``Result.FAIL`` (source_eval.go, ``RegisterResource``; step.go, ``Fail``): the
    SDK then resolves that resource's outputs as unknown. Raising instead would make
    the SDK set the exception on every output future of the resource, futures the
    program never reads: each became a "Future exception was never retrieved"
    traceback when collected. The run still fails with the first error, which the
    mocks keep.
    """

    def RegisterResource(self, request: Any) -> Any:
        try:
            return super().RegisterResource(request)
        except OfflineRunError:
            return resource_pb2.RegisterResourceResponse(
                urn=self.make_urn(request.parent, request.type, request.name),
                result=resource_pb2.Result.FAIL,
            )


def refresh(stub: Any, resource: ResourceState) -> tuple[ResourceState | None, tuple[str, ...]]:
    """RefreshStep.Apply (step.go): Read, then the provider's Diff framed as "what an
    up of the unchanged program would change" (the new state as the olds, the old
    inputs as the news). Returns the refreshed state (None: gone) and its drift,
    which is empty unless that Diff finds changes (RefreshStep.ResultOp)."""
    answer = call_provider(
        "read", resource.urn, stub.Read,
        provider_pb2.ReadRequest(
            id=resource.id, urn=resource.urn, name=resource.name, type=resource.type,
            properties=to_struct(unwrap_all(resource.outputs)),
            inputs=to_struct(unwrap_all(resource.inputs)),
        ),
    )
    if not answer.id:
        return None, ()
    outputs = from_struct(answer.properties)
    keys = secret_keys(resource.outputs) | secret_keys(resource.inputs) | secret_keys(outputs)
    inputs = resource.inputs
    if answer.HasField("inputs") and answer.inputs.fields:
        read_inputs = from_struct(answer.inputs)
        keys |= secret_keys(read_inputs)
        inputs = rewrap(unwrap_all(read_inputs), keys)
    refreshed = replace(
        resource, id=answer.id, inputs=inputs, outputs=rewrap(unwrap_all(outputs), keys)
    )
    diff = call_provider(
        "diff", resource.urn, stub.Diff,
        provider_pb2.DiffRequest(
            id=answer.id, urn=resource.urn, name=resource.name, type=resource.type,
            olds=to_struct(unwrap_all(refreshed.outputs)),
            news=to_struct(unwrap_all(resource.inputs)),
            old_inputs=to_struct(unwrap_all(refreshed.inputs)),
        ),
    )
    if diff.changes == provider_pb2.DiffResponse.DIFF_NONE:
        return refreshed, ()
    input_drift = _drift(resource.inputs, refreshed.inputs)
    if diff.changes == provider_pb2.DiffResponse.DIFF_UNKNOWN:
        # diffResource: an unknown answer becomes a comparison of the inputs.
        return refreshed, input_drift
    # Name the declared fields that moved; a provider that finds a change no input
    # shows gets the changed outputs named instead.
    declared = set(unwrap_all(resource.inputs)) | set(unwrap_all(refreshed.inputs))
    output_drift = _drift(resource.outputs, refreshed.outputs)
    fields = tuple(sorted(set(input_drift) | {k for k in output_drift if k in declared}))
    return refreshed, fields or output_drift


def _drift(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    plain_old, plain_new = unwrap_all(old), unwrap_all(new)
    keys = (set(plain_old) | set(plain_new)) - {PROVIDER_KEY}
    return tuple(sorted(k for k in keys if plain_old.get(k) != plain_new.get(k)))


def delete(stub: Any, resource: ResourceState) -> None:
    """``Delete`` with the last outputs, as ``pulumi destroy`` sends them."""
    call_provider(
        "delete", resource.urn, stub.Delete,
        provider_pb2.DeleteRequest(
            id=resource.id, urn=resource.urn, name=resource.name, type=resource.type,
            properties=to_struct(unwrap_all(resource.outputs)),
            old_inputs=to_struct(unwrap_all(resource.inputs)),
        ),
    )
