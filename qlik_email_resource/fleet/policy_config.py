"""The tenants file's ``policy_config``, checked before any tenant is touched.

The file holds what a ``--policy-pack-config`` file would: per policy, an
``enforcementLevel`` and the policy's settings, or a level alone as shorthand
(``email-verify-on-apply: advisory``), and ``all`` for every policy's level. The
Pulumi CLI reads such a file this way (pkg/resource/analyzer/config.go,
``parsePolicyPackConfig``) and validates the settings against each policy's JSON
schema (``validatePolicyConfig``). We do the same, once, for the whole fleet, and
stricter where the CLI is silent: a policy or setting name no pack knows is a
typo to report, not a value to drop.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

# apitype.EnforcementLevel.IsValid() in the Pulumi CLI.
LEVELS = ("advisory", "mandatory", "remediate", "disabled")
LEVEL_KEY = "enforcementLevel"
ALL = "all"


@dataclass(frozen=True)
class PolicySchema:
    """What a pack says about one policy: its name, default level and config schema."""

    name: str
    level: str
    properties: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    required: tuple[str, ...] = ()

    def json_schema(self) -> dict[str, Any]:
        # convertSchema() in the CLI: an object with the pack's properties.
        schema: dict[str, Any] = {"type": "object", "properties": dict(self.properties)}
        if self.required:
            schema["required"] = list(self.required)
        return schema


def normalise(raw: Any) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The file's ``policy_config`` as ``{policy: {enforcementLevel?, setting: value}}``.

    Returns the normalised mapping and the problems found (``where: what``), each
    naming the key as written in the tenants file.
    """
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        return {}, [
            "policy_config: must map policy names to a level (advisory, mandatory, ...) "
            "or to their settings"
        ]
    config: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name, value in raw.items():
        where = f"policy_config.{name}"
        if isinstance(value, str):
            value = {LEVEL_KEY: value}
        elif value is None:
            value = {}
        elif not isinstance(value, Mapping):
            problems.append(
                f"{where}: must be an enforcement level ({', '.join(LEVELS)}) or a mapping "
                f"of settings (got {value!r})"
            )
            continue
        settings = {str(k): v for k, v in value.items()}
        level = settings.get(LEVEL_KEY)
        if LEVEL_KEY in settings and level not in LEVELS:
            problems.append(
                f"{where}.{LEVEL_KEY}: {level!r} is not an enforcement level; use one of "
                f"{', '.join(LEVELS)}"
            )
        if name == ALL and set(settings) - {LEVEL_KEY}:
            extra = sorted(set(settings) - {LEVEL_KEY})
            problems.append(
                f"{where}: `all` sets the enforcement level of every policy and takes no "
                f"settings (got {', '.join(extra)})"
            )
        config[str(name)] = settings
    return config, problems


def check(
    config: Mapping[str, Mapping[str, Any]], policies: Sequence[PolicySchema]
) -> list[str]:
    """Problems of a normalised ``policy_config`` against the packs' policies."""
    by_name = {p.name: p for p in policies}
    problems: list[str] = []
    for name, settings in config.items():
        where = f"policy_config.{name}"
        if name == ALL:
            continue
        policy = by_name.get(name)
        if policy is None:
            problems.append(
                f"{where}: no policy of this name in the policy pack{_hint(name, by_name)}; "
                f"policies: {', '.join(sorted(by_name))}"
            )
            continue
        values = {k: v for k, v in settings.items() if k != LEVEL_KEY}
        for key in sorted(set(values) - set(policy.properties)):
            known = sorted(policy.properties)
            allowed = (
                f"settings of {name}: {', '.join(known)} (and {LEVEL_KEY})"
                if known
                else f"{name} has no settings, only {LEVEL_KEY}"
            )
            problems.append(f"{where}.{key}: unknown setting{_hint(key, known)}; {allowed}")
        known_values = {k: v for k, v in values.items() if k in policy.properties}
        validator = jsonschema.Draft7Validator(policy.json_schema())
        for error in sorted(validator.iter_errors(known_values), key=lambda e: list(e.path)):
            path = ".".join(str(p) for p in error.path)
            at = f"{where}.{path}" if path else where
            problems.append(f"{at}: {error.message}")
    return problems


def _hint(word: str, choices: Sequence[str] | Mapping[str, Any]) -> str:
    match = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def policies_from_info(info: Any) -> list[PolicySchema]:
    """``PolicySchema`` for every policy of a running pack (``AnalyzerServer.info()``)."""
    from google.protobuf import json_format
    from pulumi.runtime.proto import analyzer_pb2

    levels = {
        analyzer_pb2.ADVISORY: "advisory",
        analyzer_pb2.MANDATORY: "mandatory",
        analyzer_pb2.DISABLED: "disabled",
        analyzer_pb2.REMEDIATE: "remediate",
    }
    result = []
    for policy in info.policies:
        properties = json_format.MessageToDict(policy.configSchema.properties)
        result.append(
            PolicySchema(
                name=policy.name,
                level=levels.get(policy.enforcementLevel, "advisory"),
                properties=properties,
                required=tuple(policy.configSchema.required),
            )
        )
    return result
