"""The fast engine's connection (transports/http1_fast.py) against answers split at every byte: its
parser callbacks must not depend on how the bytes arrive. A real socket pair, the
connection on one end, the answer written in two parts on the other."""

from __future__ import annotations

import asyncio
import socket

import pytest

from harness.core.extraction import Answer
from harness.core.failures import BODY_LENGTH, BODY_TOO_LARGE, RequestFailed
from harness.core.steps import KEEP_BODY
from harness.transports.http1_fast import FastConnection

ANSWERS = {
    "length": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Id: 7\r\n\r\nhello", 200, 5),
    "chunked": (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Id: 7\r\n\r\n"
                b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n", 201, 7),
    "empty": (b"HTTP/1.1 204 No Content\r\nX-Id: 7\r\n\r\n", 204, 0),
}


async def _exchange(parts: list[bytes], close: bool = False, is_head: bool = False,
                    capture: int = 0, max_body: int | None = None) -> object:
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, conn = await loop.create_connection(FastConnection, sock=ours)
    if max_body is not None:
        conn.max_body = max_body
    try:
        waiter = conn.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", is_head, 5.0, capture,
                              frozenset({b"x-id"}))
        await loop.sock_recv(theirs, 4096)
        for part in parts:
            await loop.sock_sendall(theirs, part)
            await asyncio.sleep(0)
        if close:
            theirs.close()
        return await asyncio.wait_for(waiter, 5)
    finally:
        transport.close()
        theirs.close()


@pytest.mark.parametrize("shape", sorted(ANSWERS))
async def test_every_split_of_an_answer_reads_the_same(shape):
    raw, status, size = ANSWERS[shape]
    for cut in range(len(raw) + 1):
        got = await _exchange([raw[:cut], raw[cut:]])
        assert got == (status, size), (cut, got)


async def test_a_captured_answer_keeps_its_headers_and_body_at_every_split():
    raw, _, _ = ANSWERS["chunked"]
    for cut in range(len(raw) + 1):
        got = await _exchange([raw[:cut], raw[cut:]], capture=KEEP_BODY)
        assert isinstance(got, Answer)
        assert (got.status, got.body, got.headers) == (201, b"abcdefg", [("X-Id", "7")]), cut


async def test_a_close_delimited_body_ends_at_the_close_and_a_cut_one_is_short():
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    for cut in range(len(head) + 1, len(head) + 6):
        got = await _exchange([(head + b"hello")[:cut], (head + b"hello")[cut:]], close=True)
        assert got == (200, 5), cut
    with pytest.raises(RequestFailed) as err:
        await _exchange([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"], close=True)
    assert err.value.kind == BODY_LENGTH


async def test_head_ends_at_the_head_whatever_its_length_says():
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    for cut in range(len(raw) + 1):
        assert await _exchange([raw[:cut], raw[cut:]], is_head=True) == (200, 0), cut


async def test_a_captured_body_over_max_body_fails_whatever_the_split():
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n" + b"y" * 20
    for cut in range(len(raw) - 25, len(raw) + 1):
        with pytest.raises(RequestFailed) as err:
            await _exchange([raw[:cut], raw[cut:]], capture=KEEP_BODY, max_body=10)
        assert err.value.kind == BODY_TOO_LARGE, cut
