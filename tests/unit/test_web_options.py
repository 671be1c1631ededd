"""`--web` and `--web-token` as a user may type them: every value either gives an address
the server can bind or an OptionError of one line naming the option (exit 2 in cli.py),
never a traceback -- fuzzed, not listed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import OptionError
from harness.live.web import DEFAULT_HOST, DEFAULT_PORT, check_web, parse_web

VALUES = st.one_of(
    st.text(max_size=40),
    st.builds(lambda h, p: f"{h}:{p}", st.sampled_from(
        ["127.0.0.1", "0.0.0.0", "::1", "[::1]", "localhost", "example", "", "10.1.2.3"]),
        st.one_of(st.integers(-10, 70000), st.text(max_size=6))))


@settings(max_examples=400, deadline=None)
@given(VALUES, st.one_of(st.none(), st.text(max_size=10)))
def test_any_value_parses_or_is_a_one_line_option_error(value: str, token: str | None):
    try:
        host, port = parse_web(value)
        check_web(host, port, token)
    except OptionError as exc:
        text = str(exc)
        assert text.startswith("--web") and "\n" not in text
        return
    assert 0 <= port <= 65535 and host
    assert token is not None and token.strip() or host in ("localhost", "::1") or \
        host.startswith("127.")


def test_bare_web_is_loopback_8089():
    assert parse_web("") == (DEFAULT_HOST, DEFAULT_PORT) == ("127.0.0.1", 8089)
    assert parse_web("9000") == ("127.0.0.1", 9000)
    assert parse_web("[::1]:0") == ("::1", 0)
