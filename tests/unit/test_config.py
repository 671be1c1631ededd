"""Config validation names the bad field, and a valid config round-trips through to_dict."""

from __future__ import annotations

import json

import pytest

from mockserver.config import load_config_file, parse_config
from mockserver.latency import ConfigError

GOOD = {
    "default": {"latency": {"dist": "uniform", "min_ms": 1, "max_ms": 2}, "status": 200,
                "body_bytes": 10},
    "faults": {"error": {"p": 0.1, "status": 503}, "reset": 0.01},
    "routes": [{"path": "/api/*", "method": "get", "status": 201,
                "faults": {"spike": {"p": 0.5, "ms": 100}}}],
    "limits": {"max_header_bytes": 4096, "idle_timeout_s": 2},
}


def test_round_trip():
    config = parse_config(GOOD)
    again = parse_config(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert config.routes[0].matches("GET", "/api/users/1")
    assert not config.routes[0].matches("POST", "/api/users/1")
    assert config.faults.error_status == 503 and config.faults.reset == 0.01


@pytest.mark.parametrize("patch, field", [
    ({"bogus": 1}, "bogus"),
    ({"default": {"status": 99}}, "default.status"),
    ({"default": {"body_bytes": -1}}, "default.body_bytes"),
    ({"default": {"latency": {"dist": "x"}}}, "default.latency.dist"),
    ({"faults": {"error": {"p": 1.5}}}, "faults.error.p"),
    ({"faults": {"explode": 0.1}}, "faults.explode"),
    ({"faults": {"hang": {"p": 0.1, "ms": 1e9}}}, "faults.hang.ms"),
    ({"routes": [{"status": 200}]}, "routes[0].path"),
    ({"routes": [{"path": "/x", "method": "FETCH"}]}, "routes[0].method"),
    ({"routes": "nope"}, "routes"),
    ({"limits": {"max_body_bytes": "big"}}, "limits.max_body_bytes"),
])
def test_errors_name_the_field(patch, field):
    with pytest.raises(ConfigError) as info:
        parse_config({**GOOD, **patch})
    assert info.value.field == field


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "routes.toml"
    bad.write_text("[default]\nstatus = 1000\n")
    with pytest.raises(ConfigError, match=r"routes.toml: default.status"):
        load_config_file(bad)
    broken = tmp_path / "routes.json"
    broken.write_text("{nope")
    with pytest.raises(ConfigError, match=r"routes.json: not valid json"):
        load_config_file(broken)
    good = tmp_path / "ok.toml"
    good.write_text('[[routes]]\npath = "/slow"\nlatency = { dist = "fixed", ms = 5 }\n')
    assert load_config_file(good).routes[0].profile.latency.sample(None) == 0.005
