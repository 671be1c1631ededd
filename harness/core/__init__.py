"""The shared vocabulary of the harness, importing nothing above it: what the scenario
check, the coordinator and every load process read alike (a data table's rows, ...)."""
