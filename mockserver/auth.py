"""A target for user journeys: log in, get a token and a session cookie, use either.

`POST /auth/login` with a JSON body `{"user": NAME}` answers `{"token": T, "user": NAME}`
and sets `sid=T`; `GET /auth/me` answers 200 `{"user": NAME}` for a valid
`Authorization: Bearer T` or `sid` cookie, else 401. A token is the user and an HMAC of it,
so any process of a `--processes N` server verifies what another issued, and a token
damaged on the way (a bad extraction, a mangled template) is rejected and counted:
`/_mock/stats` has `auth_ok` and `auth_rejected`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from mockserver.http import Request

_SECRET = b"loadharness-mockserver-auth"   # a mock's secret: it guards nothing
# (route label for the stats, status, JSON body, extra header lines)
AuthReply = tuple[str, int, Any, bytes]


def issue(user: str) -> str:
    name = base64.urlsafe_b64encode(user.encode()).decode().rstrip("=")
    sig = hmac.new(_SECRET, user.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{name}.{sig}"


def verify(token: str) -> str | None:
    """The user a token was issued to, or None for a token we did not issue."""
    name, _, sig = token.partition(".")
    try:
        user = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    good = hmac.new(_SECRET, user.encode(), hashlib.sha256).hexdigest()[:32]
    return user if hmac.compare_digest(good, sig) else None


def handle(req: Request, arg: str) -> AuthReply:
    """/auth/login (POST) and /auth/me; anything else under /auth/ is 404."""
    if arg == "login" and req.method == "POST":
        return login(req)
    if arg == "me":
        return me(req)
    return "/auth", 404, {"error": "POST /auth/login or GET /auth/me"}, b""


def login(req: Request) -> AuthReply:
    try:
        user = json.loads(req.body or b"null")["user"]
        if not isinstance(user, str) or not user:
            raise TypeError
    except (ValueError, TypeError, KeyError):
        return "/auth/login", 400, {"error": 'expected a JSON body {"user": NAME}'}, b""
    token = issue(user)
    return ("/auth/login", 200, {"token": token, "user": user},
            b"Set-Cookie: sid=%s; Path=/; HttpOnly\r\n" % token.encode())


def me(req: Request) -> AuthReply:
    token = None
    auth = req.header(b"authorization")
    if auth is not None and auth[:7].lower() == b"bearer ":
        token = auth[7:].decode("latin-1").strip()
    else:
        for part in (req.header(b"cookie") or b"").decode("latin-1").split(";"):
            key, _, value = part.strip().partition("=")
            if key == "sid":
                token = value
    user = verify(token) if token else None
    if user is None:
        return ("/auth/me", 401, {"error": "no valid token or sid cookie"},
                b"WWW-Authenticate: Bearer\r\n")
    return "/auth/me", 200, {"user": user}, b""
