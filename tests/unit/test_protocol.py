"""Messages: round trips, and every kind of garbage raises Malformed (never anything else)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.control import messages as protocol
from harness.control.messages import Malformed, VersionMismatch


def test_round_trip():
    frame = protocol.encode("HELLO", name="w1", pid=12, host="h")
    msg = protocol.decode(frame)
    assert msg["t"] == "HELLO" and msg["name"] == "w1" and msg["v"] == protocol.VERSION


@pytest.mark.parametrize("payload", [
    {"v": protocol.VERSION, "t": "NOPE"},
    {"v": protocol.VERSION, "t": "HELLO", "name": 5, "pid": 1, "host": "h"},
    {"v": protocol.VERSION, "t": "HELLO", "name": "x", "pid": True, "host": "h"},
    {"v": protocol.VERSION, "t": "STATS", "model": 0},
    [1, 2, 3],
    "HELLO",
])
def test_wrong_shapes_are_malformed(payload):
    with pytest.raises(Malformed):
        protocol.decode(msgpack.packb(payload))


def test_version_mismatch():
    with pytest.raises(VersionMismatch):
        protocol.decode(msgpack.packb({"v": 99, "t": "HELLO", "name": "x", "pid": 1,
                                       "host": "h"}))


@given(st.binary(max_size=300))
def test_random_bytes_only_raise_malformed(data):
    try:
        protocol.decode(data)
    except Malformed:
        pass


def test_check_cells():
    good = [[0, "home", {"hist": b"x", "errors": {}, "bytes": 0, "n": 0}]]
    assert protocol.check_cells(good)[0][1] == "home"
    with pytest.raises(Malformed):
        protocol.check_cells([[0, "home", {"hist": "not bytes", "errors": {}, "bytes": 0,
                                           "n": 0}]])
