"""What a user copies or installs works as the README says: the copyable test, the pack."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from qlik_email_resource.fleet.cli import main
from qlik_email_resource.offline.grpc_servers import AnalyzerServer
from qlik_email_resource.policy_pack.rules import ALLOWED_PORTS, TLS_REQUIRED

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "testing"


def _readme_program() -> str:
    """The program of the README's "Use it in your own Pulumi program"."""
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    program = [b for b in blocks if "TenantEmailConfig(" in b and "import pulumi" in b]
    assert len(program) == 1, "the README should show one complete program"
    return program[0]


def _code(text: str) -> str:
    """Source without its module docstring, for comparing programs."""
    return re.sub(r'^""".*?"""\n+', "", text, flags=re.S).strip()


def test_fleet_examples_program_is_the_readme_snippet() -> None:
    assert _code((EXAMPLE / "__main__.py").read_text()) == _readme_program().strip()


def test_fleet_examples_copied_test_passes_unchanged(tmp_path: Path) -> None:
    # A user's project: the README's program, a Pulumi.yaml, and the copied test.
    project = tmp_path / "my-project"
    project.mkdir()
    (project / "__main__.py").write_text(_readme_program())
    (project / "Pulumi.yaml").write_text("name: my-email\nruntime: python\n")
    shutil.copy(EXAMPLE / "test_my_stack.py", project / "test_my_stack.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"  # no pulumi CLI
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_stack.py"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout


def test_fleet_examples_policy_pack_command_prints_the_packaged_pack() -> None:
    out = io.StringIO()
    assert main(["policy-pack"], stdout=out) == 0
    pack = Path(out.getvalue().strip())
    assert pack.is_dir()
    assert {"PulumiPolicy.yaml", "__main__.py", "rules.py"} <= {p.name for p in pack.iterdir()}
    # the repository's pack assembles the very same rules file
    from policies import rules as repo_rules

    assert Path(repo_rules.tls_required.__code__.co_filename).resolve() == (
        pack / "rules.py"
    ).resolve()


def test_fleet_examples_pip_installed_pack_runs_without_a_clone(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--disable-pip-version-check", "-w", str(wheels), str(REPO)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if done.returncode != 0 and re.search(
        r"(?i)connection|network|resolve|No matching distribution", done.stderr
    ):
        pytest.skip("building the wheel needs setuptools from the package index, unreachable")
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = wheels.glob("qlik_email_resource-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("PulumiPolicy.yaml", "__main__.py", "rules.py", "__init__.py"):
        assert f"qlik_email_resource/policy_pack/{name}" in names, name
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # what pip puts in site-packages
    located = subprocess.run(
        [sys.executable, "-c",
         "from qlik_email_resource.fleet.packs import packaged_pack; print(packaged_pack())"],
        env={**os.environ, "PYTHONPATH": str(site)}, cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    assert Path(located) == site / "qlik_email_resource" / "policy_pack"
    with AnalyzerServer(located) as pack:
        names = {p.name for p in pack.info().policies}
    assert {TLS_REQUIRED, ALLOWED_PORTS} <= names
