"""``OfflineStack``: preview / up / refresh / destroy without the Pulumi CLI.

The program runs under ``pulumi.runtime`` mocks; ``EngineMocks`` forwards its
dynamic resources to the real provider server and every resource to the real
policy analyzers. ``up`` runs the program twice, as ``pulumi up`` does (a
preview, then the update): the preview pass runs Check, the policies and Diff,
and a mandatory violation stops the run before anything is written; the update
pass checks the policies again, and the stack policies judge its final outputs.

Runs are serialised by a process-wide lock: the Pulumi SDK keeps its runtime in
module globals and context variables, and a program directory needs the
process's cwd and ``sys.path``. Several stacks therefore run one after another
in one process (each in a fresh ``contextvars.Context`` with its own event
loop); to run stacks in parallel, use processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import os
import re
import runpy
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import pulumi
import pulumi.runtime
from pulumi.runtime import rpc
from pulumi.runtime.settings import SETTINGS, get_root_resource
from pulumi.runtime.stack import massage, run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from qlik_email_resource.offline import policy_config
from qlik_email_resource.offline.grpc_servers import AnalyzerServer, ProviderServer
from qlik_email_resource.offline.mocks import (
    EngineMocks,
    EngineMonitor,
    analyzer_error,
    delete,
    policy_properties,
    refresh,
    violations_from,
)
from qlik_email_resource.offline.project import ProjectConfig, assemble_config, load_project
from qlik_email_resource.offline.results import (
    HEADER,
    UNKNOWN,
    OfflineRunError,
    PolicyViolationError,
    RunResult,
    Step,
    Violation,
)
from qlik_email_resource.offline.state import (
    ResourceState,
    StackState,
    StateFile,
    secret_keys,
    unwrap_all,
)
from qlik_email_resource.sdk_patches import unwrap_batch_setitems
from qlik_email_resource.secret_wire import is_wrapped as is_secret
from qlik_email_resource.secret_wire import wrap as wrap_secret

Program = Callable[[], Any] | str | os.PathLike[str]

_RUN_LOCK = threading.RLock()
MASK = "[secret]"
# Config keys kept secret in the saved provider config even when given as plain values.
_CREDENTIAL = re.compile(r"(key|secret|password|token)", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class StackConfig:
    """The config a pass runs with: values as the CLI hands them over, secret keys."""

    values: dict[str, str]
    secrets: tuple[str, ...] = ()


@dataclasses.dataclass
class PassResult:
    """One run of the program: what it registered, its exports, its first error."""

    mocks: EngineMocks
    outputs: dict[str, Any]
    error: OfflineRunError | None
    provider_used: bool = False


class OfflineStack:
    """One stack of a Pulumi program, run by the offline runner (never the CLI)."""

    def __init__(
        self,
        program: Program,
        project: str | None = None,
        stack: str = "dev",
        config: Mapping[str, Any] | None = None,
        state_file: str | os.PathLike[str] | None = None,
        policy_packs: Sequence[str | os.PathLike[str]] = (),
        policy_config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        provider_server: ProviderServer | None = None,
        analyzer: AnalyzerServer | None = None,
        *,
        quiet: bool = False,
    ) -> None:
        self.program = program
        self.program_dir: Path | None = None
        self.program_file: Path | None = None
        if not callable(program):
            self.program_file, self.program_dir = _program_paths(Path(program))
        self._project = (
            load_project(self.program_dir, stack) if self.program_dir else ProjectConfig()
        )
        self.project = project or self._project.name or "qlik-email"
        self.stack = stack
        self.config = dict(config or {})
        self.state_file = StateFile(state_file) if state_file is not None else None
        self._memory_state: StackState | None = None
        self.policy_packs = [Path(p) for p in policy_packs]
        self.policy_config = dict(policy_config) if policy_config is not None else None
        self.env = dict(env or {})
        self.quiet = quiet
        self._shared_provider = provider_server
        self._own_provider: ProviderServer | None = None
        self._analyzers: list[AnalyzerServer] | None = None
        self._shared_analyzer = analyzer
        # Servers this stack started; stopped by close() or when the stack is collected.
        self._servers: list[ProviderServer | AnalyzerServer] = []
        self._finalizer = weakref.finalize(self, _stop_all, self._servers)
        self._configured: Mapping[str, str] | None = None
        self._server_lock = threading.Lock()
        self._analyzers_configured = False
        self._policy_warnings: list[str] = []

    # -- public operations --------------------------------------------------------------

    def preview(self) -> RunResult:
        """Check, Diff and policies; no Create/Update/Delete, no state write."""
        with self._run("preview") as result:
            state, _ = self._read_state()
            config = self._config()
            plan = self._pass(state, config, preview=True, raise_=False)
            self._plan_result(plan, state, result)
            if plan.error is not None:
                raise plan.error
            result.ok = not _mandatory(result.violations)
            result.outputs = _mask(plan.outputs)
        return result

    def up(self) -> RunResult:
        """Preview with policies, then the update (policies again); deletes what the
        program dropped and what an earlier replace left pending delete."""
        with self._run("up") as result:
            state, saved = self._read_state()
            config = self._config()
            plan = self._pass(state, config, preview=True, raise_=False)
            self._plan_result(plan, state, result)
            if plan.error is not None:
                raise plan.error
            mandatory = _mandatory(result.violations)
            if mandatory:
                result.ok = False
                raise PolicyViolationError(mandatory, result)
            if _nothing_to_do(plan, state, result) and _same_config(plan, saved, config):
                # The preview pass saw every resource unchanged and the same stack
                # outputs: the apply pass would write nothing, so skip it (and the
                # state write). This halves the cost of a no-op fleet reconcile.
                result.outputs = _mask(plan.outputs)
                return result
            self._apply(state, saved, config, result)
        return result

    def refresh(self) -> RunResult:
        """Read every resource back from the provider; report and store what drifted.

        The provider is configured with the config saved at the last ``up``, as the
        engine loads a resource's provider from state (Deployment.EnsureProvider).
        """
        with self._run("refresh") as result:
            state, saved = self._read_state()
            config = self._config(saved)
            kept: list[ResourceState] = []
            for resource in state.resources:
                if not (resource.dynamic and resource.custom):
                    kept.append(resource)
                    result.steps.append(Step(resource.urn, resource.type, "read"))
                    continue
                stub = self._provider(config.values).stub
                refreshed, drift = refresh(stub, resource)
                if refreshed is None:
                    result.steps.append(Step(resource.urn, resource.type, "delete"))
                    continue
                kept.append(refreshed)
                result.steps.append(Step(resource.urn, resource.type, "read", drift))
            state.resources = kept
            self._write_state(state, saved)
            result.outputs = _mask(state.outputs)
        return result

    def destroy(self) -> RunResult:
        """Delete every resource in state, last created first, with the provider
        configured from the config saved at the last ``up`` (as the engine does)."""
        with self._run("destroy") as result:
            state, saved = self._read_state()
            config = self._config(saved)
            try:
                for resource in reversed(list(state.resources)):
                    self._delete(resource, config)
                    state.resources.remove(resource)
                    result.steps.append(Step(resource.urn, resource.type, "delete"))
            finally:
                if not state.resources:
                    state.outputs = {}
                self._write_state(state, saved)
        return result

    def state(self) -> StackState:
        """The stored state (secrets as wrappers), e.g. for assertions in tests.

        The entry that holds the provider's config of the last ``up`` (the engine's
        default provider resource) is left out: ``resources`` are the program's.
        """
        return self._read_state()[0]

    def close(self) -> None:
        """Stop the servers this stack started (shared ones stay up)."""
        _stop_all(self._servers)
        self._servers.clear()
        self._own_provider = None
        self._analyzers = None
        self._analyzers_configured = False
        self._configured = None

    def __enter__(self) -> OfflineStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the update -----------------------------------------------------------------------

    def _apply(
        self,
        state: StackState,
        saved: Mapping[str, Any] | None,
        config: StackConfig,
        result: RunResult,
    ) -> None:
        """The apply pass of ``up``, its deletes, then the stack policies on the result.

        As deploymentExecutor.Execute: the steps (policies checked again, see
        EngineMocks), then the deletes (stepGenerator.GenerateDeletes: what the
        program dropped and every pending delete), then AnalyzeResources on the final
        outputs if nothing failed. What was done is saved even when a step fails.
        """
        applied = self._pass(state, config, preview=False, raise_=False)
        mocks = applied.mocks
        # `pulumi up` shows the preview's findings, then the update's
        # (PreviewThenPromptThenExecute); one that both passes report is listed once.
        result.violations = _distinct(result.violations, mocks.violations)
        result.steps = [r.step for r in mocks.registrations]
        new_state = StackState(self.project, self.stack, outputs=applied.outputs)
        new_state.resources = [r.resource for r in mocks.registrations]
        registered = {r.resource.urn for r in mocks.registrations}
        # CreateStep.Apply marks a replaced resource Delete before its delete runs:
        # until that delete succeeds it stays in state, pending delete.
        replaced = [dataclasses.replace(r, delete=True) for r in mocks.pending_deletes]
        pending = [r for r in state.resources if r.delete]
        removed = [r for r in state.resources if not r.delete and r.urn not in registered]
        # This run's provider has the new config; when the program registered no
        # dynamic resource, deletes go through the provider saved in state.
        provider = _provider_config(config) if applied.provider_used else saved
        delete_config = config if applied.provider_used else self._config(saved)
        if applied.error is not None:
            # Keep what exists: resources not reached this time stay in state.
            new_state.resources += [*replaced, *pending, *removed]
            new_state.outputs = state.outputs
            self._write_state(new_state, provider)
            raise applied.error
        to_delete = [*replaced, *pending, *reversed(removed)]
        done = 0
        try:
            for old in to_delete:
                self._delete(old, delete_config)
                done += 1
                if not any(old is r for r in replaced):  # a replace step shows those
                    result.steps.append(Step(old.urn, old.type, "delete"))
        finally:
            # What a failed delete left: replaced and pending ones stay pending delete,
            # dropped ones stay as they were.
            new_state.resources += to_delete[done:]
            self._write_state(new_state, provider)
        result.outputs = _mask(applied.outputs)
        final = self._analyze_stack([r.resource for r in mocks.registrations])
        result.violations = _distinct(result.violations, final)
        mandatory = _mandatory(final)
        if mandatory:
            result.ok = False
            raise PolicyViolationError(mandatory, result, stage="stack")

    # -- one pass of the program ----------------------------------------------------------

    def _pass(
        self, state: StackState, config: StackConfig, *, preview: bool, raise_: bool = True
    ) -> PassResult:
        started: list[ProviderServer] = []

        def provider() -> ProviderServer:
            # Started (and configured) on first use, once per pass.
            if not started:
                started.append(self._provider(config.values))
            return started[0]

        mocks = EngineMocks(
            project=self.project, stack=self.stack, prior=state, preview=preview,
            provider=provider, analyzers=self._policy_analyzers(),
        )
        outputs: dict[str, Any] = {}
        error: OfflineRunError | None = None
        try:
            outputs = contextvars.Context().run(self._execute, mocks, config, preview)
        except OfflineRunError as exc:
            error = exc
        except Exception as exc:  # the program's own failure, reported as the run's
            error = mocks.errors[0] if mocks.errors else OfflineRunError(
                f"the program failed: {type(exc).__name__}: {exc}"
            )
            # Keep the program's traceback: where in the user's code it failed.
            error.__cause__ = error.__cause__ or exc
        if error is None and mocks.errors:
            error = mocks.errors[0]
        if error is not None and raise_:
            raise error
        return PassResult(mocks, outputs, error, provider_used=bool(started))

    def _execute(self, mocks: EngineMocks, config: StackConfig, preview: bool) -> dict[str, Any]:
        """Runs inside a fresh contextvars.Context, so no run sees another's settings."""
        # Any program's dynamic resources (not only ours) pickle their provider with
        # the SDK's patch, which piles up across runs in one process: see sdk_patches.
        unwrap_batch_setitems()
        previous = _current_loop()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            pulumi.runtime.set_all_config(dict(config.values), list(config.secrets))
            pulumi.runtime.set_mocks(
                mocks, project=self.project, stack=self.stack, preview=preview,
                monitor=EngineMonitor(mocks),
            )
            SETTINGS.rpc_manager.clear()
            SETTINGS.outputs.clear()
            with self._program_env():
                _sync_await(run_pulumi_func(self._invoke_program))
            return _stack_outputs()
        finally:
            _close_loop(loop)
            _restore_loop(previous)

    def _invoke_program(self) -> Any:
        if callable(self.program):
            return self.program()
        assert self.program_file is not None
        runpy.run_path(str(self.program_file), run_name="__main__")
        return None

    @contextlib.contextmanager
    def _program_env(self) -> Iterator[None]:
        if self.program_dir is None:
            yield
            return
        cwd, path = os.getcwd(), list(sys.path)
        before = set(sys.modules)
        os.chdir(self.program_dir)
        sys.path.insert(0, str(self.program_dir))
        try:
            yield
        finally:
            os.chdir(cwd)
            sys.path[:] = path
            # Forget the program's own helper modules (top-level files beside
            # __main__.py) so that the next program dir imports its own. Packages
            # stay: classes already pickled by reference must keep their identity.
            for name in set(sys.modules) - before:
                module_file = getattr(sys.modules[name], "__file__", None) or ""
                if "." not in name and Path(module_file).parent == self.program_dir:
                    del sys.modules[name]

    # -- helpers ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _run(self, operation: str) -> Iterator[RunResult]:
        result = RunResult(operation=operation, project=self.project, stack=self.stack)
        with _RUN_LOCK, self._state_lock(operation):
            if not self.quiet:
                print(f"[{HEADER}] {operation} {self.project}/{self.stack}", flush=True)
            try:
                yield result
            except OfflineRunError as exc:
                result.ok = False
                if exc.result is None:
                    # What the operation did before it stopped, for callers that report
                    # the steps and findings of a failed run too.
                    exc.result = result
                raise
            except BaseException:
                result.ok = False
                raise
            if not self.quiet:
                print(result.report(), flush=True)

    def _plan_result(self, plan: PassResult, state: StackState, result: RunResult) -> None:
        """The preview's steps (deletes included) and policies (AnalyzeStack on the
        planned states, as the engine's preview runs it).

        After a failed step only what ran before it: the engine generates the deletes
        when the program has finished, and deploymentExecutor.Execute skips
        AnalyzeResources when a step failed."""
        mocks = plan.mocks
        result.steps = [r.step for r in mocks.registrations]
        result.violations = list(mocks.violations)
        result.warnings = list(self._policy_warnings)
        if plan.error is not None:
            return
        registered = {r.resource.urn for r in mocks.registrations}
        result.steps += [
            Step(r.urn, r.type, "delete")
            for r in reversed(state.resources)
            if r.delete or r.urn not in registered
        ]
        result.violations += self._analyze_stack([r.resource for r in mocks.registrations])

    def _analyze_stack(self, resources: Sequence[ResourceState]) -> list[Violation]:
        """AnalyzeStack on each resource's outputs, ``__`` keys left out."""
        found: list[Violation] = []
        analyzers = self._policy_analyzers()
        if not analyzers:
            return found
        stack = [
            {"type": r.type, "urn": r.urn, "name": r.name,
             "properties": policy_properties(r.outputs)}
            for r in resources
        ]
        for analyzer in analyzers:
            try:
                diagnostics = analyzer.analyze_stack(stack)
            except grpc.RpcError as exc:
                raise analyzer_error("", exc) from None
            found += violations_from(diagnostics)
        return found

    def _config(self, saved: Mapping[str, Any] | None = None) -> StackConfig:
        """The stack config, checked; with ``saved``, the provider's config of the last up."""
        values, secrets = assemble_config(self._project, self.config, self.stack)
        if not saved:
            return StackConfig(values, tuple(secrets))
        return StackConfig(
            {k: str(v) for k, v in unwrap_all(saved).items()}, tuple(sorted(secret_keys(saved)))
        )

    def _provider(self, config: Mapping[str, str]) -> ProviderServer:
        # Not _RUN_LOCK: registrations call this from the SDK's worker threads
        # while the running operation holds that lock.
        with self._server_lock:
            if self._shared_provider is not None:
                # A shared host keeps the config it first loaded the provider with;
                # see docs/ARCHITECTURE.md.
                self._shared_provider.configure(config)
                return self._shared_provider
            if self._own_provider is not None and self._configured != config:
                # The dynamic host configures a provider once, when it first loads
                # it: other config needs a new host, as each CLI run starts its own.
                self._own_provider.stop()
                self._servers.remove(self._own_provider)
                self._own_provider = None
            if self._own_provider is None:
                server = ProviderServer(env=self.env, cwd=self.program_dir, project=self.project)
                self._track(server)
                # The whole stack config, secrets in clear: the dynamic host answers
                # Configure with acceptSecrets=False, as under the engine.
                server.configure(config)
                self._own_provider, self._configured = server, dict(config)
            return self._own_provider

    def _policy_analyzers(self) -> list[AnalyzerServer]:
        if self._analyzers is None:
            analyzers: list[AnalyzerServer] = []
            if self._shared_analyzer is not None:
                analyzers.append(self._shared_analyzer)
            for pack in self.policy_packs:
                server = AnalyzerServer(pack, env=self.env or None)
                self._track(server)
                analyzers.append(server)
            self._analyzers = analyzers
        if not self._analyzers_configured:
            if self.policy_config is not None or self.policy_packs:
                self._policy_warnings = _configure_analyzers(
                    [a for a in self._analyzers
                     if a is not self._shared_analyzer or self.policy_config is not None],
                    self.policy_config or {},
                )
            self._analyzers_configured = True
        return self._analyzers

    def _track(self, server: ProviderServer | AnalyzerServer) -> None:
        self._servers.append(server)

    def _delete(self, resource: ResourceState, config: StackConfig) -> None:
        if resource.dynamic and resource.custom:
            delete(self._provider(config.values).stub, resource)

    def _read_state(self) -> tuple[StackState, dict[str, Any] | None]:
        """The stored state, and the provider config saved at the last up (or None)."""
        state = self._load()
        return state, (dict(state.provider_config) or None)

    def _write_state(self, state: StackState, provider: Mapping[str, Any] | None) -> None:
        # The engine keeps its default provider (and so this config) while resources use it.
        in_use = provider is not None and any(r.dynamic for r in state.resources)
        state.provider_config = dict(provider) if in_use and provider is not None else {}
        self._save(state)

    def _state_lock(self, operation: str) -> contextlib.AbstractContextManager[None]:
        # Held from load to save, so a second process cannot interleave (see
        # state.py). A preview writes nothing and saves are atomic, so it reads a
        # whole file without waiting for (or blocking) a run.
        if self.state_file is None or operation == "preview":
            return contextlib.nullcontext()
        return self.state_file.locked()

    def _load(self) -> StackState:
        if self.state_file is not None:
            return self.state_file.load(self.project, self.stack)
        if self._memory_state is None:
            return StackState(self.project, self.stack)
        return _copy_state(self._memory_state)

    def _save(self, state: StackState) -> None:
        if self.state_file is not None:
            self.state_file.save(state, tool=HEADER)
        else:
            self._memory_state = _copy_state(state)


# -- module helpers ---------------------------------------------------------------------


def _program_paths(path: Path) -> tuple[Path, Path]:
    path = path.resolve()
    main = path / "__main__.py" if path.is_dir() else path
    if not main.is_file():
        raise OfflineRunError(
            f"no Pulumi program at {path}: expected a directory with __main__.py or a .py file"
        )
    return main, main.parent


def _configure_analyzers(
    analyzers: list[AnalyzerServer], raw: Mapping[str, Any]
) -> list[str]:
    """Configure every pack as the CLI does (see policy_config); returns the warnings."""
    settings = policy_config.parse(raw)
    infos = [analyzer.info() for analyzer in analyzers]
    warnings = policy_config.check_names(settings, infos) if analyzers else []
    for analyzer, info in zip(analyzers, infos, strict=True):
        analyzer.apply(policy_config.reconcile(info, settings))
    return warnings


def _stop_all(servers: list[ProviderServer | AnalyzerServer]) -> None:
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


def _stack_outputs() -> dict[str, Any]:
    """``pulumi.export`` values, resolved; secret ones as secret wrappers, unknown ones
    (a preview's computed values) as UNKNOWN. Only those the engine would receive."""
    root = get_root_resource()
    exported = getattr(root, "outputs", {}) or {}
    registered = _registered_output_names(exported)
    result: dict[str, Any] = {}
    for name, value in exported.items():
        if name not in registered:
            continue
        output = pulumi.Output.from_input(value)
        if not _sync_await(output.is_known()):
            result[name] = UNKNOWN
            continue
        resolved = _sync_await(output.future())
        secret = _sync_await(output.is_secret())
        result[name] = wrap_secret(resolved) if secret else resolved
    return result


def _registered_output_names(exported: Mapping[str, Any]) -> set[str]:
    """The names of the stack outputs that reach the engine.

    The SDK registers the exports as Stack._finish does (stack.massage, then
    register_resource_outputs' rpc.serialize_properties), and serialize_properties
    drops every top-level property that serializes to None: ``export("x", None)``
    is no stack output under the CLI. The SDK's own functions decide it here.
    """
    serialized = _sync_await(rpc.serialize_properties(massage(dict(exported), []), {}))
    return set(serialized.keys())


def _nothing_to_do(plan: PassResult, state: StackState, result: RunResult) -> bool:
    return (
        plan.error is None
        and not plan.mocks.pending_deletes
        and all(step.op == "same" for step in result.steps)
        and plan.outputs == state.outputs
    )


def _same_config(
    plan: PassResult, saved: Mapping[str, Any] | None, config: StackConfig
) -> bool:
    """Whether the provider config saved at the last up is this run's (a changed one
    is saved by the update, as the engine updates its default provider)."""
    if not plan.provider_used:
        return True
    return saved is not None and unwrap_all(dict(saved)) == dict(config.values)


def _provider_config(config: StackConfig) -> dict[str, Any]:
    """What the engine's default provider resource holds as inputs: the whole stack
    config (Target.GetPackageConfig gives a dynamic provider all of it), secrets
    kept secret, and credential-like keys too even when given plain."""
    return {
        key: wrap_secret(value) if key in config.secrets or _CREDENTIAL.search(key) else value
        for key, value in config.values.items()
    }


def _mask(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: MASK if is_secret(v) else v for k, v in outputs.items()}


def _distinct(*findings: Sequence[Violation]) -> list[Violation]:
    """The findings in order, each (policy, level, message, resource) once."""
    return list(dict.fromkeys(v for group in findings for v in group))


def _mandatory(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.level == "mandatory"]


def _copy_state(state: StackState) -> StackState:
    import copy

    return copy.deepcopy(state)


def _current_loop() -> asyncio.AbstractEventLoop | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return asyncio.get_event_loop()
        except RuntimeError:  # a worker thread without a loop
            return None


def _restore_loop(previous: asyncio.AbstractEventLoop | None) -> None:
    if previous is None and threading.current_thread() is threading.main_thread():
        # The main thread must keep a current loop: a later set_mocks (in this
        # process's tests, say) fails with "There is no current event loop".
        previous = asyncio.new_event_loop()
    asyncio.set_event_loop(previous)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    with contextlib.suppress(Exception):
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
