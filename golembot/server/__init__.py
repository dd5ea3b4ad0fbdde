"""The HTTP service: a Flask app factory, a mountable blueprint, and gevent serving.

    app = create_app(assistant, token="my-secret")          # a whole Flask app
    host_app.register_blueprint(blueprint(assistant), url_prefix="/bot")   # inside yours
    start_server(assistant, port=3000, token="my-secret")   # serve it (gevent, SIGTERM-safe)

The blueprint carries its own CORS, auth and JSON-error handling, so mounting it leaves the
host application's other routes alone. ``create_app`` adds the same handling app-wide (unknown
paths, preflights anywhere, 404/405/413/500 as JSON) and, in gateway mode, the ``/api/*`` and
dashboard blueprints.
"""
from __future__ import annotations

import importlib
import logging

import gevent
from flask import Blueprint, Flask, Response, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException

from . import auth
from .chat import SHUTTING_DOWN, BadRequest, json_response, register

__all__ = ["create_app", "blueprint", "create_golem_server", "start_server", "ServerState",
           "DEFAULT_MAX_BODY_BYTES"]

DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization",
}
SHUTDOWN_MESSAGE = SHUTTING_DOWN
log = logging.getLogger("golembot.server")


class ServerState:
    """What the routes share: the assistant, the effective token, limits and the live turns."""

    def __init__(self, assistant, token=None, gateway=None, max_body_bytes=DEFAULT_MAX_BODY_BYTES,
                 keepalive_s: float = 15, hosts=(), scheduler=None):
        self.assistant = assistant
        self.token = auth.resolve_token(token)
        self.gateway = gateway
        self.max_body_bytes = int(max_body_bytes)
        self.keepalive_s = keepalive_s
        self.hosts = list(hosts or ())
        self.scheduler = scheduler
        self.turns: set = set()
        self.log = log
        self._shut = False
        self._local_scheduler = None

    @property
    def closed(self) -> bool:
        """Shutting down: new turns are refused (inside their stream)."""
        return self._shut

    # -- slash commands (golembot.commands is shared with the REPL and IM) --------------------
    def is_command(self, text: str) -> bool:
        commands = _optional_module("golembot.commands")
        return bool(commands and commands.is_command(text))

    def run_command(self, text: str, key: str) -> dict:
        from .. import commands
        return commands.execute(self.assistant, text, key,
                                context={"scheduler": self.task_scheduler(), "channel": None})

    def task_scheduler(self):
        """The scheduler for ``/cron`` and ``/api/tasks``: the gateway's when this process runs
        it, else a local one that is never started — the task store is readable and writable in
        every mode, nothing fires on a schedule here, and ``run`` executes at once
        (decisions.md)."""
        running = self.scheduler or getattr(self.gateway, "scheduler", None)
        if running is not None:
            return running
        if self._local_scheduler is None:
            scheduler = _optional_module("golembot.scheduler")
            if scheduler is not None:
                self._local_scheduler = scheduler.TaskScheduler(self.assistant, self.assistant.dir)
        return self._local_scheduler

    # -- shutdown --------------------------------------------------------------------------------
    def shutdown(self, message: str = SHUTDOWN_MESSAGE, wait_s: float = 5.0) -> bool:
        """End every open ``/chat`` stream with an error and a failed completion, abort every
        running turn (clients gone or not) and kill the engines' process groups. Idempotent:
        ``False`` when it already ran."""
        if self.closed:
            return False
        self._shut = True
        from ..engines.base import shutdown_all
        turns = list(self.turns)
        for turn in turns:
            turn.interrupt(message)
        # Killing a turn's greenlet unwinds the assistant's generator: a running engine's group
        # is terminated, what the turn said so far is saved, the key's lock is released. All at
        # once, so a turn queued behind another on its key never gets to start an engine.
        gevent.killall([t.greenlet for t in turns if t.greenlet is not None], block=True,
                       timeout=wait_s)
        try:
            self.assistant.shutdown()  # turns that did not come through HTTP (IM, scheduler)
        finally:
            shutdown_all()
        return True


def _optional_module(name: str):
    """Another area's module, or ``None`` while it does not exist yet."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


# -- shared request handling ---------------------------------------------------------------------
def add_cors(resp: Response) -> Response:
    resp.headers.update(CORS_HEADERS)
    return resp


def preflight() -> Response:
    """``OPTIONS`` anywhere: 204, empty, no auth (the CORS headers are added after)."""
    resp = Response(status=204)
    del resp.headers["Content-Type"]
    return resp


def error_response(exc: Exception, max_body_bytes: int) -> Response:
    """Every error as ``{"error": …}`` JSON; a wrong method is an unknown route (404)."""
    if isinstance(exc, BadRequest):
        return json_response({"error": exc.message}, exc.status)
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        if code in (404, 405):
            return json_response({"error": "Not found"}, 404)
        if code == 413:
            return json_response(
                {"error": f"Request body too large (limit: {max_body_bytes} bytes)"}, 413)
        return json_response({"error": exc.description or exc.name}, code)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return json_response({"error": str(exc) or exc.__class__.__name__}, 500)


def blueprint(assistant, token=None, *, name="golembot", gateway=None,
              max_body_bytes=DEFAULT_MAX_BODY_BYTES, keepalive_s: float = 15, hosts=(),
              index: bool = True, scheduler=None, state: ServerState | None = None,
              standalone: bool = True) -> Blueprint:
    """``/chat``, ``/reset``, ``/abort``, ``/health`` (and the serve hint at ``/``) as a blueprint.

    ``token``: the bearer token (``None`` → ``GOLEM_TOKEN``; none at all → local use only).
    ``hosts``: ``Host`` names accepted without a token besides the loopback names — set it when
    the host application is reached by name and has no token. The state is ``bp.golem_state``.
    """
    state = state or ServerState(assistant, token, gateway, max_body_bytes, keepalive_s, hosts,
                                 scheduler)
    bp = Blueprint(name, __name__)
    bp.golem_state = state
    public = {f"{name}.health", f"{name}.index_hint"}
    register(bp, state, index=index)

    if standalone:
        @bp.before_request
        def _guard():
            if request.method == "OPTIONS":
                return preflight()
            if request.endpoint in public:
                return None
            return auth.check_request(state.token, hosts=state.hosts)

        @bp.after_request
        def _cors(resp):
            return add_cors(resp)

        @bp.errorhandler(Exception)
        def _error(exc):
            return error_response(exc, state.max_body_bytes)

    return bp


def create_app(assistant, token=None, gateway=None, max_body_bytes=DEFAULT_MAX_BODY_BYTES, *,
               keepalive_s: float = 15, host=None, hosts=(), scheduler=None,
               started_at=None, port=None) -> Flask:
    """The Flask app serving ``assistant``; with ``gateway`` also ``/api/*`` and the dashboard.

    ``token`` ``None`` falls back to ``GOLEM_TOKEN``. ``host`` is the bound address (accepted as
    a ``Host`` when no token is set, shown by ``/api/status``). The state is in
    ``app.extensions["golembot"]``.
    """
    state = ServerState(assistant, token, gateway, max_body_bytes, keepalive_s,
                        [h for h in (host, *hosts) if h], scheduler)
    app = Flask("golembot.server", static_folder=None)
    app.url_map.merge_slashes = False  # never redirect: /chat/ and //x are just unknown
    app.config["MAX_CONTENT_LENGTH"] = state.max_body_bytes
    app.json.sort_keys = False
    # flask-cors configured for the contract (wildcard, always sent); the before/after hooks
    # below still guarantee the exact trio on every response and 204 for any OPTIONS
    # (server.md §11: flask-cors defaults alone echo Origin and answer preflights with HTML).
    CORS(app, origins="*", send_wildcard=True, always_send=True, vary_header=False,
         methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
         allow_headers=["Content-Type", "Authorization"], automatic_options=False)
    app.extensions["golembot"] = {
        "assistant": assistant, "gateway": gateway, "token": state.token, "host": host,
        "port": port, "allowed_hosts": list(hosts or ()), "state": state,
        "shutdown": state.shutdown,
    }
    bp = blueprint(assistant, name="golembot", index=gateway is None, state=state,
                   standalone=False)
    app.register_blueprint(bp)
    public = {"golembot.health", "golembot.index_hint"}
    _register_extras(app, state, host, port, started_at, public)

    @app.before_request
    def _guard():
        if request.method == "OPTIONS":
            return preflight()
        endpoint = request.endpoint or ""
        if endpoint in public or endpoint.startswith("golem_dashboard."):
            return None
        # ?token= only where a browser EventSource needs it (decisions.md)
        return auth.check_request(state.token, allow_query=endpoint == "golem_api.events")

    @app.after_request
    def _cors(resp):
        return add_cors(resp)

    @app.errorhandler(Exception)
    def _error(exc):
        return error_response(exc, state.max_body_bytes)

    if not state.token:
        log.warning(auth.NO_TOKEN_WARNING)
    return app


def _register_extras(app, state, host, port, started_at, public) -> None:
    """``/api/*`` (both modes), the dashboard (gateway) or the serve-mode stand-ins."""
    tasks = _optional_module("golembot.scheduler.api")
    if tasks is not None:
        app.register_blueprint(tasks.create_blueprint(
            state.assistant, state.task_scheduler, lambda: auth.check_request(state.token),
            name="golem_tasks"))
    api = _optional_module("golembot.server.api")
    if api is not None:
        app.register_blueprint(api.create_blueprint(
            state.assistant, state.gateway, state.token, host=host, port=port,
            started_at=started_at, keepalive_s=state.keepalive_s, name="golem_api"))
    if state.gateway is not None:
        dashboard = _optional_module("golembot.server.dashboard")
        if dashboard is not None:
            app.register_blueprint(dashboard.create_blueprint(
                state.assistant, state.gateway, state.token, host=host, port=port,
                started_at=started_at, name="golem_dashboard"))

        def shutdown_gateway():
            """``POST /shutdown`` (auth): the same graceful stop as SIGTERM (gateway.md §17.8)."""
            request_shutdown = getattr(state.gateway, "request_shutdown", None)
            if not callable(request_shutdown) or not request_shutdown():
                return json_response({"error": "Shutdown not available"}, 404)
            return json_response({"ok": True, "message": "Shutting down"})

        app.add_url_rule("/shutdown", "gateway_shutdown", shutdown_gateway, methods=["POST"])
        return

    # serve mode (server.md §4): the status routes only hint at the gateway
    def status_hint():
        return json_response({"hint": "Dashboard not available (gateway mode only)"})

    def shutdown_unavailable():
        return json_response({"error": "Shutdown not available"}, 404)

    if api is not None:
        app.view_functions["golem_api.status"] = status_hint
        app.view_functions["golem_api.dashboard"] = status_hint
    else:
        app.add_url_rule("/api/status", "serve_status", status_hint)
        app.add_url_rule("/api/dashboard", "serve_dashboard", status_hint)
    app.add_url_rule("/shutdown", "serve_shutdown", shutdown_unavailable, methods=["POST"])


def create_golem_server(*args, **kwargs):
    """See :func:`golembot.server.serving.create_golem_server`."""
    from .serving import create_golem_server as _create
    return _create(*args, **kwargs)


def start_server(*args, **kwargs):
    """See :func:`golembot.server.serving.start_server`."""
    from .serving import start_server as _start
    return _start(*args, **kwargs)

