"""The mock's queueing station against queueing theory: fed Poisson arrivals, an M/M/k
station's mean wait is Erlang C's and an M/D/1 station's is Pollaczek-Khinchine's; a full
queue answers 503; and the config refuses what it cannot use, naming the key."""

from __future__ import annotations

import math
import random

import pytest

from mockserver.config import parse_config
from mockserver.errors import ConfigError
from mockserver.queue import QueueSpec, Station, parse_queue


def erlang_c_wait(k: int, lam: float, mu: float) -> float:
    """M/M/k: the mean time in queue (Erlang C over k*mu - lambda)."""
    a = lam / mu
    rho = a / k
    top = a ** k / math.factorial(k) / (1 - rho)
    p_wait = top / (sum(a ** n / math.factorial(n) for n in range(k)) + top)
    return p_wait / (k * mu - lam)


def simulated_mean_wait(spec: QueueSpec, lam: float, n: int, seed: int) -> float:
    rng = random.Random(seed)
    station = Station(spec)
    t = 0.0
    for _ in range(n):
        t += rng.expovariate(lam)
        assert station.admit(t, rng) is not None
    return station.wait_s_total / station.served


@pytest.mark.parametrize("load", [0.5, 0.8])
def test_mmk_mean_wait_is_erlang_c(load):
    spec = QueueSpec(servers=4, service_ms=2, dist="exponential", max_queue=10**6)
    lam = load * spec.capacity_rps
    theory = erlang_c_wait(4, lam, 1 / 0.002)
    measured = simulated_mean_wait(spec, lam, 400_000, seed=7)
    assert measured == pytest.approx(theory, rel=0.10)


def test_md1_mean_wait_is_pollaczek_khinchine():
    spec = QueueSpec(servers=1, service_ms=2, dist="fixed", max_queue=10**6)
    lam = 0.5 * spec.capacity_rps
    rho, s = 0.5, 0.002
    theory = rho * s / (2 * (1 - rho))
    assert simulated_mean_wait(spec, lam, 200_000, seed=3) == pytest.approx(theory, rel=0.10)


def test_held_time_is_wait_plus_service_in_fifo_order():
    station = Station(QueueSpec(servers=2, service_ms=10, max_queue=1))
    rng = random.Random(0)
    assert station.admit(0.0, rng) == pytest.approx(0.010)    # a free server
    assert station.admit(0.0, rng) == pytest.approx(0.010)    # the other one
    assert station.admit(0.001, rng) == pytest.approx(0.019)  # waits 9 ms for the first
    assert station.admit(0.002, rng) is None                  # one waits already: 503
    snap = station.snapshot(0.002)
    assert (snap["depth"], snap["busy"], snap["served"], snap["rejected"]) == (1, 2, 3, 1)
    assert station.admit(0.0105, rng) == pytest.approx(0.010)  # the second server is free


@pytest.mark.parametrize("raw, key", [
    ({"servers": 0, "service_ms": 2}, "queue.servers"),
    ({"servers": 2}, "queue"),
    ({"servers": 2, "service_ms": 2, "dist": "pareto"}, "queue.dist"),
    ({"servers": 2, "service_ms": 2, "max_queue": -1}, "queue.max_queue"),
    ({"servers": 2, "service_ms": 2, "speed": 1}, "queue.speed"),
    ("fast", "queue"),
])
def test_bad_queue_config_names_the_key(raw, key):
    with pytest.raises(ConfigError) as err:
        parse_queue(raw, "queue")
    assert err.value.field == key


def test_queue_on_the_default_and_on_a_route():
    config = parse_config({"default": {"queue": {"servers": 4, "service_ms": 2}},
                           "routes": [{"path": "/slow", "queue": {"servers": 1,
                                                                  "service_ms": 50}}]})
    assert config.default.queue.capacity_rps == pytest.approx(2000)
    assert config.routes[0].profile.queue.capacity_rps == pytest.approx(20)
    assert config.to_dict()["default"]["queue"]["servers"] == 4
