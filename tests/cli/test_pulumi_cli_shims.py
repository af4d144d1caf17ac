"""qlik_email_resource.fleet.pulumi_cli: the policy pack launcher and the inline program."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import analyzer_pb2_grpc

from qlik_email_resource.fleet import pulumi_cli
from qlik_email_resource.policy_pack.rules import TLS_REQUIRED
from tests.cli.clienv import REPO


def _fake_cli(folder: Path, with_language_host: bool) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    names = ["pulumi", *(["pulumi-language-python"] if with_language_host else [])]
    for name in names:
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(0o755)
    return str(folder / "pulumi")


def test_launcher_starts_the_real_pack_for_a_cli_without_language_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no pulumi-language-python anywhere
    cli = _fake_cli(tmp_path / "bin", with_language_host=False)
    launcher = Path(pulumi_cli.policy_pack_for_cli(REPO / "policies", tmp_path / "w", cli))
    assert os.access(launcher, os.X_OK)
    # The CLI reads the pack's version from the manifest beside the executable.
    assert (launcher.parent / "PulumiPolicy.yaml").read_text() == (
        REPO / "policies" / "PulumiPolicy.yaml"
    ).read_text()
    # Started as the CLI starts an analyzer plugin: engine address as the argument,
    # the port on stdout.
    proc = subprocess.Popen([str(launcher), "127.0.0.1:1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            info = analyzer_pb2_grpc.AnalyzerStub(channel).GetAnalyzerInfo(
                empty_pb2.Empty(), timeout=30
            )
        assert info.name == "qlik-email"
        assert TLS_REQUIRED in {p.name for p in info.policies}
    finally:
        proc.kill()
        proc.wait()


def test_launcher_is_rewritten_whole_and_the_directory_used_with_a_language_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    bare = _fake_cli(tmp_path / "bare", with_language_host=False)
    first = pulumi_cli.policy_pack_for_cli(REPO / "policies", tmp_path / "w", bare)
    again = pulumi_cli.policy_pack_for_cli(REPO / "policies", tmp_path / "w", bare)
    assert first == again and not list(Path(first).parent.glob(".*partial"))
    full = _fake_cli(tmp_path / "full", with_language_host=True)
    assert pulumi_cli.policy_pack_for_cli(REPO / "policies", tmp_path / "w", full) == str(
        (REPO / "policies").resolve()
    )


def test_a_directory_without_manifest_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"is not a policy pack: it has no PulumiPolicy"):
        pulumi_cli.policy_pack_for_cli(tmp_path, tmp_path / "w")


def test_program_from_file_runs_it_as_main(tmp_path: Path) -> None:
    program = tmp_path / "__main__.py"
    out = tmp_path / "ran"
    program.write_text(f"open({str(out)!r}, 'w').write(__name__)\n")
    pulumi_cli.program_from_file(program)()
    assert out.read_text() == "__main__"
