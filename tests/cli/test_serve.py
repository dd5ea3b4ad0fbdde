"""``golembot serve`` as a real process: listen, stream a reply over SSE, stop on SIGTERM."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import requests

from .conftest import cli_argv, cli_env, free_port


def wait_for_health(proc, url, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.communicate()}")
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)  # bounded poll for the port to open, not a wait for a result
    raise AssertionError("server never answered /health")


def sse_events(response):
    for line in response.iter_lines(decode_unicode=True):
        if line and line.startswith("data: "):
            yield json.loads(line[6:])


def test_serve_streams_a_reply_and_stops_on_sigterm(make_bot, fake_path):
    d = make_bot(name="served")
    port = free_port()
    proc = subprocess.Popen(cli_argv("serve", "-d", d, "-p", str(port), "-t", "tok"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env())
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(proc, url)
        headers = {"Authorization": "Bearer tok"}
        assert requests.post(url + "/chat", json={"message": "hi"}, timeout=10).status_code == 401
        with requests.post(url + "/chat", json={"message": "FAKE_SAY:streamed hello"},
                           headers=headers, stream=True, timeout=30) as resp:
            assert resp.status_code == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            events = list(sse_events(resp))
        assert events[-1]["type"] == "completion" and events[-1]["status"] == "completed"
        assert "streamed hello" in events[-1]["finalText"]
        assert any(e["type"] == "text" for e in events)

        res = requests.post(url + "/chat", json={"message": "/model list"}, headers=headers,
                            timeout=10)
        body = res.json()
        assert res.status_code == 200 and body["type"] == "command"
        assert body["engine"] == "claude-code" and body["models"]
        assert body["text"].startswith(f"Available models for claude-code ({len(body['models'])}):")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in out
    assert "Traceback" not in err


def test_serve_on_a_busy_port_fails_with_one_line(make_bot, fake_path):
    import socket
    d = make_bot(name="busy")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = subprocess.run(cli_argv("serve", "-d", d, "-p", str(port)), capture_output=True,
                             text=True, env=cli_env(), timeout=30)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == (
        f"❌ Cannot listen on 127.0.0.1:{port}: the port is already in use (choose another with -p)")
    assert "Traceback" not in res.stderr


def test_serve_takes_port_and_token_from_env_and_config(make_bot, fake_path):
    port = free_port()
    d = make_bot(name="cfg", gateway={"port": 1, "token": "from-config"})
    proc = subprocess.Popen(cli_argv("serve", "-d", d), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=cli_env(GOLEM_PORT=str(port)))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(proc, url)
        res = requests.post(url + "/chat", json={"message": "/status"}, timeout=10)
        assert res.status_code == 401
        res = requests.post(url + "/chat", json={"message": "/status"}, timeout=10,
                            headers={"Authorization": "Bearer from-config"})
        assert res.status_code == 200 and res.json()["name"] == "cfg"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Auth: enabled" in out


def test_gateway_serves_api_and_dashboard_and_stops_on_sigterm(make_bot, fake_path):
    d = make_bot(name="gw")
    port = free_port()
    proc = subprocess.Popen(cli_argv("gateway", "-d", d, "-p", str(port), "-t", "gwtok"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env())
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": "Bearer gwtok"}
    try:
        wait_for_health(proc, url)
        res = requests.post(url + "/chat", json={"message": "/cron list"}, headers=headers,
                            timeout=10)
        assert res.json() == {"type": "command", "tasks": [], "text": "No scheduled tasks."}
        with requests.post(url + "/chat", json={"message": "FAKE_SAY:via gateway"},
                           headers=headers, stream=True, timeout=30) as resp:
            events = list(sse_events(resp))
        assert events[-1]["status"] == "completed" and "via gateway" in events[-1]["finalText"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in out
    assert "Traceback" not in err


def test_gateway_post_shutdown_stops_it_gracefully(make_bot, fake_path):
    d = make_bot(name="gw")
    port = free_port()
    proc = subprocess.Popen(cli_argv("gateway", "-d", d, "-p", str(port), "-t", "gwtok"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env())
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(proc, url)
        assert requests.post(url + "/shutdown", timeout=5).status_code == 401
        res = requests.post(url + "/shutdown", headers={"Authorization": "Bearer gwtok"}, timeout=5)
        assert res.json() == {"ok": True, "message": "Shutting down"}
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
