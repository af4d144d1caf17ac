"""The real Pulumi CLI in tests: where it is, a private environment, stacks of a program.

What runs here is real Pulumi, except where noted:
- `pulumi` is the CLI and engine of the pinned version (`make cli` builds it into
  .tools/bin from Pulumi's Go modules; a pinned install on PATH is used instead),
  with a file backend and the passphrase secrets provider, all under a temp dir.
- The dynamic provider plugin is Pulumi's own `pulumi-resource-pulumi-python`.
- There is no Python language host (`pulumi-language-python`, not served to our
  machines): programs run as Automation API inline programs that execute the
  program's own `__main__.py`, and a Python policy pack runs as an executable
  analyzer plugin through a two-line launcher of ours
  (`qlik_email_resource.fleet.pulumi_cli`; docs/cli.md says why).

Use::

    from tests.cli.clienv import CliEnv, needs_cli

    pytestmark = needs_cli

    def test_x(tmp_path, qlik_emulator):
        cli = CliEnv.create(tmp_path)
        project = cli.project(REPO)              # a copy of Pulumi.yaml, __main__.py, ...
        stack = project.stack("tenant-a")        # pulumi.automation.Stack, created or selected
        project.configure("tenant-a", {"qlik:tenantUrl": url}, secrets={"qlik:apiKey": key})
        stack.up(policy_packs=[cli.policy_pack(REPO / "policies")], ...)
        project.pulumi("stack", "export", "--stack", "tenant-a")   # any CLI command
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qlik_email_resource.fleet import pulumi_cli

REPO = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO / ".tools" / "bin"
PROVIDER_PLUGIN = "pulumi-resource-pulumi-python"
# Only protects throw-away test backends.
PASSPHRASE = "cli-tests-only"


def search_path() -> str:
    """PATH with the CLI that `make cli` built after whatever PATH already offers."""
    return os.pathsep.join([os.environ.get("PATH", ""), str(TOOLS_BIN)])


def find_cli() -> str | None:
    """The `pulumi` to test with: PATH first (`make test` puts .tools/bin there)."""
    return shutil.which("pulumi", path=search_path())


def why_no_cli() -> str | None:
    """One line saying why the CLI tests cannot run here, or None when they can."""
    pulumi = find_cli()
    if pulumi is None:
        return "the Pulumi CLI is not on PATH nor built in .tools/bin (run `make cli`)"
    beside = Path(pulumi).resolve().parent / PROVIDER_PLUGIN
    if not beside.exists() and shutil.which(PROVIDER_PLUGIN, path=search_path()) is None:
        return f"{PROVIDER_PLUGIN} is not beside {pulumi} nor on PATH (run `make cli`)"
    return None


needs_cli = pytest.mark.skipif(why_no_cli() is not None, reason=why_no_cli() or "")


@dataclass
class CliEnv:
    """One CLI environment: its own PULUMI_HOME, file backend and passphrase."""

    pulumi: str
    workdir: Path
    environ: dict[str, str]

    @classmethod
    def create(cls, workdir: Path) -> CliEnv:
        pulumi = find_cli()
        if pulumi is None:
            pytest.skip(why_no_cli() or "no Pulumi CLI")
        workdir = workdir.resolve()
        for sub in ("home", "backend"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        environ = {
            "PATH": os.pathsep.join([str(Path(pulumi).parent), os.environ.get("PATH", "")]),
            "PULUMI_HOME": str(workdir / "home"),
            "PULUMI_BACKEND_URL": (workdir / "backend").as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            # Nothing may be fetched: a missing plugin must fail, not hang on the network.
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            **pulumi_cli.plugin_environ(),
        }
        return cls(pulumi=pulumi, workdir=workdir, environ=environ)

    @property
    def backend_dir(self) -> Path:
        return self.workdir / "backend"

    def full_environ(self) -> dict[str, str]:
        return {**os.environ, **self.environ}

    def command(self) -> Any:
        """The Automation API's handle on this CLI (it checks the version once)."""
        from pulumi import automation as auto

        return auto.PulumiCommand(root=str(Path(self.pulumi).parent.parent))

    def policy_pack(self, pack_dir: Path) -> str:
        """The ``--policy-pack`` argument for a Python pack directory."""
        return pulumi_cli.policy_pack_for_cli(pack_dir, self.workdir, self.pulumi)

    def project(self, program_dir: Path, name: str = "project") -> CliProject:
        """A working copy of a program directory; its stack files land in the copy."""
        return CliProject(self, Path(program_dir), self.workdir / name)


class CliProject:
    """A copy of a Pulumi program directory whose stacks the real CLI runs.

    Copies Pulumi.yaml, __main__.py and the Pulumi.<stack>.yaml files, so that
    `stack init` and `config set` never write into the repository.
    """

    def __init__(self, cli: CliEnv, program_dir: Path, work_dir: Path) -> None:
        self.cli = cli
        self.dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        for source in program_dir.glob("Pulumi*.yaml"):
            shutil.copyfile(source, work_dir / source.name)
        shutil.copyfile(program_dir / "__main__.py", work_dir / "__main__.py")
        self._command: Any = None
        self._stacks: dict[str, Any] = {}

    def stack(self, name: str) -> Any:
        """The stack ``name`` (a ``pulumi.automation.Stack``), created on first use."""
        from pulumi import automation as auto

        if name not in self._stacks:
            if self._command is None:
                self._command = self.cli.command()
            workspace = auto.LocalWorkspace(
                work_dir=str(self.dir),
                program=pulumi_cli.program_from_file(self.dir / "__main__.py"),
                env_vars=self.cli.environ,
                pulumi_command=self._command,
            )
            self._stacks[name] = auto.Stack.create_or_select(name, workspace)
        return self._stacks[name]

    def pulumi(
        self, *args: str, stdin: str | None = None, ok: bool | None = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the CLI in the project dir; ``ok``: expect success, failure, or None: either."""
        # A value on stdin is read as piped input; --non-interactive would refuse it.
        flags = [] if stdin is not None else ["--non-interactive"]
        done = subprocess.run(
            [self.cli.pulumi, *flags, "--color", "never", *args],
            cwd=self.dir, env=self.cli.full_environ(), input=stdin,
            capture_output=True, text=True, timeout=300, check=False,
        )
        if ok is not None:
            assert (done.returncode == 0) == ok, done.stdout + done.stderr
        return done

    def configure(
        self, stack: str, values: dict[str, Any], secrets: dict[str, str] | None = None
    ) -> None:
        """`pulumi config set`; secrets go on stdin, never on a command line."""
        self.stack(stack)
        for key, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            self.pulumi("config", "set", "--stack", stack, "--plaintext", key, "--", text)
        for key, secret in (secrets or {}).items():
            self.pulumi("config", "set", "--stack", stack, "--secret", key, stdin=secret)

    def export(self, stack: str) -> str:
        """`pulumi stack export` (secrets stay encrypted: no --show-secrets)."""
        return self.pulumi("stack", "export", "--stack", stack).stdout
