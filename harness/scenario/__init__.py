"""Scenario files: TOML -> frozen dataclasses. All validation lives here.

Errors read `FILE: [section].key: expected ..., got ...` so a user finds the line without a
traceback; the CLI maps ScenarioError to exit 2 before anything is started or sent.
`--set key.path=value` overrides and `${ENV}` / `${ENV:-default}` interpolation are applied
to the raw tables first, so they are validated like everything else.
"""

from harness.core.steps import RequestSpec
from harness.core.templates import DEFAULT_ACCEPTED
from harness.scenario.overrides import apply_set, apply_unset, interpolate
from harness.scenario.parse import load_scenario, parse_scenario
from harness.scenario.spec import (
    ENGINES,
    HANDSHAKES,
    MAX_USERS,
    METRICS,
    DataTable,
    FlowSpec,
    ModelSpec,
    Scenario,
    Stage,
    StepSpec,
    Threshold,
    TlsSpec,
)
from harness.scenario.target import mock_config

__all__ = ["DEFAULT_ACCEPTED", "ENGINES", "HANDSHAKES", "MAX_USERS", "METRICS", "DataTable",
           "FlowSpec", "ModelSpec", "RequestSpec", "Scenario", "Stage", "StepSpec",
           "Threshold", "TlsSpec", "apply_set", "apply_unset", "interpolate", "load_scenario",
           "mock_config", "parse_scenario"]
