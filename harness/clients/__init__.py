"""Client models, one module each, behind ClientModel (base.py)."""

from __future__ import annotations

from harness.clients.base import ClientModel, LocalModel
from harness.plan import Job


def create_local(model: str, job: Job) -> LocalModel:
    from harness.clients.aio import AsyncioModel, UvloopModel
    from harness.clients.threaded import SyncModel, ThreadModel

    return {"sync": SyncModel, "thread": ThreadModel, "asyncio": AsyncioModel,
            "uvloop": UvloopModel}[model]()


def create(job: Job) -> ClientModel:
    """The model a job names; Locust models come from harness.clients.locust."""
    if job.model == "process":
        from harness.clients.process import ProcessModel
        return ProcessModel()
    return create_local(job.model, job)
