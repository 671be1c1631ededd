"""The HTTP/2 frame guard (mockserver/h2frames.py): frame boundaries followed across any
split of the reads, each bound crossed at the frame that crosses it and not before."""

from __future__ import annotations

import h2.config
import h2.connection
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from mockserver.h2frames import (
    CONTINUATION_FLOOD,
    EMPTY_FRAMES,
    PING_FLOOD,
    PREFACE,
    RAPID_RESET,
    SETTINGS_FLOOD,
    FrameGuard,
    FrameLimits,
)

LIMITS = FrameLimits(resets_per_s=5, settings_per_s=3, pings_per_s=3, empty_per_s=4,
                     block_frames=4, block_bytes=1000)


def _feed_split(data: bytes, size: int, now: float = 100.0) -> str | None:
    guard = FrameGuard(LIMITS, preface=True)
    data = PREFACE + data
    for i in range(0, len(data), size):
        offence = guard.feed(data[i:i + size], now)
        if offence is not None:
            return offence
    return None


def _rapid_reset(n: int) -> bytes:
    out = b""
    for i in range(n):
        headers = HeadersFrame(2 * i + 1)
        headers.data = b"\x82\x84"   # :method GET, :path / (static table)
        headers.flags.add("END_HEADERS")
        out += headers.serialize() + RstStreamFrame(2 * i + 1).serialize()
    return out


def test_a_real_clients_bytes_commit_no_offence_at_any_split():
    """What h2's own client sends for 50 requests with bodies: never an offence, whatever
    the reads' sizes (one byte at a time included)."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    for i in range(50):
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, [(":method", "POST"), (":path", f"/p{i}"),
                                  (":scheme", "http"), (":authority", "x"),
                                  ("x-pad", "v" * 200)])
        client.send_data(sid, b"b" * 300, end_stream=True)
    data = client.data_to_send()[len(PREFACE):]
    for size in (1, 2, 7, 9, 10, 64, 1000, len(data)):
        assert _feed_split(data, size) is None, size


def test_each_flood_is_named_at_any_split():
    settings = b"".join(SettingsFrame(0).serialize() for _ in range(4))
    acks = b"".join(_ack(SettingsFrame(0)) for _ in range(50))
    pings = b"".join(PingFrame(0, b"12345678").serialize() for _ in range(4))
    empty = b"".join(DataFrame(1).serialize() for _ in range(5))
    cases = {RAPID_RESET: _rapid_reset(6), SETTINGS_FLOOD: settings, PING_FLOOD: pings,
             EMPTY_FRAMES: empty, CONTINUATION_FLOOD: _continuations(5, 10)}
    for offence, data in cases.items():
        for size in (1, 3, 9, 17, len(data)):
            assert _feed_split(data, size) == offence, (offence, size)
    # SETTINGS ACKs are answers, not a flood; a header block may have 4 CONTINUATIONs
    assert _feed_split(acks, 5) is None
    assert _feed_split(_continuations(4, 10), 1) is None


def test_the_bound_is_one_past_the_limit_and_counts_restart_each_second():
    guard = FrameGuard(LIMITS, preface=False)
    assert guard.feed(_rapid_reset(5), 10.2) is None          # five in a second: allowed
    assert guard.feed(_rapid_reset(1), 11.0) is None          # a new second
    assert guard.feed(_rapid_reset(5), 11.5) == RAPID_RESET   # 6 in second 11


def test_a_header_block_too_large_in_bytes_is_a_continuation_flood():
    assert _feed_split(_continuations(2, 600), 11) == CONTINUATION_FLOOD
    assert _feed_split(_continuations(1, 400), 11) is None


def _continuations(n: int, size: int) -> bytes:
    headers = HeadersFrame(1)
    headers.data = b"\x82"
    out = headers.serialize()
    for i in range(n):
        frame = ContinuationFrame(1)
        frame.data = b"a" * size
        if i == n - 1 and n <= LIMITS.block_frames and (n + 1) * size < LIMITS.block_bytes:
            frame.flags.add("END_HEADERS")
        out += frame.serialize()
    return out


def _ack(frame: SettingsFrame) -> bytes:
    frame.flags.add("ACK")
    return frame.serialize()
