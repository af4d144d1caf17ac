"""`make cli` (tools/build-cli.sh): what it builds, reuses or refuses, and the built CLI.

The script's decisions are checked on a copy of tools/ with stand-in `pulumi`
executables on PATH and no Go (so any attempt to build would fail loudly); the real
build is what `make test` runs before these tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli.clienv import REPO, find_cli, needs_cli

PINNED = re.search(
    r"^require github.com/pulumi/pulumi/pkg/v3 (v[0-9.]+)$",
    (REPO / "tools" / "pulumi" / "go.mod").read_text(), re.M,
)


def _fake_pulumi(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "pulumi"
    fake.write_text(f"#!/bin/sh\necho {version}\n")
    fake.chmod(0o755)
    return fake


def _build(clone: Path, path: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": os.pathsep.join([*map(str, path), "/usr/bin", "/bin"])}
    return subprocess.run(
        ["bash", str(clone / "tools" / "build-cli.sh")], env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The build script and the pinned go.mod, in a directory of their own."""
    shutil.copytree(REPO / "tools", tmp_path / "clone" / "tools")
    return tmp_path / "clone"


def test_build_cli_uses_a_pinned_pulumi_already_on_path(clone: Path, tmp_path: Path) -> None:
    assert PINNED is not None
    fake = _fake_pulumi(tmp_path / "installed", PINNED[1])
    done = _build(clone, [fake.parent])
    assert done.returncode == 0, done.stderr
    assert f"using {fake} ({PINNED[1]}, the pinned version)" in done.stdout
    assert not (clone / ".tools").exists()


def test_build_cli_reuses_its_own_build(clone: Path) -> None:
    assert PINNED is not None
    built = _fake_pulumi(clone / ".tools" / "bin", PINNED[1])
    plugin = built.parent / "pulumi-resource-pulumi-python"
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    done = _build(clone, [])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"make cli: {built} {PINNED[1]} is built"


@pytest.mark.skipif(shutil.which("go", path="/usr/bin:/bin") is not None,
                    reason="Go is in /usr/bin here, so the script would build")
def test_build_cli_without_go_says_what_to_install(clone: Path, tmp_path: Path) -> None:
    # Another version on PATH is not used, and with no Go nothing can be built.
    other = _fake_pulumi(tmp_path / "old", "v3.100.0")
    done = _build(clone, [other.parent])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "make cli: building the Pulumi CLI needs Go 1.26 or newer (https://go.dev/dl/), "
        f"or put pulumi {PINNED[1] if PINNED else '?'} on PATH"
    ]
    assert not (clone / ".tools" / "bin" / "pulumi").exists()


@needs_cli
def test_the_cli_in_use_is_the_pinned_version_with_its_provider_plugin() -> None:
    # `pulumi version` must not be empty: the Automation API refuses a CLI it cannot parse.
    assert PINNED is not None
    pulumi = find_cli()
    assert pulumi is not None
    version = subprocess.run([pulumi, "version"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"})
    assert version.stdout.strip() == PINNED[1]
    assert os.access(Path(pulumi).parent / "pulumi-resource-pulumi-python", os.X_OK)
