"""Names and lines the rooms share: the row that sums a model's requests, the saturation
line a load process is judged against."""

AGGREGATED = "Aggregated"   # the summary's and timeseries' row over every request name
SATURATED_CPU = 0.9         # a second at >= 90% of a core: the load process is its own limit
SATURATED_SHARE = 0.25      # a model so for more than a quarter of its measured seconds
# the other signals of a client-bound second (clients/sampler.py)
LOOP_LAG_S = 0.010          # its loop woke more than 10 ms late (in most ticks of a second)
LATE_SHARE = 0.01           # more than 1% of its sends went out over 10 ms late
HOST_IDLE = 0.05            # the host had under 5% of its CPU idle ...
HOST_WAIT = 0.10            # ... and the process waited for a CPU 10% of the second
