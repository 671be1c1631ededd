"""Client models, one module each, behind ClientModel (base.py)."""

from __future__ import annotations

from harness.clients.base import ClientModel, LocalModel
from harness.plan import Job


def create_local(model: str, job: Job) -> LocalModel:
    """A model that runs inside the current process (what a load process runs)."""
    if model.startswith("locust"):
        from harness.clients.locust_model import LocustModel
        return LocustModel()
    from harness.clients.aio import AsyncioModel, UvloopModel
    from harness.clients.threaded import SyncModel, ThreadModel

    return {"sync": SyncModel, "thread": ThreadModel, "asyncio": AsyncioModel,
            "uvloop": UvloopModel}[model]()


def create(job: Job) -> ClientModel:
    """What a worker runs: the job's model in one or more load processes of its own."""
    from harness.clients.process import ProcessModel

    return ProcessModel(job)
