"""Running Python programs and policy packs under a Pulumi CLI that may lack the Python host.

A Pulumi install brings the Python language host, `pulumi-language-python`: it runs
a program directory (`runtime: python`) and a Python policy pack directory. The CLI
that `make cli` builds from Pulumi's Go modules has no such host (its Go module is
not served to our machines; docs/cli.md), so the code that drives the CLI here uses
two routes that need none, both real Pulumi mechanisms:

- programs run as Automation API inline programs: the Python SDK serves the
  LanguageRuntime itself and hands its address to the CLI (`--client`);
  `program_from_file` turns a program's `__main__.py` into such a program;
- a Python policy pack runs as an executable analyzer plugin (`--policy-pack FILE`,
  supported since pulumi v3.255.0): `policy_pack_for_cli` writes a two-line launcher
  that starts the pack's `__main__.py` with this Python. pulumi_policy's own server
  answers the engine, exactly as under the language host.

Where the language host exists, `policy_pack_for_cli` returns the directory itself.
"""

from __future__ import annotations

import hashlib
import os
import runpy
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

LANGUAGE_HOST = "pulumi-language-python"


def find_pulumi() -> str | None:
    """The `pulumi` on PATH, as the Automation API would run it."""
    return shutil.which("pulumi")


def has_python_language_host(pulumi: str | None = None) -> bool:
    """True when the CLI can run Python programs and packs by itself.

    The CLI looks for its bundled plugins beside its own binary first, then on PATH.
    """
    pulumi = pulumi or find_pulumi()
    if pulumi is None:
        return False
    beside = Path(pulumi).resolve().parent / LANGUAGE_HOST
    return os.access(beside, os.X_OK) or shutil.which(LANGUAGE_HOST) is not None


def plugin_environ() -> dict[str, str]:
    """Environment for the CLI so that the plugins it starts run in this Python.

    The dynamic provider plugin (`pulumi-resource-pulumi-python`, Pulumi's shell
    script) runs `$PULUMI_PYTHON_CMD -m pulumi.dynamic`, or `python3` from PATH:
    it must be the interpreter that has qlik_email_resource installed. In a virtualenv
    the script runs that virtualenv's python (PULUMI_RUNTIME_VIRTUALENV), the same one.
    """
    env = {"PULUMI_PYTHON_CMD": sys.executable}
    if sys.prefix != sys.base_prefix:
        env["PULUMI_RUNTIME_VIRTUALENV"] = sys.prefix
    return env


def program_from_file(main_py: Path) -> Callable[[], None]:
    """An inline program that runs a program directory's ``__main__.py``, as the host would."""
    path = str(Path(main_py).resolve())

    def program() -> None:
        runpy.run_path(path, run_name="__main__")

    return program


def policy_pack_for_cli(pack_dir: str | Path, workdir: Path, pulumi: str | None = None) -> str:
    """What to pass to ``--policy-pack`` for the Python pack in ``pack_dir``.

    The directory itself when the CLI has the Python language host; otherwise an
    executable launcher under ``workdir``. Beside the launcher sits a copy of the
    pack's PulumiPolicy.yaml, from which the CLI reads the pack's version.
    """
    pack = Path(pack_dir).resolve()
    if not (pack / "PulumiPolicy.yaml").is_file():
        raise FileNotFoundError(f"{pack} is not a policy pack: it has no PulumiPolicy.yaml")
    if has_python_language_host(pulumi):
        return str(pack)
    tag = hashlib.sha256(f"{pack}\0{sys.executable}".encode()).hexdigest()[:10]
    target = Path(workdir).resolve() / "policy-packs" / f"{pack.name}-{tag}"
    target.mkdir(parents=True, exist_ok=True)
    launcher = target / "pack"
    # The CLI passes the engine's address as an argument; pulumi_policy serves
    # without it (it prints its port and waits, as under the language host).
    script = (
        "#!/bin/sh\n"
        f"# Starts the Python policy pack {pack} for a Pulumi CLI without\n"
        "# pulumi-language-python; written by qlik_email_resource.fleet.pulumi_cli.\n"
        f"cd {shlex.quote(str(pack))} || exit 1\n"
        f'exec {shlex.quote(sys.executable)} -u __main__.py "$@"\n'
    )
    _write_atomically(target / "PulumiPolicy.yaml", (pack / "PulumiPolicy.yaml").read_text())
    _write_atomically(launcher, script, mode=0o755)
    return str(launcher)


def _write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    # Stacks of a fleet run in parallel threads and processes may write the same
    # launcher: a reader must never see half a file.
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    partial.chmod(mode)
    os.replace(partial, path)


def set_stack_config(stack: Any, values: Mapping[str, tuple[str, bool]]) -> None:
    """Set an Automation API stack's config; a secret never goes on a command line.

    ``values`` maps key -> (value, is_secret). ``Stack.set_all_config`` puts every
    value, secrets included, in the CLI's argv (``config set-all --secret k=v``),
    where ``ps`` and a failed command's error text show it. Plain values still go
    that way (one CLI call); each secret is given to ``pulumi config set --secret``
    on stdin, which the CLI reads when no value is given.
    """
    from pulumi import automation as auto

    plain = {k: auto.ConfigValue(value=v) for k, (v, secret) in values.items() if not secret}
    if plain:
        stack.set_all_config(plain)
    workspace = stack.workspace
    command = getattr(getattr(workspace, "pulumi_command", None), "command", None) or "pulumi"
    env = {**os.environ, **(workspace.env_vars or {})}
    for key, (value, secret) in values.items():
        if not secret:
            continue
        done = subprocess.run(
            [command, "--non-interactive", "config", "set", "--secret", "--stack", stack.name, key],
            input=value, text=True, capture_output=True, cwd=workspace.work_dir, env=env,
            check=False,
        )
        if done.returncode != 0:
            # The CLI's own words, without the value (it was never on argv, and a
            # config-set failure does not echo stdin).
            said = done.stderr.strip().splitlines()
            raise RuntimeError(
                f"pulumi config set --secret {key} (stack {stack.name}) failed: "
                f"{said[-1] if said else f'exit {done.returncode}'}"
            )
