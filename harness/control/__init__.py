"""How a run is coordinated: the wire (messages), a worker's slice (job), what a run
measured (outcome), the coordinator's ROUTER loop and the worker's DEALER loop."""
