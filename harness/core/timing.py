"""Timing constants more than one room reads."""

HEARTBEAT_S = 0.5          # worker and coordinator each send one at least this often
MAX_COUNT_RUN_S = 600.0    # a count-bounded run without a duration stops after this
