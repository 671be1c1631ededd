"""What a scenario is once validated: frozen dataclasses, and the ranges and patterns
the checks hold values to (README lists them)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.core.extraction import Extract
from harness.core.failures import DEFAULT_MAX_BODY
from harness.core.registry import MODELS
from harness.core.steps import HTTP, RequestSpec
from harness.stats import FLOW_PREFIX

ENGINES = tuple(dict.fromkeys(e for kind in MODELS.values() for e in kind.engines))
METRICS = ("requests", "failures", "rps", "error_rate", "p50_ms", "p90_ms", "p95_ms", "p99_ms",
           "p999_ms", "max_ms", "mean_ms")
# The valid ranges of what reaches a socket, a process or a file name (README lists them):
# checked at validate time, so nothing fails after the load was sent.
MAX_USERS = 100_000               # concurrency, per run and per model
MAX_RATE = 1_000_000.0            # requests/s, stage targets, weights
MAX_DURATION_S = 7 * 86400.0      # run, stage, warm-up; timeouts and think time: an hour
MAX_SEED = 2**32 - 1
MAX_REQUESTS = 10**12             # a count-bounded run
MAX_PROCESSES = 64
MAX_CPU_WORK = 10**9
MAX_BODY_BYTES = 16 << 20
MAX_HEADERS = 100
# bounded memory per request: a captured answer body ([run].max_body) and a load process
# ([run].max_memory); what a hostile target sends beyond them is never held
MAX_MAX_BODY = 1 << 30
SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 10**6, "gb": 10**9,
              "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*", re.I)


def size_bytes(raw: object) -> int | None:
    """A size as a scenario writes it (`1048576`, "1 MiB", "512KiB", "2GB"); None
    when it is not one."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and (m := _SIZE.fullmatch(raw)):
        return int(float(m.group(1)) * SIZE_UNITS[(m.group(2) or "").lower()])
    return None


def default_max_memory() -> int:
    """A load process's memory ceiling unless [run].max_memory says: a quarter of the
    machine's memory, at most 4 GiB -- far above what any model needs for its users, far
    below what takes the machine down."""
    try:
        import os
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return min(4 << 30, total // 4)
# run.name becomes part of a directory name: letters, digits, space . _ -, at most 100.
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}")
# a path is sent as is: printable ASCII, no space (percent-encode anything else)
PATH_RE = re.compile(r"/[\x21-\x7e]{0,8191}")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
# a header value: visible ASCII, space and tab, never CR, LF or NUL; no obs-text: the
# client libraries disagree on its bytes (http.client latin-1, aiohttp UTF-8)
HEADER_VALUE = re.compile(r"[\t\x20-\x7e]{0,8192}")
REQUEST_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
THRESHOLD = re.compile(r"^\s*(<=|>=|<|>|==)\s*(-?\d+(?:\.\d+)?)\s*$")
TEMPLATE_REF = re.compile(r"\{\{.*?\}\}", re.S)
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")   # data tables, columns, values
HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Stage:
    duration_s: float
    target: float


@dataclass(frozen=True)
class DataTable:
    name: str
    file: str                       # as written in the scenario (relative to it)
    order: str                      # per-user | sequential | random
    columns: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]   # core.datatable.DataRows: the file's bytes, indexed


@dataclass(frozen=True)
class StepSpec:
    request: RequestSpec            # its path, header values and body are templates
    extract: tuple[Extract, ...]
    think_time_s: float
    kind: str = HTTP                # which transport call sends it (core.steps.STEP_KINDS)


@dataclass(frozen=True)
class FlowSpec:
    name: str
    weight: float
    steps: tuple[StepSpec, ...]

    @property
    def label(self) -> str:
        """Its row in the results: the whole iteration's latency, aborted ones failed."""
        return FLOW_PREFIX + self.name


@dataclass(frozen=True)
class ModelSpec:
    model: str
    engine: str = "aiohttp"       # ENGINES[0]
    processes: int = 2
    sub_model: str = "asyncio"    # SUB_MODELS[-1]
    cpu_work: int = 0
    concurrency: int | None = None

    @property
    def label(self) -> str:
        """The name a model carries in results: engine or sub-model where it matters."""
        return MODELS[self.model].label.format(model=self.model, engine=self.engine,
                                               sub_model=self.sub_model,
                                               processes=self.processes)


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float
    request: str | None = None  # None: the Aggregated row

    def holds(self, actual: float) -> bool:
        return {"<": actual < self.value, "<=": actual <= self.value, ">": actual > self.value,
                ">=": actual >= self.value, "==": actual == self.value}[self.op]

    def __str__(self) -> str:
        where = f"[{self.request}] " if self.request else ""
        return f"{where}{self.metric} {self.op} {self.value:g}"


SLO_METRICS = ("error_rate", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms",
               "mean_ms")
OVER = ("rate", "concurrency")
# the open model's arrival process: evenly spaced sends, or a Poisson process at the rate
# (exponential gaps, as Gatling's randomized injection; what M/M/k theory assumes)
ARRIVALS = ("constant", "poisson")


@dataclass(frozen=True)
class CapacitySpec:
    """[capacity]: each model searches for the most load that holds the SLO."""

    slo: tuple[Threshold, ...]
    start_rate: float = 200.0      # requests (or flow iterations) per second
    max_rate: float = 200_000.0
    step_s: float = 5.0            # measured time per step, after its own warm-up
    step_warmup_s: float = 1.0
    precision: float = 0.05        # the bracket [highest pass, lowest fail] within this
    max_steps: int = 20
    over: str = "rate"             # OVER: open-model rate, or closed-model users
    max_users: int = 1024          # over = "concurrency": the most users tried


HANDSHAKES = ("per-connection", "per-request", "resume")
HTTP_VERSIONS = ("1.1", "2", "auto")
MAX_STREAMS = 1000   # [load].streams_per_connection
MAX_PEM_BYTES = 1 << 20


@dataclass(frozen=True)
class TlsSpec:
    """[target.tls], its files read into PEM text: a worker on another machine gets the
    text with its Job, never a path of the coordinator's machine."""

    verify: bool = True
    ca_pem: str | None = None        # extra CAs to trust (or the one certificate pinned)
    cert_pem: str | None = None      # client certificate (mutual TLS), with key_pem
    key_pem: str | None = None
    server_name: str | None = None   # SNI and the name verified, when the URL holds an IP
    pinned: bool = False             # ca_pem is the only certificate trusted (embedded mock)


@dataclass(frozen=True)
class Scenario:
    source: str
    name: str
    duration_s: float | None
    total_requests: int | None
    warmup_s: float
    seed: int
    workers: int
    timeout_s: float
    target_url: str | None
    mock: dict[str, Any] | None
    mode: str                      # "closed" or "open"
    concurrency: int
    rate: float | None
    stages: tuple[Stage, ...]
    think_time_s: float
    requests: tuple[RequestSpec, ...]
    models: tuple[ModelSpec, ...]
    thresholds: tuple[Threshold, ...]
    raw: dict[str, Any] = field(compare=False, repr=False)
    tls: TlsSpec = TlsSpec()
    handshake: str = "per-connection"   # HANDSHAKES: connection setup per connection/request
    mock_tls: bool = False              # the embedded mock serves HTTPS (self-signed, pinned)
    data: tuple[DataTable, ...] = ()
    flows: tuple[FlowSpec, ...] = ()
    cookies: bool = True                # flows: each user keeps a cookie jar
    max_body: int = DEFAULT_MAX_BODY    # bytes of an answer a flow step may capture
    max_memory: int = 0                 # a load process's RSS ceiling (0: the default)
    notes: tuple[str, ...] = field(default=(), compare=False)   # said, not refused
    http: str = "1.1"                      # [target].http: "1.1", "2" or "auto" (ALPN)
    streams: int = 1                       # [load].streams_per_connection (HTTP/2)
    capacity: CapacitySpec | None = None   # [capacity]: every model searches
    abort_after_s: float | None = None     # [thresholds] abort_after: auto-stop
    arrivals: str = "constant"             # open model: ARRIVALS (evenly spaced, or Poisson)

    @property
    def result_names(self) -> list[str]:
        """Every row name a model's results hold, in the recorder's order: requests,
        flow steps, then `flow:<name>` per flow."""
        return [r.name for r in self.requests] + \
            [s.request.name for f in self.flows for s in f.steps] + [f.label for f in self.flows]

    @property
    def run_seconds(self) -> float:
        """Measured time (after warm-up); with stages, their sum."""
        if self.stages:
            return sum(s.duration_s for s in self.stages)
        return self.duration_s or 0.0
