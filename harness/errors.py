"""Every error the harness raises on purpose, in one tree (as httpx draws its own):

    HarnessError
    ├── UsageError          the user's input is wrong; nothing was sent     -> exit 2
    │   ├── ScenarioError   a scenario file or --set (names file and key)
    │   ├── CompareError    an input of `harness compare` or a --fail-on gate
    │   │   └── BaselineError  a baseline name, a missing baseline, a run unlike its runs
    │   ├── ReportError     a directory that is not a run directory
    │   ├── KeyFileError    a CURVE key directory that is missing a file or a key
    │   └── OptionError     a command-line option (endpoint, --out, --workers ...)
    └── RunError            the run could not take place or went wrong      -> exit 1
        ├── CoordinatorError  no workers came, a bind failed
        ├── MockError         the embedded mockserver did not start or answer
        ├── WorkerError       refused by the coordinator, or it never answered
        └── CoordinatorLost   a worker heard nothing from its coordinator

cli.py is the only place that turns these into exit codes.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose: catch this to catch them all."""


class UsageError(HarnessError):
    """Bad input: a scenario, an option, a file given on the command line."""


class ScenarioError(UsageError):
    """An invalid scenario: names the file and the key, says what was expected."""

    def __init__(self, source: str, key: str, message: str) -> None:
        super().__init__(f"{source}: {key}: {message}")
        self.source, self.key, self.message = source, key, message


class CompareError(UsageError):
    """An input that cannot be compared: the message names the file."""


class BaselineError(CompareError):
    """A baseline that cannot be used or added to: the message names the run or name."""


class ReportError(UsageError):
    """A run directory without the files a report needs."""


class KeyFileError(UsageError):
    """A key directory that is missing a file or holds a bad key."""


class OptionError(UsageError):
    """A command-line option with a bad value: the message starts with the option."""


class RunError(HarnessError):
    """The run could not take place, or failed while it ran."""


class CoordinatorError(RunError):
    """The run could not take place (no workers came, a bind failed)."""


class MockError(RunError):
    """The embedded mockserver did not start or did not answer its admin API."""


class WorkerError(RunError):
    """Refused by the coordinator, or it never answered."""


class CoordinatorLost(RunError):
    """A worker heard nothing from its coordinator for too long and stopped its load."""
