"""``POST /chat``, ``POST /reset``, ``POST /abort``, ``GET /health`` (and the serve-mode ``GET /``).

``/chat`` reads and validates the whole body first (a 4xx answer starts nothing and writes
nothing), answers a slash command as JSON, and otherwise streams the turn as SSE. The turn runs
in its own greenlet (:class:`Turn`), not inside the response: agent runs are long and
connections drop, so a client that leaves stops only the writing side while the turn finishes,
saves its session and history, and lets the next request on its key resume it. ``/abort`` is the
way to cancel.
"""
from __future__ import annotations

import json
import re
import time

import gevent
from flask import Response, request

from .. import events as ev
from ..attachments import AttachmentError, decode_base64
from ..sessions import iso_now
from .sse import Channel, sse_response

MAX_SESSION_KEY = 1024
PREVIEW_CHARS = 120
SHUTTING_DOWN = "Server shutting down"
SERVE_HINT = {"hint": "Use POST /chat to interact",
              "endpoints": ["/chat", "/abort", "/reset", "/health"]}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class BadRequest(Exception):
    """A 4xx answer: ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def json_response(obj, status: int = 200) -> Response:
    """JSON in the documented key order (the host app's provider may sort keys)."""
    return Response(json.dumps(obj, ensure_ascii=False, separators=(",", ":")), status=status,
                    mimetype="application/json")


# -- reading the body --------------------------------------------------------------------------
def read_body(limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes (a declared length without reading)."""
    too_large = BadRequest(f"Request body too large (limit: {limit} bytes)", 413)
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large
    if declared is None and not request.environ.get("wsgi.input_terminated"):
        return b""  # neither a length nor a server that ends chunked input: no body (PEP 3333)
    # Declared length: Werkzeug's stream stops there. Chunked: the server ends the input.
    stream = request.stream if declared is not None else request.environ["wsgi.input"]
    parts, size = [], 0
    while size <= limit:
        chunk = stream.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    if size > limit:
        raise too_large
    return b"".join(parts)


def _no_constants(name):
    raise ValueError(name)


def _clean(value):
    """Lone UTF-16 surrogates are legal JSON but cannot be written as UTF-8 anywhere later."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def parse_json(raw: bytes, empty=None):
    """Strict JSON (no NaN/Infinity, no BOM, UTF-8 only); ``empty`` for a blank body if given."""
    try:
        text = raw.decode("utf-8")
        if empty is not None and not text.strip():
            return empty
        return _clean(json.loads(text, parse_constant=_no_constants))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("Invalid JSON body") from None


def session_key(body: dict) -> str:
    """``sessionKey`` (absent, ``null`` or ``""`` → ``"default"``)."""
    key = body.get("sessionKey")
    if key is None or key == "":
        return "default"
    if not isinstance(key, str):
        raise BadRequest('"sessionKey" must be a string')
    if len(key) > MAX_SESSION_KEY:
        raise BadRequest(f'"sessionKey" is too long (max {MAX_SESSION_KEY} characters)')
    if _CONTROL.search(key):
        raise BadRequest('"sessionKey" must not contain control characters')
    return key


# -- attachments -------------------------------------------------------------------------------
def _optional_string(item: dict, name: str, field: str) -> str | None:
    value = item.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f'"{field}.{name}" must be a string')
    return value


def attachments(body: dict, kind: str) -> list:
    """Validated ``images``/``files`` as ``[{"mimeType", "data": bytes, "fileName"}]``.

    Elements without ``data`` are skipped (and files without ``fileName``), as the original does.
    """
    items = body.get(kind)
    if items is None:
        return []
    if not isinstance(items, list):
        raise BadRequest(f'"{kind}" must be an array')
    default_mime = "image/png" if kind == "images" else "application/octet-stream"
    out = []
    for i, item in enumerate(items):
        field = f"{kind}[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f'"{field}" must be an object')
        mime = _optional_string(item, "mimeType", field)
        name = _optional_string(item, "fileName", field)
        data = item.get("data")
        if data is None or data == "":
            continue
        if not isinstance(data, str):
            raise BadRequest(f'"{field}.data" must be a base64 string')
        try:
            raw, url_mime = decode_base64(data, f"{field}.data")
        except AttachmentError as exc:
            raise BadRequest(str(exc)) from None
        if kind == "files" and not name:
            continue
        out.append({"mimeType": mime or url_mime or default_mime, "data": raw, "fileName": name})
    return out


class ChatRequest:
    """A validated ``POST /chat`` body."""

    def __init__(self, body):
        if not isinstance(body, dict):
            raise BadRequest('Missing "message" field')
        message = body.get("message")
        images, files = body.get("images"), body.get("files")
        has_attachments = ((isinstance(images, list) and len(images) > 0)
                           or (isinstance(files, list) and len(files) > 0))
        usable = isinstance(message, str) and message != ""
        if not usable and not has_attachments:
            raise BadRequest('Missing "message" field')
        if message is not None and not isinstance(message, str):
            raise BadRequest('"message" must be a string')
        self.session_key = session_key(body)
        raw_key = body.get("sessionKey")
        self.sender = raw_key if isinstance(raw_key, str) and raw_key else "anonymous"
        self.images = attachments(body, "images")
        self.files = attachments(body, "files")
        if usable:
            self.text = message
        else:
            self.text = "(image)" if isinstance(images, list) and images else "(file)"
        self.is_command_text = usable


# -- the turn ----------------------------------------------------------------------------------
class Turn:
    """One ``/chat`` turn, driven by its own greenlet and relayed to the response by a channel.

    The response may go away at any time; the turn does not notice. When it ends it records
    itself in the gateway's metrics (when there is a gateway), whether or not anyone listened.
    """

    def __init__(self, state, req: ChatRequest):
        self.state = state
        self.req = req
        self.channel = Channel()
        self.greenlet = None
        self.completion = None
        self._reply = []
        self._done = None
        self._started = time.monotonic()

    def start(self) -> "Turn":
        self.state.turns.add(self)
        self.greenlet = gevent.spawn(self._run)
        return self

    def _emit(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "text":
            self._reply.append(event.get("content") or "")
        elif kind == "done":
            self._done = event
        elif kind == "completion":
            if self.completion is not None:
                return  # exactly one completion, last
            self.completion = event
        self.channel.put(event)

    def _run(self) -> None:
        req = self.req
        try:
            for event in self.state.assistant.chat(req.text, req.session_key,
                                                   images=req.images or None,
                                                   files=req.files or None):
                self._emit(event)
                if event.get("type") == "completion":
                    # Let the response write it now: the assistant saves history and session
                    # after yielding the completion, and that should not delay the client.
                    gevent.sleep(0)
        except Exception as exc:  # noqa: BLE001 - the iterator must not take the stream down
            message = str(exc) or exc.__class__.__name__
            self._emit(ev.error(message))
            self._emit(ev.failed(message))
        finally:
            if self.completion is None:
                message = "Agent ended without a completion"
                self._emit(ev.failed(message))
            self.channel.end()
            self.state.turns.discard(self)
            self._record()

    def interrupt(self, message: str) -> None:
        """Server shutdown: tell the client, end its stream (the turn itself is aborted apart)."""
        self.channel.put(ev.error(message))
        self.channel.put(ev.failed(message))
        self.channel.end()

    def _record(self) -> None:
        """The gateway's per-turn metrics entry (gateway.md §16), independent of the client."""
        gateway = self.state.gateway
        metrics = getattr(gateway, "metrics", None) if gateway is not None else None
        if metrics is None:
            return
        c, d = self.completion or {}, self._done or {}
        response = "".join(self._reply) or c.get("finalText") or c.get("partialText") or ""
        duration = c.get("durationMs") or d.get("durationMs")
        if duration is None:
            duration = int((time.monotonic() - self._started) * 1000)
        cost = c.get("costUsd") if c.get("costUsd") is not None else d.get("costUsd")
        try:
            metrics.record("http", self.req.sender, self.req.text[:PREVIEW_CHARS],
                           response[:PREVIEW_CHARS], duration, cost)
        except Exception:  # noqa: BLE001 - metrics must never break a turn
            self.state.log.exception("recording /chat metrics failed")


# -- routes ------------------------------------------------------------------------------------
def _object_body(limit: int) -> dict:
    """``/reset`` and ``/abort``: empty → ``{}``; anything but an object → 400."""
    body = parse_json(read_body(limit), empty={})
    if not isinstance(body, dict):
        raise BadRequest("Body must be a JSON object")
    return body


def register(bp, state, index: bool = True) -> None:
    """Add the routes to blueprint ``bp``; ``state`` holds the assistant, limits and live turns."""

    @bp.errorhandler(BadRequest)
    def _bad_request(exc):
        return json_response({"error": exc.message}, exc.status)

    @bp.post("/chat")
    def chat():
        req = ChatRequest(parse_json(read_body(state.max_body_bytes)))
        if req.is_command_text and state.is_command(req.text):
            return json_response(state.run_command(req.text, req.session_key))
        if state.closed:
            return sse_response(iter([ev.error(SHUTTING_DOWN), ev.failed(SHUTTING_DOWN)]))
        turn = Turn(state, req).start()
        return sse_response(turn.channel, keepalive_s=state.keepalive_s)

    @bp.post("/reset")
    def reset():
        key = session_key(_object_body(state.max_body_bytes))
        state.assistant.reset_session(key)
        return json_response({"ok": True})

    @bp.post("/abort")
    def abort():
        key = session_key(_object_body(state.max_body_bytes))
        aborted = bool(state.assistant.cancel(key))
        return json_response({"ok": True, "aborted": aborted})

    @bp.get("/health")
    def health():
        return json_response({"status": "ok", "timestamp": iso_now()})

    if index:
        @bp.get("/")
        def index_hint():
            return json_response(SERVE_HINT)
