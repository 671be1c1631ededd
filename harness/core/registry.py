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
class ModelKind:
    """What the rest of the harness needs to know about one client model."""

    family: str                       # the verdict's family: the lesson's rule names these
    local: str | None                 # "module:Class" of the LocalModel a load process runs
    label: str = "{model}"            # how results name it (format fields: ModelSpec's)
    engines: tuple[str, ...] = ()     # choices of `engine`; the first is the default
    open_model: bool = True           # supports [load] mode = "open"
    single_user: bool = False         # always one user (the sync baseline)
    gevent: bool = False              # needs gevent's monkey patches before anything else
    wraps: bool = False               # runs another model (sub_model) in several processes
    # TLS as far as the model's client allows: the handshake modes it can make, and
    # whether it can name a server apart from the URL's host ([target.tls].server_name)
    handshakes: tuple[str, ...] = ("per-connection", "per-request", "resume")
    server_name: bool = True


MODELS: dict[str, ModelKind] = {
    "sync": ModelKind("sync", "harness.clients.threaded:SyncModel", single_user=True),
    "thread": ModelKind("threads", "harness.clients.threaded:ThreadModel"),
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
