"""A throw-away policy pack for the offline runner's tests (run by AnalyzerServer)."""

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)


def _no_plain(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type.endswith("toy:Thing") and args.props.get("security") == "none":
        report("security is none")


def _port_advice(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type.endswith("toy:Thing") and str(args.props.get("port")) != "465":
        report("port is not 465")


PolicyPack(
    name="toy",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(
            name="toy-no-plain", description="No plain SMTP.", validate=_no_plain
        ),
        ResourceValidationPolicy(
            name="toy-port-advice",
            description="Prefer 465.",
            validate=_port_advice,
            enforcement_level=EnforcementLevel.ADVISORY,
        ),
    ],
)
