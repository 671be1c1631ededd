"""The fast engine's HTTP/2 header blocks, encoded once per fixed request: they decode to
the header list exactly, and leave a decoder's dynamic table as it was (so the same bytes
are right on every request of every connection, whatever was sent before)."""

from __future__ import annotations

import hpack
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.steps import RequestSpec
from harness.transports.wire import h2_headers
from mockserver.h2frames import stateless_block

token = st.text("abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=300)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(token, st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                         max_size=400)), max_size=30))
def test_a_block_decodes_to_its_list_and_adds_no_table_entry(extra):
    spec = RequestSpec("r", "POST", "/p?q=1", tuple(extra), b"body")
    headers = h2_headers(spec, "https", "127.0.0.1", 8443, "/base", 443)
    block = stateless_block(headers)
    decoder = hpack.Decoder()
    decoder.max_header_list_size = 1 << 30
    for _ in range(3):   # the same bytes, again and again, after other blocks too
        assert decoder.decode(block, raw=True) == headers
        assert len(decoder.header_table.dynamic_entries) == 0
        decoder.decode(hpack.Encoder().encode([(b"x-other", b"indexed")]), raw=True)
        decoder.header_table.dynamic_entries.clear()


def test_static_pairs_are_one_byte_and_long_values_take_multi_byte_lengths():
    block = stateless_block([(b":method", b"GET"), (b":path", b"/"), (b"x", b"v" * 300)])
    assert block[:2] == bytes((0x82, 0x84))   # static entries 2 and 4, indexed
    # a new name, then a 300-byte value: 127 in the prefix, then 173 in 7-bit groups
    assert block[2:6] == b"\x00\x01x\x7f" and block[6:8] == bytes((173 & 127 | 128, 1))
    assert hpack.Decoder().decode(block, raw=True)[2] == (b"x", b"v" * 300)
