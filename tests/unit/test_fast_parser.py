"""The fast engine's connection (transports/http1_fast.py) against answers split at every byte: its
parser callbacks must not depend on how the bytes arrive. A real socket pair, the
connection on one end, the answer written in two parts (or a byte at a time) on the other.

Both ways a request goes out are held: `request` (a future: flows, a new connection) and
`post` (a callback-driven user's plain request, parsed by the lean parser that sees no
header -- a cut answer's head is learnt again from the reads it kept)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from harness.core.extraction import Answer
from harness.core.failures import BODY_LENGTH, BODY_TOO_LARGE, MALFORMED, RESET, RequestFailed
from harness.core.steps import KEEP_BODY
from harness.transports.http1_fast import FastConnection

ANSWERS = {
    "length": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Id: 7\r\n\r\nhello", 200, 5),
    "chunked": (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Id: 7\r\n\r\n"
                b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n", 201, 7),
    "empty": (b"HTTP/1.1 204 No Content\r\nX-Id: 7\r\n\r\n", 204, 0),
}


class Told:
    """A callback-driven user's stand-in: the answer `post` tells it, as a future."""

    def __init__(self) -> None:
        self.future = asyncio.get_running_loop().create_future()
        self.calls = 0

    def answered(self, status: int, nbytes: int) -> None:
        self.calls += 1
        self.future.set_result((status, nbytes))

    def failed(self, exc: Exception) -> None:
        self.calls += 1
        self.future.set_exception(exc)


async def _exchange(parts: list[bytes], close: bool = False, is_head: bool = False,
                    capture: int = 0, max_body: int | None = None, post: bool = False) -> object:
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, conn = await loop.create_connection(FastConnection, sock=ours)
    if max_body is not None:
        conn.max_body = max_body
    try:
        data = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        if post:
            told = Told()
            conn.post(data, is_head, 5.0, told)
            waiter = told.future
        else:
            waiter = conn.request(data, is_head, 5.0, capture, frozenset({b"x-id"}))
        await loop.sock_recv(theirs, 4096)
        try:
            for part in parts:
                await loop.sock_sendall(theirs, part)
                for _ in range(3):   # let the loop read it: one read per part
                    await asyncio.sleep(0)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the connection gave up early (a failure): its answer says which
        if close:
            theirs.close()
        return await asyncio.wait_for(waiter, 5)
    finally:
        transport.close()
        theirs.close()


@pytest.mark.parametrize("post", [False, True], ids=["request", "post"])
@pytest.mark.parametrize("shape", sorted(ANSWERS))
async def test_every_split_of_an_answer_reads_the_same(shape, post):
    raw, status, size = ANSWERS[shape]
    for cut in range(len(raw) + 1):
        got = await _exchange([raw[:cut], raw[cut:]], post=post)
        assert got == (status, size), (cut, got)


@pytest.mark.parametrize("post", [False, True], ids=["request", "post"])
@pytest.mark.parametrize("shape", sorted(ANSWERS))
async def test_an_answer_a_byte_at_a_time_reads_the_same(shape, post):
    """Every byte its own read: split heads, split chunk sizes, a split CRLF."""
    raw, status, size = ANSWERS[shape]
    assert await _exchange([raw[i:i + 1] for i in range(len(raw))], post=post) \
        == (status, size)


@pytest.mark.parametrize("post", [False, True], ids=["request", "post"])
async def test_a_second_answer_in_the_same_read_is_refused(post):
    """Pipelined answers: bytes past the announced end, in the read that ended it, mean
    the answer was not what it said it was -- malformed, never a second sample."""
    raw = ANSWERS["length"][0]
    with pytest.raises(RequestFailed) as err:
        await _exchange([raw + raw], post=post)
    assert err.value.kind == MALFORMED


async def test_post_tells_its_receiver_once_and_a_cut_head_is_a_reset():
    raw = ANSWERS["chunked"][0]
    for cut in (5, 20, raw.index(b"\r\n\r\n") + 2):   # inside the head: no answer began
        with pytest.raises(RequestFailed) as err:
            await _exchange([raw[:cut]], close=True, post=True)
        assert err.value.kind == RESET, cut
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, conn = await loop.create_connection(FastConnection, sock=ours)
    told = Told()
    conn.post(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, 5.0, told)
    await loop.sock_sendall(theirs, raw)
    assert await asyncio.wait_for(told.future, 5) == (201, 7)
    theirs.close()   # closed after the answer: nothing more to tell
    await asyncio.sleep(0.05)
    conn.check_timeout(conn.loop.time() + 100)   # and no timeout either: it was told
    assert told.calls == 1
    transport.close()


async def test_a_captured_answer_keeps_its_headers_and_body_at_every_split():
    raw, _, _ = ANSWERS["chunked"]
    for cut in range(len(raw) + 1):
        got = await _exchange([raw[:cut], raw[cut:]], capture=KEEP_BODY)
        assert isinstance(got, Answer)
        assert (got.status, got.body, got.headers) == (201, b"abcdefg", [("X-Id", "7")]), cut


@pytest.mark.parametrize("post", [False, True], ids=["request", "post"])
async def test_a_close_delimited_body_ends_at_the_close_and_a_cut_one_is_short(post):
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    for cut in range(len(head), len(head) + 6):
        got = await _exchange([(head + b"hello")[:cut], (head + b"hello")[cut:]], close=True,
                              post=post)
        assert got == (200, 5), cut
    for cut_answer in (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
                       b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
                       b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"):
        with pytest.raises(RequestFailed) as err:
            await _exchange([cut_answer], close=True, post=post)
        assert err.value.kind == BODY_LENGTH, cut_answer


@pytest.mark.parametrize("post", [False, True], ids=["request", "post"])
async def test_head_ends_at_the_head_whatever_its_length_says(post):
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    for cut in range(len(raw) + 1):
        assert await _exchange([raw[:cut], raw[cut:]], is_head=True, post=post) == (200, 0), cut


async def test_a_captured_body_over_max_body_fails_whatever_the_split():
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n" + b"y" * 20
    for cut in range(len(raw) - 25, len(raw) + 1):
        with pytest.raises(RequestFailed) as err:
            await _exchange([raw[:cut], raw[cut:]], capture=KEEP_BODY, max_body=10)
        assert err.value.kind == BODY_TOO_LARGE, cut
