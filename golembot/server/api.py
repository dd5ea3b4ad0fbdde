"""The gateway's ``/api/*`` routes: status, proactive send, config editing, channels, live events.

Everything here needs the bearer token when one is configured; ``GET /api/events`` also
accepts ``?token=`` because a browser ``EventSource`` cannot send headers (decisions.md). Bodies
are JSON built with :func:`json.dumps` (documented key order, non-ASCII kept) rather than the host
application's JSON provider, so the blueprint behaves the same in any Flask app.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, request

from . import auth
from .dashboard import Context, masked_config, redact, secret_values

#: Keys of ``PATCH /api/config`` the running process applies at once (http-api.md table).
_ASSISTANT_LIMITS = {"timeout": "timeout_s", "maxConcurrent": "max_concurrent",
                     "maxQueuePerSession": "max_queue_per_session"}


def json_response(obj, status: int = 200) -> Response:
    return Response(json.dumps(obj, ensure_ascii=False), status=status,
                    mimetype="application/json")


def error(message: str, status: int) -> Response:
    return json_response({"error": message}, status)


def create_blueprint(assistant, gateway, token=None, *, host=None, port=None, started_at=None,
                     keepalive_s: float = 15, name="golem_api", context=None):
    """Blueprint with the ``/api/*`` routes of gateway mode (gateway.md §17).

    ``token`` is the effective bearer token (``None``/empty: open API). ``host``/``port`` are the
    effective bind address shown in ``/api/status``. ``context`` lets the dashboard blueprint and
    this one share one :class:`~golembot.server.dashboard.Context` (same start time).
    """
    ctx = context or Context(assistant, gateway, token, host, port, started_at)
    bp = Blueprint(name, __name__)
    bp.golem_context = ctx

    @bp.before_request
    def _auth():
        if request.method == "OPTIONS":
            return None  # the app answers preflights
        allow_query = request.endpoint == f"{name}.events"
        return check_auth(ctx.token, allow_query=allow_query)

    @bp.get("/api/status")
    def status():
        return json_response(ctx.collect())

    @bp.get("/api/dashboard")
    def dashboard():
        return json_response(ctx.collect())

    @bp.get("/api/channels")
    def channels():
        if gateway is None:
            return json_response({"channels": []})
        return json_response({"channels": list(gateway.list_channels())})

    @bp.post("/api/send")
    def send():
        return _send(gateway, ctx)

    @bp.patch("/api/config")
    def patch_config():
        return _patch_config(assistant, gateway, ctx)

    @bp.get("/api/events")
    def events():
        return _events(gateway, ctx, keepalive_s)

    return bp


# -- auth --------------------------------------------------------------------------------------
def check_auth(token, allow_query: bool = False):
    """``None`` when the request may go on, else the 401/403/415 response (server/auth.py)."""
    return auth.check_request(token, allow_query=allow_query)


def _read_json_body():
    """``(value, None)`` or ``(None, 400 response)``; the body limit is the app's."""
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError):
        return None, error("Invalid JSON body", 400)


# -- POST /api/send ------------------------------------------------------------------------------
def _send(gateway, ctx):
    adapters = dict(getattr(gateway, "adapters", None) or {})
    if not adapters:  # checked before the body is read (gateway.md §17.4)
        return error("No channel adapters available", 503)
    body, bad = _read_json_body()
    if bad:
        return bad
    if not isinstance(body, dict):
        return error("Body must be a JSON object", 400)
    fields = {k: body.get(k) for k in ("channel", "chatId", "text")}
    if not all(isinstance(v, str) and v for v in fields.values()):
        return error("Missing required fields: channel, chatId, text", 400)
    channel = fields["channel"]
    if channel not in adapters:
        available = ", ".join(adapters)
        return error(f'Channel "{channel}" not found. Available: {available}', 404)
    if not _can_send(adapters[channel]):
        return error(f'Channel "{channel}" does not support proactive send', 501)
    try:
        gateway.send(channel, fields["chatId"], fields["text"])
    except Exception as exc:  # noqa: BLE001 - the platform's failure, reported to the caller
        status = _send_error_status(exc)
        message = str(exc) if status != 500 else f"Send failed: {exc}"
        return error(redact(message, secret_values({}, ctx.token)), status)
    return json_response({"ok": True})


def _can_send(adapter) -> bool:
    """``can_send`` when the adapter states it, else whether it has a callable ``send``."""
    flag = getattr(adapter, "can_send", None)
    if callable(flag) and not isinstance(flag, bool):
        try:
            flag = flag()
        except Exception:  # noqa: BLE001
            return False
    has_send = callable(getattr(adapter, "send", None))
    return bool(flag) and has_send if isinstance(flag, bool) else has_send


def _send_error_status(exc) -> int:
    """Map the gateway's own send exceptions (races: an adapter stopped meanwhile)."""
    name = type(exc).__name__
    return {"UnknownChannel": 404, "UnknownChannelError": 404, "ChannelNotFound": 404,
            "CannotSend": 501, "CannotSendError": 501, "SendNotSupported": 501,
            "NoAdapters": 503, "NoAdaptersError": 503}.get(name, 500)


# -- PATCH /api/config -------------------------------------------------------------------------
def _patch_config(assistant, gateway, ctx):
    body, bad = _read_json_body()
    if bad:
        return bad
    if not isinstance(body, dict):
        return error("Body must be a JSON object", 400)
    from ..config import ConfigError, patch_config
    try:
        config, needs_restart = patch_config(assistant.dir, body)
    except ConfigError as exc:
        return error(str(exc), 400)
    apply_hot_config(assistant, gateway, config)
    secrets = secret_values(config, ctx.token)
    return json_response(redact({"ok": True, "config": masked_config(config),
                                 "needsRestart": bool(needs_restart)}, secrets))


def apply_hot_config(assistant, gateway, config: dict) -> None:
    """Make the hot-reloadable fields take effect now.

    The assistant re-reads golem.yaml every turn (timeout, system prompt, persona, permissions)
    and the gateway re-reads it every message (group chat, streaming), so the file write is the
    change; only values the running objects hold themselves are copied: the concurrency limits,
    and ``timeout`` when the assistant has an explicit override that would hide the file's.
    """
    for key, attr in _ASSISTANT_LIMITS.items():
        value = config.get(key)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            continue
        if attr == "timeout_s" and getattr(assistant, attr, None) is None:
            continue
        setattr(assistant, attr, value)
    reload = getattr(gateway, "reload_config", None) or getattr(gateway, "apply_config", None)
    if callable(reload):
        reload(config)


# -- GET /api/events -----------------------------------------------------------------------------
def _events(gateway, ctx, keepalive_s):
    activity = getattr(gateway, "activity", None)
    if activity is None:
        return error("Events not available (gateway mode only)", 404)
    secrets = secret_values({}, ctx.token)
    try:
        config = ctx.assistant.get_status().get("config") or {}
        secrets = secret_values(config, ctx.token)
    except Exception:  # noqa: BLE001 - a broken golem.yaml still streams (token scrubbed)
        pass
    subscription = activity.subscribe()

    def stream():
        try:
            for item in subscription:
                yield redact(item, secrets)
        finally:
            unsubscribe = getattr(activity, "unsubscribe", None)
            if callable(unsubscribe):
                unsubscribe(subscription)
            close = getattr(subscription, "close", None)
            if callable(close):
                close()

    from .sse import sse_response
    resp = sse_response(stream(), keepalive_s=keepalive_s)
    resp.response = _connected_first(resp.response)
    return resp


def _connected_first(body):
    """``: connected`` before anything else (as the original), so the headers go out at once and
    a browser's ``EventSource`` reports the feed as open without waiting for the first event."""
    try:
        yield b": connected\n\n"
        yield from body
    finally:
        close = getattr(body, "close", None)
        if callable(close):
            close()
