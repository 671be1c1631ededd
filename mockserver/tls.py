"""HTTPS for the mockserver: the server's SSL context, and a self-signed certificate made at
start (with `cryptography`, never a shell-out to openssl).

Session resumption is on (TLS 1.3 tickets, and a TLS 1.2 session cache), so a client's
`handshake = "resume"` can be measured against us; every completed handshake, and every
resumed one, is counted in /_mock/stats (protocol.py reads the SSL object when the
connection is made, which asyncio and uvloop do once the handshake is done).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from mockserver.errors import ConfigError


@dataclass(frozen=True)
class TlsOptions:
    cert: str
    key: str
    client_ca: str | None = None   # require client certificates signed by this CA (mTLS)


def server_context(opts: TlsOptions, http2: bool = True) -> ssl.SSLContext:
    """The context every server process serves with; raises ConfigError naming the option
    whose file is missing or not a certificate/key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # h2.py serves the first; the server's order decides which a client offering both gets
    ctx.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    try:
        ctx.load_cert_chain(opts.cert, opts.key)
    except FileNotFoundError as exc:
        raise ConfigError("--tls-cert/--tls-key", f"no such file: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError("--tls-cert/--tls-key",
                          f"expected a PEM certificate and its key: {exc}") from None
    if opts.client_ca:
        try:
            ctx.load_verify_locations(cafile=opts.client_ca)
        except FileNotFoundError:
            raise ConfigError("--tls-client-ca", f"no such file: {opts.client_ca}") from None
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError("--tls-client-ca", f"expected PEM certificates: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
        # In TLS 1.3 the server checks a client certificate after the client's handshake
        # is done, and asyncio and uvloop drop the connection without sending the alert:
        # a client would see a bare reset. In TLS 1.2 the check is part of the handshake,
        # so a refused certificate is a failed handshake (tls_handshake) as it should be.
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER form, as `openssl x509 -fingerprint -sha256`
    prints it (colon-separated upper-case hex)."""
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)).upper()


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A fresh key and a self-signed certificate valid for `host`, localhost and the
    loopback addresses, written to `directory` (cert.pem, key.pem); a run pins this very
    certificate as its only trusted one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address("::1"))]
    try:
        address = ipaddress.ip_address(host)
        if all(not (isinstance(n, x509.IPAddress) and n.value == address) for n in names):
            names.append(x509.IPAddress(address))
    except ValueError:
        if host != "localhost":
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mockserver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path
