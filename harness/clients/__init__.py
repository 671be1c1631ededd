"""How users are scheduled: the client models (sync, thread, asyncio, uvloop, process,
Locust), the flow driver, pacing and the load processes. The registry of what each model
is lives in core/registry.py, read by the scenario check, the worker and the verdict."""
