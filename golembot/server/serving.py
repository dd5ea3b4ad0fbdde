"""Serving the app: gevent's WSGI server, the start-up banner, graceful shutdown, ``wsgi:app``.

gevent's server writes each chunk of a streamed response as it comes, which is what SSE needs,
and runs every request and every turn as a greenlet, so hundreds of waiting streams cost little.
On SIGINT/SIGTERM the server stops accepting, tells every open ``/chat`` stream that it is
shutting down, aborts every turn and kills the engines' process groups — an agent is never left
running without its server.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import sys

import gevent
from gevent.pywsgi import WSGIServer

from . import auth, create_app

DEFAULT_PORT = 3000
DEFAULT_HOST = "127.0.0.1"
FORCED_EXIT_S = 20.0
_TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"]*")


class RedactingLog:
    """An access log that never contains a ``?token=`` value."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def write(self, line: str) -> None:
        self.stream.write(_TOKEN_IN_URL.sub(r"\1[redacted]", line))

    def flush(self) -> None:
        self.stream.flush()


def resolve_port(port=None) -> int:
    """Library rule: ``port`` > ``GOLEM_PORT`` > 3000 (the CLI resolves its longer chain itself).
    ``port=0`` asks the OS for a free port."""
    if port is not None:
        return int(port)
    env = os.environ.get("GOLEM_PORT", "").strip()
    if env:
        if not env.isdigit() or not 0 <= int(env) <= 65535:
            raise ValueError(f"GOLEM_PORT must be a port number, got {env!r}")
        return int(env)
    return DEFAULT_PORT


def base_url(host: str, port: int) -> str:
    """This server's own URL for the agent (``0.0.0.0``/``::`` → loopback), never from ``Host``."""
    if host in ("0.0.0.0", "", "::"):
        host = DEFAULT_HOST
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def set_agent_env(assistant, host: str, port: int, token) -> None:
    """``GOLEM_URL``/``GOLEM_TOKEN`` for skills that call the local API (decisions.md)."""
    env = dict(getattr(assistant, "server_env", None) or {})
    env["GOLEM_URL"] = base_url(host, port)
    if token:
        env["GOLEM_TOKEN"] = token
    else:
        env.pop("GOLEM_TOKEN", None)
    assistant.server_env = env


def create_golem_server(assistant, port=None, token=None, hostname=None, *, gateway=None,
                        access_log: bool = False, **app_opts) -> WSGIServer:
    """A gevent ``WSGIServer`` for ``assistant``, bound but not yet serving.

    The socket is bound here so ``server.server_port`` is the real port (``port=0`` included)
    and the agent's ``GOLEM_URL`` is right. ``server.application`` is the Flask app;
    ``server.golem_state`` its state (``server.golem_state.shutdown()`` ends streams and turns).
    """
    host = hostname or DEFAULT_HOST
    token = auth.resolve_token(token)
    app = create_app(assistant, token=token, gateway=gateway, host=host, **app_opts)
    server = WSGIServer((host, resolve_port(port)), app,
                        log=RedactingLog() if access_log else None)
    server.init_socket()
    actual_port = server.server_port
    state = app.extensions["golembot"]
    state["port"] = actual_port
    set_agent_env(assistant, host, actual_port, token)
    server.golem_state = state["state"]
    return server


def banner(host: str, port: int, token) -> str:
    auth_line = "enabled" if token else "disabled (set --token or GOLEM_TOKEN)"
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return (f"🤖 Golem server listening on http://{shown}:{port}\n"
            "   POST /chat    — SSE streaming chat\n"
            "   POST /abort   — stop current task\n"
            "   POST /reset   — reset session\n"
            "   GET  /health  — health check\n"
            f"   Auth: {auth_line}")


def graceful_stop(server: WSGIServer, stop_timeout: float = 5.0) -> None:
    """Stop accepting, end streams and turns, kill engines, then stop the server (bounded)."""
    server.close()
    try:
        server.golem_state.shutdown()
    finally:
        server.stop(timeout=stop_timeout)


def start_server(assistant, port=None, token=None, hostname=None, *, out=None,
                 **server_opts) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully and return.

    A second signal does nothing more; if shutting down takes longer than ~20 s the process
    exits anyway (below gunicorn's default graceful timeout of 30 s).
    """
    out = out or sys.stdout
    server = create_golem_server(assistant, port=port, token=token, hostname=hostname,
                                 **server_opts)
    actual_port = server.server_port
    state = server.golem_state
    server.start()
    print(banner(hostname or DEFAULT_HOST, actual_port, state.token), file=out, flush=True)
    serve_until_stopped(server)


def serve_until_stopped(server: WSGIServer, after_stop=None, on_stop_handle=None) -> None:
    """Serve until SIGINT/SIGTERM (or the stop function handed to ``on_stop_handle``), then
    stop gracefully, run ``after_stop`` and return. A second signal does nothing more; if
    stopping takes longer than ~20 s the process exits anyway (below gunicorn's 30 s)."""
    stopping = []

    def request_stop():
        if stopping:
            return  # a second signal does not run the shutdown twice

        def stop():
            graceful_stop(server)
            if after_stop is not None:
                after_stop()
        stopping.append(gevent.spawn(stop))
        stopping.append(gevent.spawn_later(FORCED_EXIT_S, os._exit, 0))

    if on_stop_handle is not None:
        on_stop_handle(request_stop)
    handlers = [gevent.signal_handler(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        server.serve_forever()
        if stopping:
            stopping[0].join()
    finally:
        for h in handlers:
            h.cancel()
        for g in stopping[1:]:
            g.kill(block=False)  # stopped in time: no forced exit


# -- wsgi:app ------------------------------------------------------------------------------------
def assistant_for(dir: str, config: dict, api_key=None):
    """An assistant with golem.yaml's ``maxConcurrent``/``maxQueuePerSession`` (read at start)."""
    from .. import create_assistant
    limits = {}
    for key, arg in (("maxConcurrent", "max_concurrent"),
                     ("maxQueuePerSession", "max_queue_per_session")):
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limits[arg] = value
    return create_assistant(dir, api_key=api_key, **limits)


def settings_from_env(dir=None):
    """``(dir, config, assistant, token, host, port)`` as ``wsgi.py`` needs them.

    Assistant directory ``GOLEM_DIR`` (default ``.``); ``.env`` (directory, then cwd);
    golem.yaml limits; token ``GOLEM_TOKEN`` > ``gateway.token``; the bind address for
    ``GOLEM_URL`` from ``GOLEM_HOST``/``GOLEM_PORT`` (what ``gunicorn.conf.py`` binds).
    """
    from ..config import load_config, load_env_files
    dir = os.path.abspath(dir or os.environ.get("GOLEM_DIR") or ".")
    load_env_files(dir)
    config = load_config(dir)
    gw = config.get("gateway") if isinstance(config.get("gateway"), dict) else {}
    token = os.environ.get("GOLEM_TOKEN") or gw.get("token") or None
    host = os.environ.get("GOLEM_HOST") or gw.get("host") or DEFAULT_HOST
    port = resolve_port() if os.environ.get("GOLEM_PORT") else (gw.get("port") or DEFAULT_PORT)
    return dir, config, assistant_for(dir, config), token, host, port


def app_from_env(dir=None):
    """The serve-mode app of ``wsgi.py`` (``GOLEM_MODE=serve``); see :func:`settings_from_env`."""
    _, _, assistant, token, host, port = settings_from_env(dir)
    app = create_app(assistant, token=token, host=host, port=port)
    set_agent_env(assistant, host, port, token)
    return app


def shutdown_app(app, message: str = "Server shutting down") -> bool:
    """gunicorn hooks: end the app's streams and turns (clients are told why), kill engines,
    then stop the gateway's channels and scheduler (if any). Idempotent."""
    state = getattr(app, "extensions", {}).get("golembot") if app is not None else None
    if not isinstance(state, dict) or state.get("state") is None:
        from ..engines.base import shutdown_all
        shutdown_all()
        return False
    try:
        return state["state"].shutdown(message)
    finally:
        gateway = state.get("gateway")
        if gateway is not None and callable(getattr(gateway, "stop", None)):
            try:
                gateway.stop()
            except Exception:  # noqa: BLE001
                logging.getLogger("golembot.server").exception("stopping the gateway failed")
