"""Stack configuration as the Pulumi CLI assembles it for a program directory.

``Pulumi.yaml`` gives the project name and project-level config (``default`` for
the project's own typed keys, ``value`` for other namespaces);
``Pulumi.<stack>.yaml`` gives the stack's plain values. Encrypted stack values
(``secure:``) belong to the CLI's secrets provider and cannot be read here, so
they must be passed to the runner (``config=`` or ``--secret``).

The merged values are then checked as the CLI checks them (pkg/workspace/config.go,
``mergeConfig`` then ``validateStackConfigValues``): a key the project declares
with a ``type`` must hold a value of that type, and a secret one must be secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qlik_email_resource.offline.results import OfflineRunError, Secret


@dataclass(frozen=True)
class ConfigType:
    """A declared ``type`` (``string``, ``integer``, ``boolean``, ``object``,
    ``array``) with the ``items`` of an array, itself a ``ConfigType``."""

    name: str
    items: ConfigType | None = None

    def __str__(self) -> str:
        # workspace.InferFullTypeName
        return f"array<{self.items}>" if self.items is not None else self.name


@dataclass
class ProjectConfig:
    name: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)
    secret: set[str] = field(default_factory=set)
    stack_values: dict[str, Any] = field(default_factory=dict)
    stack_secure: set[str] = field(default_factory=set)
    # Keys declared with a ``type`` (IsExplicitlyTyped): only these are validated.
    types: dict[str, ConfigType] = field(default_factory=dict)


def config_string(value: Any) -> str:
    """A config value as the CLI hands it to the program (always a string)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


def load_project(program_dir: Path, stack: str) -> ProjectConfig:
    project_file = next(
        (p for p in (program_dir / "Pulumi.yaml", program_dir / "Pulumi.yml") if p.exists()), None
    )
    if project_file is None:
        return ProjectConfig()
    doc = _read_yaml(project_file)
    name = str(doc.get("name") or "") or None
    result = ProjectConfig(name=name)
    declared = doc.get("config") or {}
    if isinstance(declared, Mapping):
        for raw_key, spec in declared.items():
            key = _full_key(str(raw_key), name)
            if not isinstance(spec, Mapping):
                result.defaults[key] = spec
                continue
            # mergeConfig: the default wins when a (mis)declared key has both.
            if "default" in spec:
                result.defaults[key] = spec["default"]
            elif "value" in spec:
                result.defaults[key] = spec["value"]
            elif "type" in spec:
                result.required.add(key)
            if spec.get("secret"):
                result.secret.add(key)
            if "type" in spec:
                result.types[key] = _config_type(spec, key)
    stack_file = program_dir / f"Pulumi.{stack}.yaml"
    if stack_file.exists():
        for raw_key, value in (_read_yaml(stack_file).get("config") or {}).items():
            key = _full_key(str(raw_key), name)
            if isinstance(value, Mapping) and set(value) == {"secure"}:
                result.stack_secure.add(key)
            else:
                result.stack_values[key] = value
    return result


def assemble_config(
    project: ProjectConfig, given: Mapping[str, Any], stack: str
) -> tuple[dict[str, str], list[str]]:
    """Merge defaults, stack file and explicit values; returns (config, secret keys)."""
    merged: dict[str, Any] = {**project.defaults, **project.stack_values}
    merged.update({_full_key(k, project.name): v for k, v in given.items()})
    missing = sorted(k for k in project.required | project.stack_secure if k not in merged)
    if missing:
        raise OfflineRunError(
            f"stack {stack!r} is missing configuration value(s) {', '.join(missing)}; "
            "pass them with config={...} (Secret(...) for secrets) or --config/--secret "
            "(encrypted values in Pulumi.<stack>.yaml can only be read by the Pulumi CLI)"
        )
    problems = [
        problem
        for key, declared in sorted(project.types.items())
        if key in merged
        for problem in _validate(key, declared, merged[key], project, stack)
    ]
    if problems:
        raise OfflineRunError("; ".join(problems))
    config: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in merged.items():
        if isinstance(value, Secret):
            config[key] = config_string(value.value)
            secrets.append(key)
        else:
            config[key] = config_string(value)
            if key in project.secret:
                secrets.append(key)
    return config, sorted(secrets)


def _validate(
    key: str, declared: ConfigType, value: Any, project: ProjectConfig, stack: str
) -> list[str]:
    """validateStackConfigValue: secret first, then the type; never shows the value."""
    short = key.split(":", 1)[1] if key.startswith(f"{project.name}:") else key
    if key in project.secret and not isinstance(value, Secret):
        return [
            f"Stack '{stack}' with configuration key '{short}' must be encrypted as it's "
            f"secret: pass it as Secret(...) in config=, or with --secret / --secret-env "
            f"(an encrypted `secure:` value in Pulumi.{stack}.yaml is read by the CLI only)"
        ]
    plain = value.value if isinstance(value, Secret) else value
    # A stack value is a string unless it is an object (a YAML map or list): then the
    # CLI validates the parsed JSON.
    content = plain if isinstance(plain, (dict, list)) else config_string(plain)
    if not _valid(declared, content):
        return [
            f"Stack '{stack}' with configuration key '{short}' must be of type '{declared}'; "
            f"fix its value in config= / --config or Pulumi.{stack}.yaml"
        ]
    return []


def _valid(declared: ConfigType, value: Any) -> bool:
    """workspace.ValidateConfigValue (sdk/go/common/workspace/project.go)."""
    if declared.name == "string":
        return isinstance(value, str)
    if declared.name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return True
        return isinstance(value, str) and _atoi(value)
    if declared.name == "boolean":
        return value in ("true", "false") or isinstance(value, bool)
    if declared.name == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or declared.items is None:
        return False
    return all(_valid(declared.items, item) for item in value)


def _atoi(text: str) -> bool:
    # Go's strconv.Atoi: an optional sign and decimal digits, nothing else.
    digits = text[1:] if text[:1] in "+-" else text
    return digits.isascii() and digits.isdigit()


def _config_type(spec: Mapping[str, Any], key: str) -> ConfigType:
    items = spec.get("items")
    return ConfigType(
        name=str(spec.get("type")),
        items=_config_type(items, key) if isinstance(items, Mapping) else None,
    )


def _full_key(key: str, project: str | None) -> str:
    if ":" in key:
        return key
    if project is None:
        raise OfflineRunError(
            f"config key {key!r} has no namespace; write it as '<namespace>:{key}'"
        )
    return f"{project}:{key}"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise OfflineRunError(f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise OfflineRunError(f"{path} is not a YAML mapping")
    return doc
