"""Serving the app over real sockets inside the test process.

The server, the assistant and its engine processes live on the main thread's gevent loop (that
is where gevent's child watchers work). Test clients are plain ``requests`` calls run in
gevent's thread pool: the test greenlet waits cooperatively, so the loop keeps serving while a
client blocks on its socket. Nothing is monkey-patched in this process (the subprocess tests
cover the patched servers).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import gevent
import pytest
import requests
from gevent.pywsgi import WSGIServer

import golembot
from golembot.server import create_app

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable


def in_thread(fn, *args, **kwargs):
    """Run a blocking client call in a native thread; the event loop keeps running meanwhile."""
    return gevent.get_hub().threadpool.apply(fn, args, kwargs)


def spawn_thread(fn, *args, **kwargs):
    """Start a blocking client call in a native thread; ``.get(timeout=…)`` its result later."""
    return gevent.get_hub().threadpool.spawn(fn, *args, **kwargs)


def parse_sse(raw: bytes) -> list:
    """Frames of an SSE body: each ``data:`` frame as a dict, each comment as ``(":", text)``."""
    out = []
    for block in raw.decode("utf-8").split("\n\n"):
        if not block:
            continue
        if block.startswith(":"):
            out.append((":", block[1:].strip()))
        else:
            assert block.startswith("data: ") and "\n" not in block, block
            out.append(json.loads(block[6:]))
    return out


def data_events(frames) -> list:
    return [f for f in frames if isinstance(f, dict)]


class Client:
    """``requests`` against the served app, each call in a thread."""

    def __init__(self, url: str, token: str | None = None):
        self.url = url
        self.token = token

    def headers(self, extra=None, auth=True):
        h = {}
        if auth and self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(extra or {})
        return h

    def request(self, method, path, auth=True, headers=None, **kw):
        kw.setdefault("timeout", 30)
        return in_thread(requests.request, method, self.url + path,
                         headers=self.headers(headers, auth), **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def chat(self, body, **kw):
        """A whole ``/chat`` exchange: ``(response, frames)``."""
        def run():
            with requests.post(self.url + "/chat", json=body, headers=self.headers(
                    kw.get("headers")), stream=True, timeout=kw.get("timeout", 30)) as resp:
                raw = resp.raw.read() if resp.status_code == 200 else resp.content
                return resp, raw
        resp, raw = in_thread(run)
        if resp.status_code == 200 and resp.headers["Content-Type"].startswith(
                "text/event-stream"):
            return resp, parse_sse(raw)
        return resp, raw

    def events(self, body, **kw) -> list:
        resp, frames = self.chat(body, **kw)
        assert resp.status_code == 200, (resp.status_code, frames)
        return data_events(frames)

    def start_chat(self, body, **kw):
        """A ``/chat`` read in the background; ``.get(timeout=…)`` → ``(status, frames)``."""
        def run():
            with requests.post(self.url + "/chat", json=body, headers=self.headers(),
                               stream=True, timeout=kw.get("timeout", 60)) as resp:
                return resp.status_code, parse_sse(resp.raw.read())
        return spawn_thread(run)


class Served:
    def __init__(self, app, assistant, server, token):
        self.app = app
        self.assistant = assistant
        self.server = server
        self.state = app.extensions["golembot"]["state"]
        self.url = f"http://127.0.0.1:{server.server_port}"
        self.client = Client(self.url, token)

    def wait_running(self, key="default", timeout=10.0):
        """Until a turn of ``key`` holds its engine (bounded poll on the assistant's state)."""
        deadline = time.monotonic() + timeout
        while not self.assistant.is_running(key):
            assert time.monotonic() < deadline, f"turn {key!r} never started"
            gevent.sleep(0.01)

    def join_turns(self, timeout=20.0):
        """Wait for every running turn's greenlet (client gone or not)."""
        gevent.joinall([t.greenlet for t in list(self.state.turns)], timeout=timeout)
        assert not self.state.turns, "turns still running"


@pytest.fixture
def serve(make_bot):
    """``serve(dir=None, token="tok", assistant=None, **app_opts)`` → :class:`Served`."""
    started = []

    def _serve(dir=None, token="tok", assistant=None, assistant_opts=None, **app_opts):
        if assistant is None:
            assistant = golembot.create_assistant(dir or make_bot(), **(assistant_opts or {}))
        app = create_app(assistant, token=token, **app_opts)
        server = WSGIServer(("127.0.0.1", 0), app, log=None)
        server.start()
        served = Served(app, assistant, server, token)
        started.append(served)
        return served

    yield _serve
    for served in started:
        served.server.stop(timeout=1)
        served.state.shutdown(wait_s=5)


@pytest.fixture
def client_env(fake_path):
    """Environment for a server subprocess: the fake CLIs on PATH, no inherited token."""
    env = dict(os.environ)
    env.pop("GOLEM_TOKEN", None)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(proc, url: str, timeout: float = 30.0) -> None:
    """Until ``GET url/health`` answers (bounded poll for the port to open)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"server exited early ({proc.returncode}): {out}\n{err}")
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered /health")


def stop_process(proc, sig=None, timeout=20):
    import signal as _signal
    if proc.poll() is None:
        proc.send_signal(sig or _signal.SIGTERM)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, _signal.SIGKILL) if proc.pid else None
        return proc.communicate()


def open_raw_chat(port: int, body: dict, token: str | None = "tok"):
    """Send ``POST /chat`` on a bare socket (to hang up mid-stream); returns the socket."""
    payload = json.dumps(body).encode()
    head = (f"POST /chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n")
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head.encode() + b"\r\n" + payload)
    return sock


def read_until(sock, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data
