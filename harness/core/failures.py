"""Why a request failed: the error kinds of errors.csv, and the three `classify` functions
that sort each client library's exceptions into them, side by side so they stay in step.

stdlib (http.client, sockets) and aiohttp are sorted by exception type. Locust hands over
whatever its client raised or wrapped -- geventhttpclient's and requests' own types, which
we do not import into every load process -- so it is sorted by type where the type is
stdlib, and by the type's name or message where no importable type exists.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl

# Error kinds, as they appear in errors.csv.
CONNECT_REFUSED = "connect_refused"
TIMEOUT = "timeout"
RESET = "reset"
STATUS = "unexpected_status"
MALFORMED = "malformed_response"
BODY_LENGTH = "body_length_mismatch"
BODY_TOO_LARGE = "body_too_large"  # a flow step's captured body passed [run].max_body
DEFAULT_MAX_BODY = 1 << 20         # [run].max_body unless the scenario says
TLS_VERIFY = "tls_verify"          # the server's certificate was rejected
TLS_HANDSHAKE = "tls_handshake"    # any other TLS failure (protocol, alert, client cert)
EXTRACT_FAILED = "extract_failed"  # a flow step's extraction found nothing: the flow aborts
TEMPLATE_FAILED = "template_failed"  # a rendered value cannot go where it goes (CR/LF)
H2_RESET = "h2_reset"              # HTTP/2: the server reset the stream (its code in detail)
GOAWAY = "goaway"                  # HTTP/2: the connection went away before the answer
ABORTED = "aborted"                # a flow iteration that did not reach its end
OTHER = "other"
# failures before a request reached HTTP: the target never saw it, so it is not `sent`
NOT_ON_WIRE = frozenset({CONNECT_REFUSED, TLS_VERIFY, TLS_HANDSHAKE})


class RequestFailed(Exception):
    """A request that did not succeed, with its kind; `keep` is True when the connection
    is still usable (an unexpected status), False when it must be reopened."""

    def __init__(self, kind: str, detail: str = "", keep: bool = False) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind, self.keep = kind, keep


def classify_stdlib(exc: BaseException) -> str:
    """http.client, socket and ssl errors (the sync and thread models, the fast engine)."""
    if isinstance(exc, ConnectionRefusedError):
        return CONNECT_REFUSED
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLS_VERIFY
    if isinstance(exc, ssl.SSLError):
        return TLS_HANDSHAKE
    if isinstance(exc, TimeoutError | socket.timeout):
        return TIMEOUT
    if isinstance(exc, http.client.IncompleteRead):
        return BODY_LENGTH
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return RESET
    if isinstance(exc, http.client.HTTPException):
        return MALFORMED
    return OTHER


def classify_aiohttp(exc: BaseException) -> str:
    """aiohttp's error tree (the asyncio and uvloop models' aiohttp engine)."""
    import aiohttp  # only the processes that run aiohttp pay for importing it

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TLS_VERIFY
    if isinstance(exc, aiohttp.ClientSSLError):
        return TLS_HANDSHAKE
    if isinstance(exc, aiohttp.ClientOSError) and isinstance(exc.__cause__, ssl.SSLError):
        return classify_stdlib(exc.__cause__)
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return CONNECT_REFUSED
        if getattr(getattr(exc, "_conn_key", None), "is_ssl", False) and \
                isinstance(exc.os_error, ConnectionResetError | ssl.SSLError):
            return TLS_HANDSHAKE   # connected, then hung up on during the TLS handshake
        return OTHER
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return TIMEOUT
    if isinstance(exc, aiohttp.ClientPayloadError):
        return BODY_LENGTH
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return RESET
    if isinstance(exc, aiohttp.ClientResponseError):
        return MALFORMED
    return OTHER


# What Locust's two clients raise for a response they cannot parse: geventhttpclient's
# HTTPParseError, and http.client's (behind requests) BadStatusLine and kin.
_MALFORMED_NAMES = ("httpparseerror", "badstatusline", "linetoolong", "protocolerror",
                    "invalidchunklength")


def classify_locust(exc: BaseException) -> str:
    """Locust's clients: by stdlib type where there is one, else by name or message (see
    the module docstring for why substrings)."""
    text = f"{type(exc).__name__}: {exc}".lower()
    for kind in (EXTRACT_FAILED, TEMPLATE_FAILED, STATUS):   # our own, from a flow step
        if kind in text:
            return kind
    if isinstance(exc, ConnectionRefusedError) or "refused" in text:
        return CONNECT_REFUSED
    if isinstance(exc, ssl.SSLCertVerificationError) or "certificate verify failed" in text:
        return TLS_VERIFY
    if isinstance(exc, ssl.SSLError) or "ssl" in text:
        return TLS_HANDSHAKE
    if isinstance(exc, TimeoutError) or "timeout" in text or "timed out" in text:
        return TIMEOUT
    if isinstance(exc, ConnectionResetError) or "reset" in text or "disconnected" in text:
        return RESET
    if isinstance(exc, http.client.IncompleteRead) or "incompleteread" in text:
        return BODY_LENGTH
    if isinstance(exc, http.client.HTTPException) or any(n in text for n in _MALFORMED_NAMES):
        return MALFORMED
    return OTHER


def classify_httpx(exc: BaseException) -> str:
    """httpx's error tree (the sync and thread models over HTTP/2). httpcore hands h2's
    events over as the text of a RemoteProtocolError: a stream reset and a GOAWAY are
    told apart by it."""
    import httpx  # only the processes that run httpx pay for importing it

    if isinstance(exc, httpx.TimeoutException):
        return TIMEOUT
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        if isinstance(cause, OSError):
            return classify_stdlib(cause) if classify_stdlib(cause) != RESET \
                else TLS_HANDSHAKE
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text:
            return TLS_VERIFY
        if "Connection refused" in text:
            return CONNECT_REFUSED
        return TLS_HANDSHAKE if "SSL" in text else OTHER
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc)
        code = re.search(r"error_code:(?:ErrorCodes\.)?(\w+)", text)
        detail = f"/{h2_code_name(code.group(1))}" if code else ""   # errors.csv's detail
        if "StreamReset" in text:
            return H2_RESET + detail
        if "ConnectionTerminated" in text:
            return GOAWAY + detail
        if "disconnected" in text or "closed" in text:
            return RESET
        return MALFORMED
    if isinstance(exc, httpx.LocalProtocolError) and "received" in str(exc):
        # httpcore hands h2's refusal of what the server sent (an oversized header list,
        # a CONTINUATION flood) over as a *local* protocol error
        return MALFORMED
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return RESET
    return OTHER


def h2_code_name(code: int | str) -> str:
    """An HTTP/2 error code by its RFC 9113 name (INTERNAL_ERROR), as errors.csv's detail
    says it whichever client reported it; an unknown code in hex."""
    from h2.errors import ErrorCodes
    try:
        return ErrorCodes(int(code)).name
    except ValueError:
        return str(code) if not str(code).isdigit() else f"0x{int(code):x}"
