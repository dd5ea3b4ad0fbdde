"""Real server processes: ``start_server`` (gevent), gunicorn's gevent worker, ``flask run``.

These are the monkey-patched configurations (gunicorn's worker and app.py patch the standard
library); the in-process tests cover the unpatched one.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading

import requests

from .conftest import PYTHON, ROOT, free_port, stop_process, wait_http

HEADERS = {"Authorization": "Bearer tok"}


def sse(resp) -> list:
    out = []
    for line in resp.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            out.append(json.loads(line[6:]))
    return out


def chat(url, body, headers=HEADERS, timeout=30) -> list:
    with requests.post(url + "/chat", json=body, headers=headers, stream=True,
                       timeout=timeout) as resp:
        assert resp.status_code == 200, resp.text
        return sse(resp)


class Background:
    """A /chat stream read in a thread (the test keeps driving the server meanwhile)."""

    def __init__(self, url, body, headers=HEADERS):
        self.events = None
        self.error = None
        self._t = threading.Thread(target=self._run, args=(url, body, headers), daemon=True)
        self._t.start()

    def _run(self, url, body, headers):
        try:
            self.events = chat(url, body, headers, timeout=60)
        except Exception as exc:  # noqa: BLE001 - reported by result()
            self.error = exc

    def result(self, timeout=30):
        self._t.join(timeout)
        assert not self._t.is_alive(), "stream never ended"
        assert self.error is None, self.error
        return self.events


def wait_for_call(log_path, marker, timeout=15):
    """Until the fake engine logged a call whose argv contains ``marker`` (bounded poll)."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(log_path):
            with open(log_path, encoding="utf-8") as f:
                for line in f:
                    if line.strip() and marker in " ".join(json.loads(line)["argv"]):
                        return
        time.sleep(0.02)
    raise AssertionError(f"the engine was never called with {marker!r}")


def engine_alive(marker: str) -> bool:
    """Is a process whose command line contains ``marker`` still running?"""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmd and state != b"Z":
            return True
    return False


def wait_gone(marker, timeout=10):
    import time
    deadline = time.monotonic() + timeout
    while engine_alive(marker):
        assert time.monotonic() < deadline, f"engine {marker!r} still running"
        time.sleep(0.05)


START_SERVER = """
import sys, golembot
from golembot.server import start_server
assistant = golembot.create_assistant(sys.argv[1])
start_server(assistant, port=int(sys.argv[2]), token="tok", hostname="127.0.0.1")
print("clean exit", flush=True)
"""


def test_start_server_shuts_down_gracefully_on_sigterm(make_bot, client_env, fake_path):
    port = free_port()
    proc = subprocess.Popen([PYTHON, "-c", START_SERVER, make_bot(), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=client_env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(proc, url)
        assert "hello" in chat(url, {"message": "FAKE_SAY:hello"})[-1]["finalText"]
        slow = Background(url, {"message": "FAKE_SLOW:60 marker-sigterm-7731"})
        wait_for_call(fake_path, "marker-sigterm-7731")
    finally:
        out, err = stop_process(proc, signal.SIGTERM)
    assert proc.returncode == 0, err
    assert f"Golem server listening on http://127.0.0.1:{port}" in out
    assert "Auth: enabled" in out and "clean exit" in out
    assert "Traceback" not in err
    events = slow.result()
    assert events[-2:] == [
        {"type": "error", "message": "Server shutting down"},
        {"type": "completion", "status": "failed", "message": "Server shutting down"}]
    wait_gone("marker-sigterm-7731")


def test_gunicorn_gevent_worker_streams_and_aborts(make_bot, client_env, fake_path):
    port = free_port()
    env = dict(client_env, GOLEM_DIR=make_bot(), GOLEM_PORT=str(port), GOLEM_TOKEN="tok",
               GOLEM_HOST="127.0.0.1")
    gunicorn = os.path.join(os.path.dirname(PYTHON), "gunicorn")
    proc = subprocess.Popen([gunicorn, "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(proc, url)
        events = chat(url, {"message": "FAKE_SAY:from gunicorn", "sessionKey": "g1"})
        assert events[-1]["status"] == "completed" and "from gunicorn" in events[-1]["finalText"]
        assert requests.post(url + "/chat", json={"message": "hi"}, timeout=10).status_code == 401

        slow = Background(url, {"message": "FAKE_SLOW:60 marker-gunicorn-4417",
                                "sessionKey": "g2"})
        wait_for_call(fake_path, "marker-gunicorn-4417")
        resp = requests.post(url + "/abort", json={"sessionKey": "g2"}, headers=HEADERS,
                             timeout=10)
        assert resp.json() == {"ok": True, "aborted": True}
        events = slow.result()
        assert {"type": "error", "message": "Agent invocation stopped by user"} in events
        assert events[-1]["status"] == "aborted" and events[-1]["reason"] == "user"
        wait_gone("marker-gunicorn-4417")

        # a stream still open at SIGTERM is ended at once, its engine killed
        last = Background(url, {"message": "FAKE_SLOW:60 marker-gunicorn-term", "sessionKey": "g3"})
        wait_for_call(fake_path, "marker-gunicorn-term")
    finally:
        out, err = stop_process(proc, signal.SIGTERM, timeout=40)
    assert proc.returncode == 0, err
    assert last.result(timeout=5)[-1] == {"type": "completion", "status": "failed",
                                          "message": "Server shutting down"}
    wait_gone("marker-gunicorn-term")
    assert "Worker graceful timeout" not in err


def test_flask_run_with_app_py_streams_under_monkey_patching(make_bot, client_env, fake_path):
    port = free_port()
    env = dict(client_env, GOLEM_DIR=make_bot(), GOLEM_TOKEN="tok")
    proc = subprocess.Popen([PYTHON, "-m", "flask", "--app", "app", "run", "--port", str(port),
                             "--host", "127.0.0.1"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(proc, url)
        a = Background(url, {"message": "FAKE_SLOW:0.5 FAKE_SAY:one", "sessionKey": "f1"})
        b = Background(url, {"message": "FAKE_SAY:two", "sessionKey": "f2"})
        assert b.result()[-1]["status"] == "completed"
        assert a.result()[-1]["status"] == "completed"
    finally:
        stop_process(proc, signal.SIGTERM)
    wait_gone("FAKE_SLOW:0.5")


def test_wsgi_module_reads_golem_dir(make_bot, client_env):
    d = make_bot(name="from-env", gateway={"token": "yaml-token"}, maxConcurrent=7)
    code = ("import wsgi, json; s = wsgi.app.extensions['golembot'];"
            "print(json.dumps([s['token'], s['assistant'].dir, s['assistant'].max_concurrent,"
            " s['assistant'].server_env['GOLEM_URL']]))")
    env = dict(client_env, GOLEM_DIR=d, GOLEM_PORT="4555")
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    token, dir_, limit, url = json.loads(out.stdout.strip().splitlines()[-1])
    assert (token, dir_, limit, url) == ("yaml-token", d, 7, "http://127.0.0.1:4555")
    assert "yaml-token" not in out.stderr


START_OPEN = """
import sys, golembot
from golembot.server import start_server
start_server(golembot.create_assistant(sys.argv[1]), port=int(sys.argv[2]))
"""


def test_start_server_without_token_warns_and_stays_local(make_bot, client_env):
    port = free_port()
    env = dict(client_env)
    env.pop("GOLEM_PORT", None)
    proc = subprocess.Popen([PYTHON, "-c", START_OPEN, make_bot(), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(proc, url)
        assert requests.post(url + "/abort", json={}, timeout=10).json() == {"ok": True,
                                                                           "aborted": False}
        foreign = requests.post(url + "/abort", json={}, headers={"Host": "evil.example"},
                                timeout=10)
        assert foreign.status_code == 403
        cross = requests.post(url + "/chat", json={"message": "hi"},
                              headers={"Origin": "https://evil.example"}, timeout=10)
        assert cross.status_code == 403
    finally:
        out, err = stop_process(proc, signal.SIGINT)
    assert proc.returncode == 0, err
    assert "Auth: disabled (set --token or GOLEM_TOKEN)" in out
    assert "No token configured" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_access_log_never_shows_a_token():
    import io
    from golembot.server.serving import RedactingLog
    buf = io.StringIO()
    RedactingLog(buf).write('127.0.0.1 - - "GET /api/events?x=1&token=s3cret HTTP/1.1" 200\n')
    assert "s3cret" not in buf.getvalue() and "token=[redacted]" in buf.getvalue()


def test_gunicorn_serves_gateway_mode_on_request(make_bot, client_env, fake_path):
    port = free_port()
    env = dict(client_env, GOLEM_DIR=make_bot(name="gw-bot"), GOLEM_PORT=str(port),
               GOLEM_TOKEN="tok", GOLEM_MODE="gateway")
    gunicorn = os.path.join(os.path.dirname(PYTHON), "gunicorn")
    proc = subprocess.Popen([gunicorn, "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(proc, url)
        page = requests.get(url + "/", timeout=10)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        status = requests.get(url + "/api/status", headers=HEADERS, timeout=10).json()
        assert status["name"] == "gw-bot"
        events = chat(url, {"message": "FAKE_SAY:gateway reply", "sessionKey": "gw"})
        assert events[-1]["status"] == "completed"
        status = requests.get(url + "/api/status", headers=HEADERS, timeout=10).json()
        assert status["metrics"]["messagesBySource"] == {"http": 1}
    finally:
        out, err = stop_process(proc, signal.SIGTERM, timeout=40)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
