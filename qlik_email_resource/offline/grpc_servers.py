"""Pulumi's own servers, started the way the engine starts them, without the CLI.

``ProviderServer`` runs ``python -u -m pulumi.dynamic`` (the real dynamic provider
host) and ``AnalyzerServer`` runs a policy pack's ``__main__.py`` (the real
pulumi-policy analyzer). Both print their port on stdout and serve gRPC on
127.0.0.1. The offline runner, the tests and the benchmarks all use these two
classes, so every path through the provider and the pack is the engine's path
(the engine's calls to one resource: ``provider_driver.ProviderDriver``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import (
    analyzer_pb2,
    analyzer_pb2_grpc,
    plugin_pb2,
    provider_pb2,
    provider_pb2_grpc,
)

from qlik_email_resource.offline import lifetime

START_TIMEOUT = 30.0
# Set to 1 to keep each server's stderr file (qlik-grpc-*.log in the temp dir) after it stops.
KEEP_LOGS_ENV = "QLIK_KEEP_SERVER_LOGS"


def to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    """Marshal a property bag as the engine does (secrets stay wrapped)."""
    # serialize_properties is async; a private loop keeps the caller's loop (and
    # pulumi's mocks, which need a current loop on the main thread) untouched.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(dict(props), {}))
    finally:
        loop.close()


def from_struct(struct: struct_pb2.Struct, keep_unknowns: bool = False) -> dict[str, Any]:
    """Unmarshal a Struct; secret values come back as ``{sig: secret, value: ...}`` wrappers."""
    result = rpc.deserialize_properties(struct, keep_unknowns=keep_unknowns)
    return dict(result) if result else {}


class _Subprocess:
    """A server that announces its port on the first stdout line.

    It dies with this process, even when this process is killed (see
    lifetime.py). Its stderr goes to a file that disappears when the server
    stops, unless ``keep_log`` (or ``QLIK_KEEP_SERVER_LOGS=1``) asks to keep it.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        keep_log: bool | None = None,
    ) -> None:
        keep = keep_logs() if keep_log is None else keep_log
        self._log, self.stderr_path = _open_log(keep)
        self._final_log: str | None = None
        self.proc = lifetime.start(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        # A server whose owner forgets stop() (or dies of an exception) must not
        # outlive this process: `python -m pulumi.dynamic` serves until killed.
        weakref.finalize(self, _terminate, self.proc)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(
                f"{argv[-1]} did not start (first line {line!r}); its stderr:\n{self.stderr()}"
            )
        self.port = int(line)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT)

    def stderr(self) -> str:
        """Everything the server wrote to stderr so far (for leak scans and errors)."""
        if self._final_log is not None:
            return self._final_log
        return _read_all(self._log.fileno())

    def stop(self) -> None:
        channel = getattr(self, "channel", None)
        if channel is not None:
            channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if not self._log.closed:
            # Kept in memory for stderr(); the file itself goes now unless kept.
            self._final_log = _read_all(self._log.fileno())
            self._log.close()

    def __enter__(self) -> _Subprocess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def keep_logs() -> bool:
    """Whether ``QLIK_KEEP_SERVER_LOGS`` asks to keep the servers' stderr files."""
    return os.environ.get(KEEP_LOGS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _open_log(keep: bool) -> tuple[IO[bytes], str | None]:
    if keep:
        named = tempfile.NamedTemporaryFile(  # noqa: SIM115 - open as long as the server runs
            prefix="qlik-grpc-", suffix=".log", delete=False
        )
        return named, named.name
    # No name at all (unlinked at once): nothing to clean up, even after a SIGKILL.
    return tempfile.TemporaryFile(prefix="qlik-grpc-", suffix=".log"), None


def _read_all(fd: int) -> str:
    # pread, not read: the server writes through a descriptor that shares our file
    # offset, and moving it would make the server overwrite what it wrote.
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode(errors="replace")


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _child_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


class ProviderServer(_Subprocess):
    """The real dynamic-provider host, ``python -u -m pulumi.dynamic``.

    ``env`` reaches the provider process: that is where ``QLIK_*`` credentials
    are read at call time, exactly as under ``pulumi up``.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        project: str = "project",
        keep_log: bool | None = None,
    ) -> None:
        child_env = _child_env(env)
        child_env.setdefault("PULUMI_PROJECT", project)
        super().__init__(
            [sys.executable, "-u", "-m", "pulumi.dynamic"], cwd=cwd, env=child_env,
            keep_log=keep_log,
        )
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def configure(self, config: Mapping[str, str]) -> provider_pb2.ConfigureResponse:
        """Send provider configuration (``qlik:apiKey`` ...) before the first CRUD call."""
        args = struct_pb2.Struct()
        args.update(dict(config))
        return self.stub.Configure(
            provider_pb2.ConfigureRequest(variables=dict(config), args=args)
        )

    def plugin_info(self) -> plugin_pb2.PluginInfo:
        return self.stub.GetPluginInfo(empty_pb2.Empty())


class AnalyzerServer(_Subprocess):
    """A policy pack's real analyzer server (``python <pack>/__main__.py``)."""

    def __init__(
        self,
        pack_dir: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        keep_log: bool | None = None,
    ) -> None:
        pack = Path(pack_dir).resolve()
        super().__init__(
            [sys.executable, "-u", str(pack / "__main__.py")], cwd=pack, env=_child_env(env),
            keep_log=keep_log,
        )
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)
        self._info: analyzer_pb2.AnalyzerInfo | None = None
        self._applied: analyzer_pb2.ConfigureAnalyzerRequest | None = None

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        # A running pack's policies never change: ask once (a fleet asks per stack).
        if self._info is None:
            self._info = self.stub.GetAnalyzerInfo(empty_pb2.Empty())
        return self._info

    def configure(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Configure the pack as the CLI does: schema defaults, then the user's values.

        ``overrides`` maps a policy name to ``{"enforcementLevel": ..., <property>: ...}``,
        the shape of a ``--policy-pack-config`` file.
        """
        self.apply(policy_config_from_info(self.info(), overrides or {}))

    def apply(self, request: analyzer_pb2.ConfigureAnalyzerRequest) -> None:
        """Send a configuration unless it is the one the pack already runs with."""
        if request != self._applied:
            self.stub.Configure(request)
            self._applied = request

    def analyze(
        self, *, type_: str, urn: str, name: str, properties: Mapping[str, Any]
    ) -> list[analyzer_pb2.AnalyzeDiagnostic]:
        request = analyzer_pb2.AnalyzeRequest(
            type=type_, urn=urn, name=name, properties=to_struct(properties)
        )
        return list(self.stub.Analyze(request).diagnostics)

    def analyze_stack(
        self, resources: Sequence[Mapping[str, Any]]
    ) -> list[analyzer_pb2.AnalyzeDiagnostic]:
        """``resources``: dicts with ``type``, ``urn``, ``name`` and ``properties``."""
        request = analyzer_pb2.AnalyzeStackRequest(
            resources=[
                analyzer_pb2.AnalyzerResource(
                    type=r["type"], urn=r["urn"], name=r["name"],
                    properties=to_struct(r["properties"]),
                )
                for r in resources
            ]
        )
        return list(self.stub.AnalyzeStack(request).diagnostics)


_LEVELS = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "disabled": analyzer_pb2.DISABLED,
    "remediate": analyzer_pb2.REMEDIATE,
}


def policy_config_from_info(
    info: analyzer_pb2.AnalyzerInfo, overrides: Mapping[str, Mapping[str, Any]]
) -> analyzer_pb2.ConfigureAnalyzerRequest:
    """Rebuild what the CLI sends: every policy's schema defaults overlaid by ``overrides``.

    The pack does not apply JSON-schema defaults itself; the CLI does, so a test
    that skipped this would run the rules with no settings at all.
    """
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    unknown = set(overrides) - {p.name for p in info.policies}
    if unknown:
        raise ValueError(f"policy config names unknown policies: {sorted(unknown)}")
    for policy in info.policies:
        schema = json_format.MessageToDict(policy.configSchema.properties)
        props: dict[str, Any] = {
            key: spec["default"] for key, spec in schema.items() if "default" in spec
        }
        level = policy.enforcementLevel
        for key, value in overrides.get(policy.name, {}).items():
            if key == "enforcementLevel":
                level = _LEVELS[str(value)]
            else:
                props[key] = value
        config = analyzer_pb2.PolicyConfig(enforcementLevel=level)
        config.properties.update(props)
        request.policyConfig[policy.name].CopyFrom(config)
    return request
