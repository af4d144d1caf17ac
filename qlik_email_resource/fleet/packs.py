"""Which policy packs a fleet run uses, and its ``policy_config`` checked against them.

Each Python pack is started once (its real analyzer, as the offline runner and
the audit use it) to learn its policies and their config schemas; the tenants
file's ``policy_config`` is then checked before any tenant is touched. The
offline backend and the audit keep using those analyzers; the Automation API
backend stops them, since the Pulumi CLI starts its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qlik_email_resource.fleet import policy_config
from qlik_email_resource.fleet.tenants import TenantsFile


class PolicyConfigError(ValueError):
    """The policy packs or the tenants file's policy_config are unusable."""


def packaged_pack() -> Path:
    """The qlik-email policy pack shipped inside this package."""
    from qlik_email_resource import policy_pack

    return policy_pack.path()


@dataclass
class PolicySetup:
    packs: list[str] = field(default_factory=list)
    analyzers: list[Any] = field(default_factory=list)
    policies: list[policy_config.PolicySchema] = field(default_factory=list)
    # The policy_config to hand to the engine: checked, `all` spelled out per policy.
    config: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def none(cls) -> PolicySetup:
        return cls()

    @classmethod
    def start(
        cls,
        fleet: TenantsFile,
        pack_dirs: Sequence[str],
        *,
        use_packs: bool,
        default: Path,
    ) -> PolicySetup:
        """Start the packs and check ``fleet.policy_config``; raises PolicyConfigError."""
        if pack_dirs and not use_packs:
            raise PolicyConfigError("give --policy-pack or --no-policy-pack, not both")
        chosen = list(pack_dirs) or [str(default)]
        packs = [str(Path(p).resolve()) for p in chosen] if use_packs else []
        config = {k: dict(v) for k, v in fleet.policy_config.items()}
        if config and not packs:
            raise PolicyConfigError(
                f"{fleet.path}: policy_config is set but no policy pack runs "
                "(--no-policy-pack): drop --no-policy-pack, or remove policy_config"
            )
        setup = cls(packs=packs)
        try:
            checkable = True
            for pack in packs:
                runtime = _runtime(Path(pack))
                if runtime != "python":
                    # Only Python packs can be started here; the Pulumi CLI checks the
                    # others' config itself when the stack runs.
                    checkable = False
                    continue
                analyzer = _start(pack)
                setup.analyzers.append(analyzer)
                setup.policies += policy_config.policies_from_info(analyzer.info())
            problems = policy_config.check(config, setup.policies) if checkable else []
            if problems:
                lines = "\n".join(f"  - {p}" for p in problems)
                raise PolicyConfigError(
                    f"{fleet.path}: policy_config does not fit the policy pack "
                    f"({', '.join(packs)}):\n{lines}"
                )
            setup.config = expand_all(config, setup.policies)
        except BaseException:
            setup.stop()
            raise
        return setup

    def stop(self) -> None:
        for analyzer in self.analyzers:
            analyzer.stop()
        self.analyzers = []


def expand_all(
    config: Mapping[str, Mapping[str, Any]], policies: Sequence[policy_config.PolicySchema]
) -> dict[str, dict[str, Any]]:
    """``all: <level>`` applied to every policy, then each policy's own settings on top
    (the CLI's ``applyConfig``), so that every backend gets the same plain config."""
    result = {k: dict(v) for k, v in config.items() if k != policy_config.ALL}
    level = (config.get(policy_config.ALL) or {}).get(policy_config.LEVEL_KEY)
    if level:
        for policy in policies:
            entry = result.setdefault(policy.name, {})
            entry.setdefault(policy_config.LEVEL_KEY, level)
    return result


def _runtime(pack: Path) -> str:
    manifest = pack / "PulumiPolicy.yaml"
    if not manifest.is_file():
        raise PolicyConfigError(
            f"{pack} is not a policy pack (no PulumiPolicy.yaml); pass a pack directory to "
            "--policy-pack, or leave it out to use the packaged one "
            "(`qlik-email-fleet policy-pack` prints where it is)"
        )
    try:
        document = yaml.safe_load(manifest.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PolicyConfigError(f"{manifest} is not valid YAML: {exc}") from None
    runtime = document.get("runtime")
    name = runtime.get("name") if isinstance(runtime, Mapping) else runtime
    return str(name or "")


def _start(pack: str) -> Any:
    from qlik_email_resource.offline.grpc_servers import AnalyzerServer

    try:
        return AnalyzerServer(pack)
    except Exception as exc:
        raise PolicyConfigError(
            f"the policy pack {pack} did not start: {str(exc).splitlines()[0]}; run "
            f"`python {pack}/__main__.py` to see why"
        ) from None
