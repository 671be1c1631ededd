"""The registry of client models, name -> what the model is (its abilities).

A new model is one entry here and one module: the scenario validator, the process model
(which builds the entry's class in each load process) and the verdict all read this table;
the worker only ever drives a ProcessModel. Entries name their class as
"module:Class", imported only in the load process that runs it (Locust's gevent patches,
aiohttp and uvloop stay out of every other process).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TransportKind:
    """How a request goes on the wire (harness/transports/): a new protocol is one module
    and one line here."""

    impl: str                 # "module:Class" of its Transport, imported where it runs
    blocking: bool            # driven from threads (sync, thread) or an event loop
    protocol: str = "HTTP/1.1"
    http2: str | None = None  # the TRANSPORTS entry that speaks HTTP/2 in its place
    # (http = "2"), driven the same way; None: this client cannot speak HTTP/2
    shares: bool = True       # several users may share a connection as HTTP/2 streams


TRANSPORTS: dict[str, TransportKind] = {
    "stdlib": TransportKind("harness.transports.http1_stdlib:StdlibTransport", True,
                            http2="httpx-h2"),
    "aiohttp": TransportKind("harness.transports.http1_aiohttp:AiohttpTransport", False),
    "fast": TransportKind("harness.transports.http1_fast:FastTransport", False, http2="h2"),
    "h2": TransportKind("harness.transports.http2:H2Transport", False, "HTTP/2"),
    # httpcore's sync HTTP/2 takes a stream id and sends its HEADERS without one lock
    # around both: threads sharing a connection open streams out of order, which a server
    # must refuse (RFC 9113 5.1.1; the mock saw StreamIDTooLowError): one user a connection
    "httpx-h2": TransportKind("harness.transports.http2_httpx:HttpxTransport", True,
                              "HTTP/2", shares=False),
}


@dataclass(frozen=True)
class ModelKind:
    """What the rest of the harness needs to know about one client model."""

    family: str                       # the verdict's family: the lesson's rule names these
    local: str | None                 # "module:Class" of the LocalModel a load process runs
    label: str = "{model}"            # how results name it (format fields: ModelSpec's)
    transports: tuple[str, ...] = ()  # TRANSPORTS it drives, the first by default; with
    # more than one they are the choices of the scenario's `engine` key (Locust: its own)
    open_model: bool = True           # supports [load] mode = "open"
    single_user: bool = False         # always one user (the sync baseline)
    gevent: bool = False              # needs gevent's monkey patches before anything else
    wraps: bool = False               # runs another model (sub_model) in several processes
    # TLS as far as the model's client allows: the handshake modes it can make, and
    # whether it can name a server apart from the URL's host ([target.tls].server_name)
    handshakes: tuple[str, ...] = ("per-connection", "per-request", "resume")
    server_name: bool = True

    @property
    def engines(self) -> tuple[str, ...]:
        """The choices of `engine`: the transports, when there is more than one."""
        return self.transports if len(self.transports) > 1 else ()

    def transport(self, engine: str | None, http: str = "1.1") -> TransportKind:
        """The transport a model of this kind sends through, given the `engine` chosen
        (a model without a choice ignores it: the scenario's default names aiohttp) and
        the protocol (http = "2": the engine's HTTP/2 counterpart)."""
        kind = TRANSPORTS[engine if engine in self.engines else self.transports[0]]
        if http == "2" and kind.http2 is not None:
            return TRANSPORTS[kind.http2]
        return kind

    def speaks_http2(self, engine: str | None) -> bool:
        return bool(self.transports) and self.transport(engine).http2 is not None


MODELS: dict[str, ModelKind] = {
    "sync": ModelKind("sync", "harness.clients.threaded:SyncModel", transports=("stdlib",),
                      single_user=True),
    "thread": ModelKind("threads", "harness.clients.threaded:ThreadModel",
                        transports=("stdlib",)),
    "asyncio": ModelKind("asyncio", "harness.clients.aio:AsyncioModel",
                         "{model}-{engine}", ("aiohttp", "fast")),
    "uvloop": ModelKind("asyncio", "harness.clients.aio:UvloopModel",
                        "{model}-{engine}", ("aiohttp", "fast")),
    "process": ModelKind("processes", None, "process-{sub_model}x{processes}", wraps=True),
    # Locust keeps connections alive only and names the URL's host
    "locust": ModelKind("locust", "harness.clients.locust_model:LocustModel",
                        open_model=False, gevent=True, handshakes=("per-connection",),
                        server_name=False),
    "locust-http": ModelKind("locust", "harness.clients.locust_model:LocustModel",
                             open_model=False, gevent=True, handshakes=("per-connection",),
                             server_name=False),
}
SUB_MODELS = ("thread", "asyncio")   # what the process model may run in its processes


def protocol_of(model: str, engine: str, sub_model: str, http: str) -> str:
    """What a model speaks on the wire for a job ("HTTP/1.1" or "HTTP/2"): Locust's peers
    speak HTTP/1.1 only."""
    kind = MODELS[model]
    if kind.wraps:
        kind = MODELS[sub_model]
    if not kind.transports:
        return "HTTP/1.1"
    return kind.transport(engine, http).protocol
