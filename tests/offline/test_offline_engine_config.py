"""Stack configuration checked against ``Pulumi.yaml`` as the Pulumi CLI checks it.

pkg/workspace/config.go: ``mergeConfig`` applies the project's defaults, then
``validateStackConfigValues`` / ``validateStackConfigValue`` refuse a plain value for
a ``secret: true`` key and a value of the wrong type, using
``workspace.ValidateConfigValue`` (sdk/go/common/workspace/project.go). The program
here registers nothing, so no provider is involved: the check comes first.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from qlik_email_resource.offline import OfflineRunError, OfflineStack, Secret

PROJECT = """
name: cfg
runtime: python
config:
  password:
    type: string
    secret: true
  port:
    type: integer
    default: 465
  verify:
    type: boolean
    default: true
  ports:
    type: array
    items:
      type: integer
    default: [465]
  label:
    type: string
    default: none
"""
PASSWORD = "cfg-pw-51c0e7d2"


@pytest.fixture
def program(tmp_path: Path) -> Path:
    directory = tmp_path / "program"
    directory.mkdir()
    (directory / "Pulumi.yaml").write_text(textwrap.dedent(PROJECT))
    (directory / "__main__.py").write_text(
        "import pulumi\ncfg = pulumi.Config()\n"
        "pulumi.export('port', cfg.get_int('port'))\n"
        "pulumi.export('verify', cfg.get_bool('verify'))\n"
    )
    return directory


def preview(program: Path, **config: Any) -> Any:
    stack = OfflineStack(program, stack="dev", config={"password": Secret(PASSWORD), **config},
                         quiet=True)
    return stack.preview()


def test_valid_config_passes_and_reaches_the_program(program: Path) -> None:
    result = preview(program, port="2465", verify="false", ports=[465, 587])
    assert result.ok and result.outputs == {"port": 2465, "verify": False}
    assert preview(program, port=587, verify=True).outputs == {"port": 587, "verify": True}


def test_a_secret_key_with_a_plain_value_is_refused(program: Path) -> None:
    """validateStackConfigValue: "Stack '%v' with configuration key '%v' must be
    encrypted as it's secret" when the project says secret and the value is not."""
    with pytest.raises(OfflineRunError) as info:
        preview(program, password=PASSWORD)
    message = str(info.value)
    assert "'password'" in message and "must be encrypted" in message
    assert "Secret(" in message and "--secret" in message, "the message says the fix"
    assert PASSWORD not in message


def test_a_plain_secret_in_the_stack_file_is_refused(program: Path) -> None:
    (program / "Pulumi.dev.yaml").write_text(f"config:\n  cfg:password: {PASSWORD}\n")
    stack = OfflineStack(program, stack="dev", quiet=True)
    with pytest.raises(OfflineRunError, match="must be encrypted") as info:
        stack.preview()
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "type_name"),
    [
        ("port", "many", "integer"),
        ("port", "465.5", "integer"),
        ("verify", "yes", "boolean"),
        ("verify", "True", "boolean"),
        ("ports", [465, "smtp"], "array<integer>"),
        ("ports", "465", "array<integer>"),
        ("label", {"not": "a string"}, "string"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(
    program: Path, key: str, value: Any, type_name: str
) -> None:
    """ValidateConfigValue: integers may be whole floats or strings that parse,
    booleans only "true"/"false" or a bool, arrays check each item, strings must be
    strings; validateStackConfigValue then says "must be of type '%v'"."""
    with pytest.raises(OfflineRunError) as info:
        preview(program, **{key: value})
    assert f"'{key}'" in str(info.value)
    assert f"must be of type '{type_name}'" in str(info.value)


def test_a_secret_key_whose_default_applies_is_refused(tmp_path: Path) -> None:
    """mergeConfig writes a default into the stack config as a plain value before
    validateStackConfigValues runs, so a secret key resting on its default fails."""
    directory = tmp_path / "program"
    directory.mkdir()
    (directory / "Pulumi.yaml").write_text(
        "name: cfg\nruntime: python\nconfig:\n"
        "  token:\n    type: string\n    secret: true\n    default: changeme\n"
    )
    (directory / "__main__.py").write_text("")
    with pytest.raises(OfflineRunError, match=r"'token'.*must be encrypted"):
        OfflineStack(directory, stack="dev", quiet=True).preview()
    assert OfflineStack(
        directory, stack="dev", config={"token": Secret("t0k")}, quiet=True
    ).preview().ok
