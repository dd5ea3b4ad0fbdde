"""Who may call the API: the bearer token, and the local-only rules for a server without one.

With a token, every protected route needs ``Authorization: Bearer <token>`` exactly (scheme
case-sensitive, one space), compared in constant time on bytes. ``?token=`` is accepted only
where the caller says so (``GET /api/events``: a browser ``EventSource`` cannot send headers).

Without a token the API is open, and an open API that any web page could drive would let any
site the user visits run the agent. So it is open only to local, same-origin use
(decisions.md): a cross-site ``Origin`` gets 403, a ``Host`` that is not a loopback name or the
bound host gets 403 (DNS rebinding), and POST/PATCH must be ``application/json`` — which a
browser can only send cross-site after a preflight.
"""
from __future__ import annotations

import hmac
import json
import os
import re
from urllib.parse import urlsplit

from flask import Response, current_app, request

_HOST_CHARS = re.compile(r"[a-z0-9._:\-]+")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
NO_TOKEN_WARNING = ("No token configured (--token, GOLEM_TOKEN or gateway.token): the API is open "
                    "to anyone who can reach it locally. Browsers are limited to same-origin "
                    "requests, but any local process can drive the agent. Set a token.")


def resolve_token(token=None) -> str | None:
    """``token`` if given, else ``GOLEM_TOKEN``; empty strings count as unset."""
    return token or os.environ.get("GOLEM_TOKEN") or None


def json_error(message: str, status: int) -> Response:
    return Response(json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":")),
                    status=status,
                    mimetype="application/json")


def unauthorized() -> Response:
    resp = json_error("Unauthorized", 401)
    resp.headers["WWW-Authenticate"] = "Bearer"
    return resp


def _raw(value: str) -> bytes:
    """Header values arrive as latin-1 decoded text (PEP 3333): recover the bytes sent."""
    return value.encode("latin-1", "replace")


def has_bearer(token: str) -> bool:
    given = request.headers.get("Authorization")
    if given is None:
        return False
    return hmac.compare_digest(_raw(given), b"Bearer " + token.encode("utf-8"))


def has_query_token(token: str) -> bool:
    given = request.args.get("token")
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def host_name(authority: str | None) -> str | None:
    """``"[::1]:3000"`` → ``"::1"``, ``"LocalHost.:80"`` → ``"localhost"``; ``None`` if
    malformed."""
    if not authority:
        return None
    try:
        parts = urlsplit("//" + authority)
        name = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    if not name or not _HOST_CHARS.fullmatch(name):
        return None
    return name.rstrip(".")


def _allowed_hosts(extra) -> set:
    hosts = set(LOOPBACK_HOSTS)
    for h in extra or ():
        if h and h not in ("0.0.0.0", "::"):
            hosts.add(h.strip("[]").lower())
    return hosts


def _app_hosts() -> list:
    state = current_app.extensions.get("golembot") if current_app else None
    if not isinstance(state, dict):
        return []
    return [h for h in (state.get("host"), *(state.get("allowed_hosts") or ())) if h]


def check_local(hosts=None) -> Response | None:
    """The no-token rules; ``None`` when the request is local and same-origin."""
    allowed = _allowed_hosts(list(hosts or ()) + _app_hosts())
    host = host_name(request.headers.get("Host"))
    if host is None or host not in allowed:
        return json_error("Forbidden: unknown Host (no token configured, local use only)", 403)
    origin = request.headers.get("Origin")
    if origin is not None:
        own = request.headers.get("Host", "").lower()
        parts = urlsplit(origin.lower())
        same = parts.scheme in ("http", "https") and parts.netloc == own
        if not same and host_name(parts.netloc) not in LOOPBACK_HOSTS:
            return json_error("Forbidden: cross-site request (no token configured)", 403)
    if request.method in ("POST", "PATCH") and request.mimetype != "application/json":
        return json_error("Content-Type must be application/json (no token configured)", 415)
    return None


def check_request(token, allow_query: bool = False, hosts=None) -> Response | None:
    """``None`` when the request may go on, else the 401/403/415 response to send.

    ``token`` is the effective token (``None``/empty: the local-only rules apply).
    ``hosts``: extra ``Host`` names allowed without a token (the bound host is read from the
    app's ``extensions["golembot"]`` when there is one).
    """
    if not token:
        return check_local(hosts)
    if has_bearer(token) or (allow_query and has_query_token(token)):
        return None
    return unauthorized()
