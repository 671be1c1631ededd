"""[target]: the URL, the embedded mock's profile, TLS (files read as PEM text) and the
handshake mode."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.scenario.ctx import Ctx, read_file, show
from harness.scenario.spec import (
    HANDSHAKES,
    HOSTNAME,
    HTTP_VERSIONS,
    MAX_PEM_BYTES,
    TlsSpec,
)
from mockserver.config import parse_config
from mockserver.errors import ConfigError


@dataclass(frozen=True)
class _Target:
    url: str | None
    mock: dict[str, Any] | None
    mock_tls: bool
    tls: TlsSpec
    handshake: str
    http: str = "1.1"


def parse_target(ctx: Ctx, raw: dict[str, Any], base: Path | None) -> _Target:
    ctx.keys(raw, ("url", "mock", "tls", "handshake", "http"), "[target]")
    http = raw.get("http", "1.1")
    if http not in HTTP_VERSIONS:
        raise ctx.fail("[target].http", "expected one of "
                       + ", ".join(f'"{v}"' for v in HTTP_VERSIONS)
                       + f" (auto: TLS's ALPN decides), got {show(http)}")
    url = raw.get("url")
    if url is not None:
        url, problem = target_url(url)
        if problem:
            raise ctx.fail("[target].url", problem)
    mock, mock_tls = None, False
    if "mock" in raw:
        table = dict(ctx.table(raw["mock"], "[target.mock]"))
        mock_tls = table.pop("tls", False)
        if not isinstance(mock_tls, bool):
            raise ctx.fail("[target.mock].tls", f"expected true or false, got {show(mock_tls)}")
        mock = mock_config(table)
        try:
            parse_config(mock)
        except ConfigError as exc:
            raise ctx.fail(f"[target.mock].{exc.field.removeprefix('default.')}",
                           exc.message) from None
    handshake = raw.get("handshake", "per-connection")
    tls = TlsSpec()
    if "tls" in raw:
        table = ctx.table(raw["tls"], "[target.tls]")
        if isinstance(url, str) and url.startswith("http://"):
            raise ctx.fail("[target.tls]", f"TLS settings need an https:// URL, got {show(url)}")
        if url is None and "mock" in raw and not mock_tls:
            raise ctx.fail("[target.tls]", "the embedded mock serves plain HTTP: set "
                                           "[target.mock].tls = true, or an https:// url")
        tls = _tls(ctx, table, base, pinned=url is None and mock_tls)
        if "handshake" in table:
            if "handshake" in raw:
                raise ctx.fail("[target.tls].handshake", "set in [target] already: give one")
            handshake = table["handshake"]
    where = "[target.tls].handshake" if "handshake" in raw.get("tls", {}) \
        else "[target].handshake"
    if handshake not in HANDSHAKES:
        raise ctx.fail(where, f"expected one of {', '.join(HANDSHAKES)}, got {show(handshake)}")
    if handshake == "resume" and isinstance(url, str) and url.startswith("http://"):
        raise ctx.fail(where, '"resume" resumes TLS sessions: it needs an https:// URL')
    return _Target(url, mock, mock_tls, tls, handshake, http)


_URL_PATH = re.compile(r"[\x21-\x7e]*")
_URL_HOST = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")


def target_url(url: object) -> tuple[str, str | None]:
    """The one rule for a target URL, for [target].url and --target alike, so every model
    sends the same request line: (the URL normalised, None) or (url, what is wrong).

    http:// or https://, a host, a port 1-65535 if given, a path prefix of printable
    ASCII joined to each request's path with exactly one slash (trailing slashes dropped).
    Refused: a query or fragment (models would put them in different places, or drop the
    path), user:password@ (some libraries turn it into Basic auth, others drop it: set an
    Authorization header instead)."""
    shown = show(url)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return str(url), f"expected an http:// or https:// URL, got {shown}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url, f"expected a valid host and port (1-65535), got {shown}"
    if "@" in parts.netloc:   # never echoed: the password stays out of logs
        return url, ("credentials in the URL (user:password@) are not sent the same way by "
                     "every model: set an Authorization header instead")
    if "?" in url or "#" in url:
        return url, (f"a query or fragment on the target is not joined the same way by "
                     f"every model: put it in each request's path, got {shown}")
    if not parts.hostname or not _URL_HOST.fullmatch(parts.netloc):
        return url, f"expected a host name or address, got {shown}"
    if port == 0 or (port is None and parts.netloc.endswith(":")):
        return url, f"expected a port 1-65535, got {shown}"
    if not _URL_PATH.fullmatch(parts.path):
        return url, (f"expected a path of printable ASCII without spaces (percent-encode "
                     f"the rest), got {shown}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}", None


def _tls(ctx: Ctx, table: dict[str, Any], base: Path | None, pinned: bool) -> TlsSpec:
    """[target.tls]: flags checked, files read (relative to the scenario file) and parsed
    as PEM, so a bad file is an exit-2 error before anything starts. `base` None (a run
    recovered from meta.json) keeps the checks but reads no file."""
    ctx.keys(table, ("verify", "ca", "cert", "key", "server_name", "handshake"),
             "[target.tls]")
    verify = table.get("verify", True)
    if not isinstance(verify, bool):
        raise ctx.fail("[target.tls].verify", f"expected true or false, got {show(verify)}")
    if ("cert" in table) != ("key" in table):
        given, missing = ("cert", "key") if "cert" in table else ("key", "cert")
        raise ctx.fail(f"[target.tls].{given}",
                       f"expected {missing} too (a client certificate and its key)")
    if pinned and "ca" in table:
        raise ctx.fail("[target.tls].ca", "the embedded mock's own certificate is trusted "
                                          "automatically; ca is for a target of your own")
    server_name = table.get("server_name")
    if server_name is not None:
        server_name = ctx.string(server_name, "[target.tls].server_name", HOSTNAME,
                                 "a host name like api.example.test")
    pems: dict[str, str | None] = {}
    for key in ("ca", "cert", "key"):
        pems[key] = None
        if key in table:
            path = ctx.string(table[key], f"[target.tls].{key}", expected="a file path")
            if base is not None:
                pems[key] = _pem_file(ctx, key, base / path)
    if pems["cert"] is not None and pems["key"] is not None:
        _check_client_pair(ctx, pems["cert"], pems["key"])
    return TlsSpec(verify=verify, ca_pem=pems["ca"], cert_pem=pems["cert"],
                   key_pem=pems["key"], server_name=server_name)




def _pem_file(ctx: Ctx, key: str, path: Path) -> str:
    where = f"[target.tls].{key}"
    text = read_file(ctx, where, path, MAX_PEM_BYTES, "a PEM file").decode("ascii",
                                                                               "replace")
    marker = "PRIVATE KEY-----" if key == "key" else "-----BEGIN CERTIFICATE-----"
    if marker not in text:
        kind = "a PEM private key" if key == "key" else "PEM certificates"
        raise ctx.fail(where, f"expected {kind}: {path}")
    if key == "ca":
        import ssl
        try:
            ssl.create_default_context(cadata=text)
        except (ssl.SSLError, ValueError) as exc:
            raise ctx.fail(where, f"expected PEM certificates: {path} ({exc})") from None
    return text


def _check_client_pair(ctx: Ctx, cert_pem: str, key_pem: str) -> None:
    """The client certificate parses, the key is unencrypted, and they belong together."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as exc:
        raise ctx.fail("[target.tls].cert", f"expected a PEM certificate ({exc})") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        raise ctx.fail("[target.tls].key", "expected an unencrypted private key (this one "
                                           "needs a password)") from None
    except (ValueError, Exception) as exc:  # cryptography raises several types here
        raise ctx.fail("[target.tls].key", f"expected a PEM private key ({exc})") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, public) != \
            key.public_key().public_bytes(serialization.Encoding.DER, public):
        raise ctx.fail("[target.tls].key", "this key does not belong to [target.tls].cert")


def mock_config(table: dict[str, Any]) -> dict[str, Any]:
    """[target.mock] holds the default profile's keys plus faults/routes/limits."""
    profile_keys = ("latency", "status", "body_bytes", "queue")
    out: dict[str, Any] = {"default": {k: v for k, v in table.items() if k in profile_keys}}
    out.update({k: v for k, v in table.items() if k not in profile_keys})
    return out
