"""Policy configuration read as the Pulumi CLI reads ``--policy-pack-config``.

pkg/resource/analyzer/config.go: ``parsePolicyPackConfig`` takes a level alone as
shorthand (``"rule": "advisory"``) or an object with ``enforcementLevel`` and the
policy's settings; ``ReconcilePolicyPackConfig`` lays schema defaults, the pack's
initial config, then the file (``applyConfig``: ``all`` first, then each policy)
and validates each policy's settings against its JSON schema
(``validatePolicyPackConfig``). The packs run in their real analyzers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qlik_email_resource.offline import OfflineRunError, OfflineStack, Secret
from qlik_email_resource.offline.grpc_servers import AnalyzerServer, ProviderServer
from qlik_email_resource.policy_pack.rules import ALLOWED_PORTS, TENANT_URL
from tests.offline.toy_provider import toy_program

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def toy_pack() -> Iterator[AnalyzerServer]:
    # Our own analyzer: every test here reconfigures it (the session's toy_analyzer
    # must keep its defaults for the other modules).
    server = AnalyzerServer(HERE / "toy_policy")
    yield server
    server.stop()


def preview(provider: ProviderServer, pack: AnalyzerServer, policy_config: Any,
            program: Any = toy_program, **config: str) -> Any:
    stack = OfflineStack(
        program, project="toy", stack="dev",
        config={"toy:password": Secret("pw"), "toy:things": "alpha", **config},
        provider_server=provider, analyzer=pack, policy_config=policy_config, quiet=True,
    )
    return stack.preview()


def levels(result: Any) -> list[tuple[str, str]]:
    return sorted((v.policy, v.level) for v in result.violations)


PLAIN = {"toy:security": "none", "toy:port": "25"}


def test_a_level_alone_is_shorthand_for_enforcement_level(
    provider: ProviderServer, toy_pack: AnalyzerServer
) -> None:
    """parsePolicyPackConfig: ``case string`` is the enforcement level."""
    result = preview(provider, toy_pack, {"toy-no-plain": "advisory"}, **PLAIN)
    assert result.ok
    assert levels(result) == [("toy-no-plain", "advisory"), ("toy-port-advice", "advisory")]


def test_all_sets_every_level_and_a_policy_of_its_own_wins(
    provider: ProviderServer, toy_pack: AnalyzerServer
) -> None:
    """applyConfig: the ``all`` level goes to every policy first, then each policy's
    own entry applies."""
    assert levels(preview(provider, toy_pack, {"all": "disabled"}, **PLAIN)) == []
    result = preview(provider, toy_pack, {"all": "mandatory", "toy-no-plain": "advisory"},
                     **PLAIN)
    assert levels(result) == [("toy-no-plain", "advisory"), ("toy-port-advice", "mandatory")]


def test_an_unknown_policy_with_a_level_is_ignored_with_a_warning(
    provider: ProviderServer, toy_pack: AnalyzerServer
) -> None:
    """applyConfig passes a name no policy has through to the pack, which ignores
    it; the runner says so instead of staying silent."""
    result = preview(provider, toy_pack, {"toy-no-plian": "disabled"}, **PLAIN)
    assert levels(result) == [("toy-no-plain", "mandatory"), ("toy-port-advice", "advisory")]
    assert any("toy-no-plian" in w and "ignored" in w for w in result.warnings)


def test_an_unknown_policy_with_settings_and_no_level_is_refused(
    provider: ProviderServer, toy_pack: AnalyzerServer
) -> None:
    """applyConfig gives such an entry the empty level, and analyzer.Configure
    (analyzer_plugin.go) refuses it: "invalid enforcement level"."""
    with pytest.raises(OfflineRunError, match="toy-no-plian") as info:
        preview(provider, toy_pack, {"toy-no-plian": {"allowed": True}})
    assert "enforcementLevel" in str(info.value)


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"toy-no-plain": "warn"}, ["toy-no-plain", "'warn'", "advisory, mandatory"]),
        ({"toy-no-plain": {"enforcementLevel": 1}}, ["toy-no-plain", "must be a string"]),
        ({"toy-no-plain": 3}, ["toy-no-plain", "must be a string or object"]),
        ({"environments": ["prod/policy"]}, ["environments", "ESC"]),
    ],
)
def test_a_malformed_entry_is_refused(
    provider: ProviderServer, toy_pack: AnalyzerServer, config: Any, words: list[str]
) -> None:
    """parsePolicyPackConfig / extractEnforcementLevel refuse levels that are not
    valid strings and values that are neither a string nor an object; a local pack's
    ESC ``environments`` need a backend that resolves them (engine/update.go)."""
    with pytest.raises(OfflineRunError) as info:
        preview(provider, toy_pack, config)
    for word in words:
        assert word in str(info.value)


def test_settings_are_validated_against_the_policy_schema(provider: ProviderServer) -> None:
    """validatePolicyPackConfig checks every policy's settings (defaults included)
    against its schema and fails the run, naming pack, policy and problem."""
    with AnalyzerServer(ROOT / "policies") as pack:
        with pytest.raises(OfflineRunError) as info:
            preview(provider, pack, {ALLOWED_PORTS: {"allowedPorts": [587, "smtp"]}},
                    program=lambda: None)
        message = str(info.value)
        assert ALLOWED_PORTS in message and "'smtp'" in message
        assert "qlik-email" in message
        ok = preview(provider, pack, {ALLOWED_PORTS: {"allowedPorts": [587]},
                                      TENANT_URL: "disabled"}, program=lambda: None)
        assert ok.ok
