"""``OfflineStack``: preview / up / refresh / destroy without the Pulumi CLI.

The program runs under ``pulumi.runtime`` mocks; ``EngineMocks`` forwards its
dynamic resources to the real provider server and every resource to the real
policy analyzers. ``up`` runs the program twice, as ``pulumi up`` does (a
preview, then the update): the preview pass runs Check, Diff and the policies,
and a mandatory violation stops the run before anything is written.

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
import os
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
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import SETTINGS, get_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from qlik_email_resource.testing.grpc_servers import AnalyzerServer, ProviderServer
from qlik_email_resource.testing.mocks import (
    PROVIDER_KEY,
    EngineMocks,
    analyzer_error,
    call_provider,
    delete,
    violations_from,
)
from qlik_email_resource.testing.project import ProjectConfig, assemble_config, load_project
from qlik_email_resource.testing.results import (
    HEADER,
    OfflineRunError,
    PolicyViolationError,
    RunResult,
    Step,
    Violation,
)
from qlik_email_resource.testing.state import (
    ResourceState,
    StackState,
    StateFile,
    is_secret,
    rewrap,
    secret_keys,
    unwrap_all,
)

Program = Callable[[], Any] | str | os.PathLike[str]

_RUN_LOCK = threading.RLock()
MASK = "[secret]"


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
        policy_config: Mapping[str, Mapping[str, Any]] | None = None,
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

    # -- public operations --------------------------------------------------------------

    def preview(self) -> RunResult:
        """Check, Diff and policies; no Create/Update/Delete, no state write."""
        with self._run("preview") as result:
            state = self._load()
            plan = self._pass(state, preview=True, analyze=True)
            self._finish_plan(plan, state, result)
            result.ok = not _mandatory(result.violations)
            result.outputs = _mask(plan[1])
        return result

    def up(self) -> RunResult:
        """Preview with policies, then the update; deletes resources the program dropped."""
        with self._run("up") as result:
            state = self._load()
            plan = self._pass(state, preview=True, analyze=True)
            self._finish_plan(plan, state, result)
            mandatory = _mandatory(result.violations)
            if mandatory:
                result.ok = False
                raise PolicyViolationError(mandatory, result)
            if _nothing_to_do(plan, state, result):
                # The preview pass saw every resource unchanged and the same stack
                # outputs: the apply pass would write nothing, so skip it (and the
                # state write). This halves the cost of a no-op fleet reconcile.
                result.outputs = _mask(plan[1])
                return result
            result.steps = []
            mocks, outputs, error = self._pass(state, preview=False, analyze=False, raise_=False)
            new_state = StackState(self.project, self.stack, outputs=outputs)
            registered = {r.resource.urn for r in mocks.registrations}
            new_state.resources = [r.resource for r in mocks.registrations]
            result.steps = [r.step for r in mocks.registrations]
            if error is not None:
                # Keep what exists: resources not reached this time stay in state.
                new_state.resources += [r for r in state.resources if r.urn not in registered]
                new_state.outputs = state.outputs
                self._save(new_state)
                raise error
            try:
                removed = [r for r in state.resources if r.urn not in registered]
                for old in [*mocks.pending_deletes, *reversed(removed)]:
                    self._delete(old)
                    if old in removed:
                        result.steps.append(Step(old.urn, old.type, "delete"))
            except OfflineRunError:
                gone = {s.urn for s in result.steps if s.op == "delete"}
                new_state.resources += [r for r in removed if r.urn not in gone]
                raise
            finally:
                self._save(new_state)
            result.outputs = _mask(outputs)
        return result

    def refresh(self) -> RunResult:
        """Read every resource back from the provider; report and store what drifted."""
        with self._run("refresh") as result:
            state = self._load()
            kept: list[ResourceState] = []
            for resource in state.resources:
                if not (resource.dynamic and resource.custom):
                    kept.append(resource)
                    result.steps.append(Step(resource.urn, resource.type, "read"))
                    continue
                refreshed = self._read(resource)
                if refreshed is None:
                    result.steps.append(Step(resource.urn, resource.type, "delete"))
                    continue
                kept.append(refreshed)
                drift = _drift(resource.outputs, refreshed.outputs)
                result.steps.append(Step(resource.urn, resource.type, "read", drift))
            state.resources = kept
            self._save(state)
            result.outputs = _mask(state.outputs)
        return result

    def destroy(self) -> RunResult:
        """Delete every resource in state, last created first."""
        with self._run("destroy") as result:
            state = self._load()
            try:
                for resource in reversed(list(state.resources)):
                    self._delete(resource)
                    state.resources.remove(resource)
                    result.steps.append(Step(resource.urn, resource.type, "delete"))
            finally:
                if not state.resources:
                    state.outputs = {}
                self._save(state)
        return result

    def state(self) -> StackState:
        """The stored state (secrets as wrappers), e.g. for assertions in tests."""
        return self._load()

    def close(self) -> None:
        """Stop the servers this stack started (shared ones stay up)."""
        _stop_all(self._servers)
        self._servers.clear()
        self._own_provider = None
        self._analyzers = None
        self._configured = None

    def __enter__(self) -> OfflineStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one pass of the program ----------------------------------------------------------

    def _pass(
        self, state: StackState, *, preview: bool, analyze: bool, raise_: bool = True
    ) -> tuple[EngineMocks, dict[str, Any], OfflineRunError | None]:
        config, secret_config = assemble_config(self._project, self.config, self.stack)
        started: list[ProviderServer] = []

        def provider() -> ProviderServer:
            # Started (and configured) on first use, once per pass.
            if not started:
                started.append(self._provider(config))
            return started[0]

        mocks = EngineMocks(
            project=self.project, stack=self.stack, prior=state, preview=preview,
            provider=provider,
            analyzers=self._policy_analyzers() if analyze else [],
        )
        outputs: dict[str, Any] = {}
        error: OfflineRunError | None = None
        try:
            outputs = contextvars.Context().run(
                self._execute, mocks, config, secret_config, preview
            )
        except OfflineRunError as exc:
            error = exc
        except Exception as exc:  # the program's own failure, reported as the run's
            error = mocks.errors[0] if mocks.errors else OfflineRunError(
                f"the program failed: {type(exc).__name__}: {exc}"
            )
        if error is None and mocks.errors:
            error = mocks.errors[0]
        if error is not None and raise_:
            raise error
        return mocks, outputs, error

    def _execute(
        self, mocks: EngineMocks, config: dict[str, str], secret_config: list[str], preview: bool
    ) -> dict[str, Any]:
        """Runs inside a fresh contextvars.Context, so no run sees another's settings."""
        previous = _current_loop()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            pulumi.runtime.set_all_config(config, secret_config)
            pulumi.runtime.set_mocks(
                mocks, project=self.project, stack=self.stack, preview=preview,
                monitor=MockMonitor(mocks),
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
            except BaseException:
                result.ok = False
                raise
            if not self.quiet:
                print(result.report(), flush=True)

    def _finish_plan(
        self,
        plan: tuple[EngineMocks, dict[str, Any], OfflineRunError | None],
        state: StackState,
        result: RunResult,
    ) -> None:
        mocks = plan[0]
        registered = {r.resource.urn for r in mocks.registrations}
        result.steps = [r.step for r in mocks.registrations] + [
            Step(r.urn, r.type, "delete")
            for r in reversed(state.resources)
            if r.urn not in registered
        ]
        result.violations = list(mocks.violations)
        analyzers = self._policy_analyzers()
        if analyzers:
            resources = [
                {
                    "type": r.resource.type, "urn": r.resource.urn, "name": r.resource.name,
                    "properties": r.resource.outputs,
                }
                for r in mocks.registrations
            ]
            for analyzer in analyzers:
                try:
                    diagnostics = analyzer.analyze_stack(resources)
                except grpc.RpcError as exc:
                    raise analyzer_error("", exc) from None
                result.violations += violations_from(diagnostics)

    def _provider(self, config: Mapping[str, str]) -> ProviderServer:
        # Not _RUN_LOCK: registrations call this from the SDK's worker threads
        # while the running operation holds that lock.
        with self._server_lock:
            if self._shared_provider is not None:
                server = self._shared_provider
            else:
                if self._own_provider is None:
                    self._own_provider = ProviderServer(
                        env=self.env, cwd=self.program_dir, project=self.project
                    )
                    self._track(self._own_provider)
                server = self._own_provider
            # The dynamic host gets the whole stack config, secrets in clear: it
            # answers Configure with acceptSecrets=False, as under the engine. It
            # configures a provider once, on first load; see docs/ARCHITECTURE.md.
            if server is not self._shared_provider and self._configured != config:
                server.configure(config)
                self._configured = dict(config)
            elif server is self._shared_provider:
                server.configure(config)
            return server

    def _policy_analyzers(self) -> list[AnalyzerServer]:
        if self._analyzers is None:
            analyzers: list[AnalyzerServer] = []
            if self._shared_analyzer is not None:
                analyzers.append(self._shared_analyzer)
            for pack in self.policy_packs:
                server = AnalyzerServer(pack, env=self.env or None)
                self._track(server)
                analyzers.append(server)
            if self.policy_config is not None or self.policy_packs:
                _configure_analyzers(
                    [a for a in analyzers
                     if a is not self._shared_analyzer or self.policy_config is not None],
                    self.policy_config or {},
                )
            self._analyzers = analyzers
        return self._analyzers

    def _track(self, server: ProviderServer | AnalyzerServer) -> None:
        self._servers.append(server)

    def _read(self, resource: ResourceState) -> ResourceState | None:
        from pulumi.runtime.proto import provider_pb2

        from qlik_email_resource.testing.grpc_servers import from_struct, to_struct

        config, _ = assemble_config(self._project, self.config, self.stack)
        stub = self._provider(config).stub
        answer = call_provider(
            "read", resource.urn, stub.Read,
            provider_pb2.ReadRequest(
                id=resource.id, urn=resource.urn, name=resource.name, type=resource.type,
                properties=to_struct(unwrap_all(resource.outputs)),
                inputs=to_struct(unwrap_all(resource.inputs)),
            ),
        )
        if not answer.id:
            return None
        outputs = from_struct(answer.properties)
        keys = secret_keys(resource.outputs) | secret_keys(resource.inputs) | secret_keys(outputs)
        inputs = resource.inputs
        if answer.HasField("inputs") and answer.inputs.fields:
            read_inputs = from_struct(answer.inputs)
            keys |= secret_keys(read_inputs)
            inputs = rewrap(unwrap_all(read_inputs), keys)
        return ResourceState(
            urn=resource.urn, type=resource.type, name=resource.name, custom=resource.custom,
            dynamic=resource.dynamic, id=answer.id, inputs=inputs,
            outputs=rewrap(unwrap_all(outputs), keys),
        )

    def _delete(self, resource: ResourceState) -> None:
        if resource.dynamic and resource.custom:
            config, _ = assemble_config(self._project, self.config, self.stack)
            delete(self._provider(config).stub, resource)

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
    analyzers: list[AnalyzerServer], overrides: Mapping[str, Mapping[str, Any]]
) -> None:
    from qlik_email_resource.testing.grpc_servers import policy_config_from_info

    known: set[str] = set()
    for analyzer in analyzers:
        info = analyzer.info()
        names = {p.name for p in info.policies}
        known |= names
        mine = {k: v for k, v in overrides.items() if k in names}
        analyzer.apply(policy_config_from_info(info, mine))
    unknown = set(overrides) - known
    if unknown and analyzers:
        raise OfflineRunError(
            f"policy_config names policies that no policy pack defines: {sorted(unknown)}"
        )


def _stop_all(servers: list[ProviderServer | AnalyzerServer]) -> None:
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


def _stack_outputs() -> dict[str, Any]:
    """``pulumi.export`` values, resolved; secret ones as secret wrappers."""
    from qlik_email_resource.testing.state import wrap_secret

    root = get_root_resource()
    exported = getattr(root, "outputs", {}) or {}
    result: dict[str, Any] = {}
    for name, value in exported.items():
        output = pulumi.Output.from_input(value)
        resolved = _sync_await(output.future())
        secret = _sync_await(output.is_secret())
        result[name] = wrap_secret(resolved) if secret else resolved
    return result


def _nothing_to_do(
    plan: tuple[EngineMocks, dict[str, Any], OfflineRunError | None],
    state: StackState,
    result: RunResult,
) -> bool:
    mocks, outputs, error = plan
    return (
        error is None
        and not mocks.pending_deletes
        and all(step.op == "same" for step in result.steps)
        and outputs == state.outputs
    )


def _mask(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: MASK if is_secret(v) else v for k, v in outputs.items()}


def _mandatory(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.level == "mandatory"]


def _drift(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    plain_old, plain_new = unwrap_all(old), unwrap_all(new)
    keys = (set(plain_old) | set(plain_new)) - {PROVIDER_KEY}
    return tuple(sorted(k for k in keys if plain_old.get(k) != plain_new.get(k)))


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
