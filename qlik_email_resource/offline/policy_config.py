"""Policy-pack configuration, read and reconciled as the Pulumi CLI does it.

The CLI's steps (pkg/resource/analyzer/config.go, called from engine/update.go
``loadPolicyPlugins``), kept here in the same order:

1. ``parsePolicyPackConfig``: each entry is a level alone (``"rule": "advisory"``)
   or an object whose ``enforcementLevel`` (optional) is taken out and whose other
   keys are the policy's settings; anything else is refused.
2. ``ReconcilePolicyPackConfig``: every policy's schema defaults and its level,
   then the pack's own initial config, then the user's (``applyConfig``: the
   ``all`` level for every policy first, then each named policy).
3. ``validatePolicyPackConfig``: each policy's settings against its JSON schema.
4. ``analyzer.Configure`` (pkg/resource/plugin/analyzer_plugin.go) refuses an entry
   without a valid level, which is what a name no policy has gets in step 2 when
   it carries settings only. A name with a level reaches the pack, which ignores
   it; here it is left out and reported as a warning instead.

Several packs share one ``policy_config`` here (the CLI takes one file per pack),
so a name is unknown only when no pack defines it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2

from qlik_email_resource.offline.results import OfflineRunError

# apitype.EnforcementLevel.IsValid()
LEVELS: dict[str, analyzer_pb2.EnforcementLevel.ValueType] = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}
LEVEL_KEY = "enforcementLevel"
ALL = "all"
_LEVEL_NAMES = {number: name for name, number in LEVELS.items()}
_CHOICES = ", ".join(LEVELS)


@dataclass(frozen=True)
class PolicySetting:
    """One entry of a policy config: an optional level and the policy's settings."""

    level: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)


def load_file(path: str | Path) -> dict[str, Any]:
    """A ``--policy-pack-config`` file; empty content is no config, as for the CLI."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise OfflineRunError(
            f"cannot read the policy config file {path} ({exc.strerror}); check the path"
        ) from None
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise OfflineRunError(
            f"the policy config file {path} is not valid JSON ({exc}); it must hold an object "
            '{"policy-name": "advisory" | {"enforcementLevel": ..., "setting": value}}'
        ) from None
    if not isinstance(document, dict):
        raise OfflineRunError(
            f"the policy config file {path} must hold a JSON object, not {type(document).__name__}"
        )
    return document


def parse(raw: Mapping[str, Any]) -> dict[str, PolicySetting]:
    """``parsePolicyPackConfig``: entries as levels and settings; empty ones dropped."""
    if "environments" in raw:
        # The CLI resolves these through Pulumi ESC, which a local backend cannot.
        raise OfflineRunError(
            'the policy config names ESC "environments"; the offline runner (like the CLI '
            "with a local backend) cannot resolve them: write the settings into the config"
        )
    result: dict[str, PolicySetting] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            setting = PolicySetting(level=_level(name, value))
        elif isinstance(value, Mapping):
            properties = {str(k): v for k, v in value.items() if k != LEVEL_KEY}
            level = value.get(LEVEL_KEY)
            if level is not None and not isinstance(level, str):
                raise OfflineRunError(
                    f"policy config for {name!r}: {LEVEL_KEY} {level!r} must be a string "
                    f"({_CHOICES})"
                )
            setting = PolicySetting(
                level=_level(name, level) if level is not None else None, properties=properties
            )
        else:
            raise OfflineRunError(
                f"policy config for {name!r}: {value!r} must be a string or object: a level "
                f"({_CHOICES}) or {{{LEVEL_KEY!r}: ..., setting: value}}"
            )
        if setting.level is not None or setting.properties:
            result[str(name)] = setting
    return result


def check_names(
    settings: Mapping[str, PolicySetting], infos: Sequence[analyzer_pb2.AnalyzerInfo]
) -> list[str]:
    """Warnings for names no pack defines; an error for such a name without a level."""
    known = {policy.name for info in infos for policy in info.policies}
    warnings = []
    for name, setting in settings.items():
        if name == ALL:
            if setting.level is None:
                raise OfflineRunError(
                    f"policy config entry {ALL!r} has no {LEVEL_KEY}: it only sets the level "
                    f"of every policy ({_CHOICES}); put settings under each policy's name"
                )
            if setting.properties:
                warnings.append(f"policy config entry {ALL!r}: settings are ignored, only "
                                f"its {LEVEL_KEY} applies")
            continue
        if name in known:
            continue
        if setting.level is None:
            raise OfflineRunError(
                f"policy config names {name!r}, which no policy pack defines, with settings "
                f"and no {LEVEL_KEY}: the Pulumi CLI refuses that (invalid enforcement level "
                f'""). Fix the policy name (packs define: {", ".join(sorted(known))})'
            )
        warnings.append(
            f"policy config names {name!r}, which no policy pack defines; it is ignored "
            "(check the policy name)"
        )
    return warnings


def reconcile(
    info: analyzer_pb2.AnalyzerInfo, settings: Mapping[str, PolicySetting]
) -> analyzer_pb2.ConfigureAnalyzerRequest:
    """``ReconcilePolicyPackConfig`` for one pack: what the CLI sends its Configure."""
    result: dict[str, PolicySetting] = {}
    schemas: dict[str, dict[str, Any]] = {}
    for policy in info.policies:
        properties = json_format.MessageToDict(policy.configSchema.properties)
        defaults = {k: spec["default"] for k, spec in properties.items() if "default" in spec}
        result[policy.name] = PolicySetting(_LEVEL_NAMES[policy.enforcementLevel], defaults)
        if policy.HasField("configSchema"):
            schemas[policy.name] = _object_schema(properties, policy.configSchema.required)
    initial = {
        name: PolicySetting(
            _LEVEL_NAMES[config.enforcementLevel],
            json_format.MessageToDict(config.properties),
        )
        for name, config in info.initialConfig.items()
    }
    for layer in (initial, settings):
        _apply(result, layer)

    problems = []
    for name, schema in schemas.items():
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(dict(result[name].properties)), key=str):
            where = ".".join(str(p) for p in error.absolute_path)
            problems.append(f"{name}: {where + ': ' if where else ''}{error.message}")
    if problems:
        raise OfflineRunError(
            f"policy config is invalid for pack {info.name} {info.version}: "
            + "; ".join(problems)
            + ". Fix the settings (each policy's schema is in its pack)"
        )

    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for name in (p.name for p in info.policies):
        setting = result[name]
        config = analyzer_pb2.PolicyConfig(enforcementLevel=LEVELS[setting.level or "advisory"])
        config.properties.update(dict(setting.properties))
        request.policyConfig[name].CopyFrom(config)
    return request


def _apply(result: dict[str, PolicySetting], layer: Mapping[str, PolicySetting]) -> None:
    """``applyConfig``: ``all`` sets every level, then each entry overlays its policy."""
    every = layer.get(ALL)
    if every is not None and every.level is not None:
        for name, current in result.items():
            result[name] = PolicySetting(every.level, current.properties)
    for name, given in layer.items():
        if name not in result:
            continue  # names no policy has: see check_names
        current = result[name]
        result[name] = PolicySetting(
            given.level or current.level, {**current.properties, **given.properties}
        )


def _object_schema(properties: Mapping[str, Any], required: Sequence[str]) -> dict[str, Any]:
    # convertSchema: the policy's settings form one object.
    schema: dict[str, Any] = {"type": "object"}
    if properties:
        schema["properties"] = dict(properties)
    if required:
        schema["required"] = list(required)
    return schema


def _level(name: str, value: str) -> str:
    if value not in LEVELS:
        raise OfflineRunError(
            f"policy config for {name!r}: {value!r} is not a valid enforcement level; "
            f"use one of {_CHOICES}"
        )
    return value
