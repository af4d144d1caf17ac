"""Stack configuration as the Pulumi CLI assembles it for a program directory.

``Pulumi.yaml`` gives the project name and project-level config (``default`` for
the project's own typed keys, ``value`` for other namespaces);
``Pulumi.<stack>.yaml`` gives the stack's plain values. Encrypted stack values
(``secure:``) belong to the CLI's secrets provider and cannot be read here, so
they must be passed to the runner (``config=`` or ``--secret``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qlik_email_resource.testing.results import OfflineRunError, Secret


@dataclass
class ProjectConfig:
    name: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)
    secret: set[str] = field(default_factory=set)
    stack_values: dict[str, Any] = field(default_factory=dict)
    stack_secure: set[str] = field(default_factory=set)


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
            if "value" in spec:
                result.defaults[key] = spec["value"]
            elif "default" in spec:
                result.defaults[key] = spec["default"]
            elif "type" in spec:
                result.required.add(key)
            if spec.get("secret"):
                result.secret.add(key)
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
