"""Each latency model's samples follow its parameters (KS tests against scipy's
distributions), bad parameters name their field, and seeds reproduce draws."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from mockserver.latency import (
    Z99,
    ConfigError,
    parse_latency,
    parse_latency_header,
)

N = 4000


def draw(spec: dict, n: int = N, seed: int = 1) -> list[float]:
    model = parse_latency(spec)
    rng = random.Random(seed)
    return [model.sample(rng) * 1000.0 for _ in range(n)]  # in ms


def assert_fits(samples: list[float], cdf) -> None:
    result = stats.kstest(samples, cdf)
    assert result.pvalue > 0.001, f"KS rejects: D={result.statistic:.4f} p={result.pvalue:.2g}"


def test_fixed_is_exact():
    assert set(draw({"dist": "fixed", "ms": 12.5}, 100)) == {12.5}


def test_uniform():
    assert_fits(draw({"dist": "uniform", "min_ms": 10, "max_ms": 30}),
                stats.uniform(loc=10, scale=20).cdf)


def test_normal_truncated_at_zero():
    samples = draw({"dist": "normal", "mean_ms": 5, "sd_ms": 5})
    assert min(samples) >= 0
    a = (0 - 5) / 5
    assert_fits(samples, stats.truncnorm(a, math.inf, loc=5, scale=5).cdf)


def test_lognormal_median_and_p99():
    samples = draw({"dist": "lognormal", "median_ms": 50, "p99_ms": 200}, n=20000)
    sigma = (math.log(200) - math.log(50)) / Z99
    assert_fits(samples[:N], stats.lognorm(s=sigma, scale=50).cdf)
    ordered = sorted(samples)
    assert ordered[len(ordered) // 2] == pytest.approx(50, rel=0.05)
    assert ordered[int(len(ordered) * 0.99)] == pytest.approx(200, rel=0.12)


def test_exponential():
    assert_fits(draw({"dist": "exponential", "mean_ms": 20}), stats.expon(scale=20).cdf)


def test_pareto_with_cap():
    samples = draw({"dist": "pareto", "scale_ms": 10, "alpha": 2.5, "cap_ms": 600_000})  # the cap
    assert_fits(samples, stats.pareto(b=2.5, scale=10).cdf)
    capped = draw({"dist": "pareto", "scale_ms": 10, "alpha": 0.5, "cap_ms": 100})
    assert max(capped) == 100 and min(capped) >= 10


def test_mixture_weights():
    samples = draw({"dist": "mixture", "components": [
        {"weight": 9, "dist": "fixed", "ms": 1},
        {"weight": 1, "dist": "fixed", "ms": 100},
    ]}, n=10000)
    slow = sum(s == 100 for s in samples) / len(samples)
    assert slow == pytest.approx(0.1, abs=0.015)
    assert set(samples) == {1, 100}


def test_seed_reproduces_draws():
    spec = {"dist": "lognormal", "median_ms": 5, "p99_ms": 50}
    assert draw(spec, 50, seed=3) == draw(spec, 50, seed=3)
    assert draw(spec, 50, seed=3) != draw(spec, 50, seed=4)


@pytest.mark.parametrize("spec, field", [
    ({"dist": "gamma"}, "latency.dist"),
    ({"dist": "fixed"}, "latency.ms"),
    ({"dist": "fixed", "ms": -1}, "latency.ms"),
    ({"dist": "fixed", "ms": "5"}, "latency.ms"),
    ({"dist": "uniform", "min_ms": 5, "max_ms": 1}, "latency.max_ms"),
    ({"dist": "lognormal", "median_ms": 50, "p99_ms": 10}, "latency.p99_ms"),
    ({"dist": "lognormal", "median_ms": 0, "p99_ms": 10}, "latency.median_ms"),
    ({"dist": "exponential", "mean_ms": 0}, "latency.mean_ms"),
    ({"dist": "pareto", "scale_ms": 1, "alpha": 0}, "latency.alpha"),
    ({"dist": "fixed", "ms": 1, "jitter": 2}, "latency.jitter"),
    ({"dist": "mixture", "components": []}, "latency.components"),
    ({"dist": "mixture", "components": [{"weight": 1, "dist": "nope"}]},
     "latency.components[0].dist"),
    ("slow", "latency"),
])
def test_bad_parameters_name_the_field(spec, field):
    with pytest.raises(ConfigError) as info:
        parse_latency(spec)
    assert info.value.field == field


def test_header_form():
    model = parse_latency_header("lognormal;median=50;p99=200")
    assert model.to_dict() == {"dist": "lognormal", "median_ms": 50.0, "p99_ms": 200.0}
    assert parse_latency_header("25").to_dict() == {"dist": "fixed", "ms": 25.0}
    assert parse_latency_header("uniform;min=1;max_ms=3").to_dict()["max_ms"] == 3.0
    for bad in ("", "lognormal;median=x", "bogus;a=1", "-5", "fixed;ms"):
        with pytest.raises(ConfigError):
            parse_latency_header(bad)
