"""POST /chat end to end over a real socket: framing, commands, attachments, turn lifecycle."""
from __future__ import annotations

import base64
import json
import os
import re

import gevent
import pytest
import requests
from flask import Flask

import golembot
from golembot.server import blueprint

from .conftest import data_events, in_thread, open_raw_chat, parse_sse, read_until


def fake_calls(log_path) -> list:
    if not os.path.exists(log_path):
        return []
    with open(log_path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Until process ``pid`` has exited (bounded poll; a zombie counts as gone)."""
    with gevent.Timeout(timeout, AssertionError(f"engine {pid} still running")):
        while True:
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                        return
            except OSError:
                return
            gevent.sleep(0.02)


def history_lines(bot_dir, key="default") -> list:
    path = os.path.join(bot_dir, ".golem", "history", f"{key}.jsonl")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# -- framing -------------------------------------------------------------------------------------
def test_streams_a_reply_as_exact_sse_frames(serve, fake_path):
    s = serve()

    def run():
        with requests.post(s.url + "/chat", json={"message": "FAKE_SAY:héllo wörld"},
                           headers={"Authorization": "Bearer tok"}, stream=True,
                           timeout=30) as resp:
            return resp, resp.raw.read()
    resp, raw = in_thread(run)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Accel-Buffering"] == "no"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Content-Length" not in resp.headers
    assert raw.startswith(b"data: {")  # no leading comment or blank line
    blocks = raw.decode("utf-8").split("\n\n")
    assert blocks[-1] == ""
    events = []
    for block in blocks[:-1]:
        assert block.startswith("data: ") and "\n" not in block
        event = json.loads(block[6:])
        assert block[6:] == json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        events.append(event)
    assert [e["type"] for e in events].count("completion") == 1
    assert events[-1]["type"] == "completion" and events[-1]["status"] == "completed"
    assert "héllo wörld" in events[-1]["finalText"]
    assert any(e["type"] == "text" for e in events)
    assert any(e["type"] == "done" for e in events)


def test_keep_alive_comments_fill_silences(serve, fake_path):
    s = serve(keepalive_s=0.05)
    resp, frames = s.client.chat({"message": "FAKE_SLOW:0.5"})
    assert resp.status_code == 200
    first_data = next(i for i, f in enumerate(frames) if isinstance(f, dict))
    assert first_data > 0 and frames[0] == (":", "keep-alive")
    assert data_events(frames)[-1]["type"] == "completion"


def test_no_keep_alive_when_the_turn_is_never_silent_that_long(serve, fake_path):
    s = serve(keepalive_s=15)
    resp, frames = s.client.chat({"message": "FAKE_SAY:quick"})
    assert all(isinstance(f, dict) for f in frames)


def test_engine_failure_arrives_inside_a_200_stream(serve, fake_path):
    s = serve()
    events = s.client.events({"message": "FAKE_ERROR"})
    assert any(e["type"] == "error" for e in events)
    assert events[-1]["type"] == "completion" and events[-1]["status"] == "failed"


# -- commands ------------------------------------------------------------------------------------
def test_slash_command_answers_json_not_sse(serve, fake_path):
    s = serve()
    resp = s.client.post("/chat", json={"message": "/help"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert body["type"] == "command" and isinstance(body["text"], str)
    assert list(body)[-1] == "text"  # data keys first, text last: not re-sorted
    assert not os.path.exists(fake_path)


def test_command_failure_is_200_with_error(serve, fake_path):
    s = serve()
    resp = s.client.post("/chat", json={"message": "/engine nope"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["type"] == "command" and body.get("error")


def test_command_ignores_attachments(serve, fake_path):
    s = serve()
    img = base64.b64encode(b"img").decode()
    resp = s.client.post("/chat", json={"message": "/status", "images": [{"data": img}]})
    assert resp.status_code == 200 and resp.json()["type"] == "command"
    assert not os.path.isdir(os.path.join(s.assistant.dir, ".golem", "images")) or not os.listdir(
        os.path.join(s.assistant.dir, ".golem", "images"))


def test_a_path_is_not_a_command(serve, fake_path):
    s = serve()
    resp, frames = s.client.chat({"message": "/path/to/file is broken FAKE_SAY:ok"})
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert data_events(frames)[-1]["status"] == "completed"
    assert "/path/to/file is broken" in json.dumps(fake_calls(fake_path)[-1]["argv"])


# -- attachments -----------------------------------------------------------------------------------
def test_images_in_every_accepted_base64_form_reach_the_agent(serve, fake_path):
    s = serve()
    payload = b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary"
    std = base64.b64encode(payload).decode()
    forms = [std, std.rstrip("="), base64.urlsafe_b64encode(payload).decode().rstrip("="),
             "\n".join([std[:8], std[8:]]), "data:image/jpeg;base64," + std]
    images = [{"data": d, "fileName": f"../../shot{i}.png"} for i, d in enumerate(forms)]
    images.append({"data": None})  # skipped
    events = s.client.events({"images": images})
    assert events[-1]["type"] == "completion"
    argv = " ".join(fake_calls(fake_path)[-1]["argv"])
    assert "(image)" in argv
    paths = re.findall(r"(/\S+?shot\d\.png)", argv)
    assert len(paths) == 5
    images_dir = os.path.realpath(os.path.join(s.assistant.dir, ".golem", "images"))
    assert all(os.path.dirname(os.path.realpath(p)) == images_dir for p in paths)
    assert not os.listdir(images_dir)  # cleaned up after the turn


def test_files_without_a_name_are_skipped(serve, fake_path):
    s = serve()
    data = base64.b64encode(b"col1,col2\n1,2\n").decode()
    events = s.client.events({"message": "FAKE_SAY:got it",
                              "files": [{"data": data, "fileName": "report.csv"},
                                        {"data": data}]})
    assert events[-1]["status"] == "completed"
    argv = " ".join(fake_calls(fake_path)[-1]["argv"])
    assert "attached 1 file(s)" in argv and "report.csv" in argv


# -- the turn outlives its client --------------------------------------------------------------
def test_client_disconnect_does_not_cancel_the_turn(serve, fake_path):
    s = serve(keepalive_s=0.05)

    def read_first_frame_and_hang_up():
        sock = open_raw_chat(s.server.server_port, {"message": "FAKE_SLOW:1", "sessionKey": "k1"})
        try:
            return read_until(sock, b"keep-alive")
        finally:
            sock.close()  # hang up mid-stream
    head = in_thread(read_first_frame_and_hang_up)
    assert head.startswith(b"HTTP/1.1 200") and b": keep-alive" in head
    [turn] = list(s.state.turns)
    assert turn.greenlet.join(timeout=20) is None and turn.greenlet.dead
    assert turn.channel.closed, "the server never noticed the client leaving"
    assert turn.completion["status"] == "completed"
    session_id = turn.completion["sessionId"]

    # history and session were saved as if the client had stayed …
    roles = [line.get("role") for line in history_lines(s.assistant.dir, "k1")]
    assert roles[-2:] == ["user", "assistant"]
    with open(os.path.join(s.assistant.dir, ".golem", "sessions.json")) as f:
        assert json.load(f)["k1"]["engineSessionId"] == session_id
    # … so the next turn resumes the engine's session
    events = s.client.events({"message": "FAKE_SAY:again", "sessionKey": "k1"})
    assert events[-1]["status"] == "completed"
    argv = fake_calls(fake_path)[-1]["argv"]
    assert "--resume" in argv and argv[argv.index("--resume") + 1] == session_id


def test_abort_cancels_a_running_turn(serve, fake_path):
    s = serve()
    pending = s.client.start_chat({"message": "FAKE_SLOW:30", "sessionKey": "slow"})
    s.wait_running("slow")
    assert s.client.post("/abort", json={"sessionKey": "other"}).json() == {"ok": True,
                                                                           "aborted": False}
    assert s.client.post("/abort", json={"sessionKey": "slow"}).json() == {"ok": True,
                                                                          "aborted": True}
    status, frames = pending.get(timeout=20)
    events = data_events(frames)
    assert status == 200
    assert {"type": "error", "message": "Agent invocation stopped by user"} in events
    assert events[-1]["type"] == "completion" and events[-1]["status"] == "aborted"
    assert events[-1]["reason"] == "user"
    s.join_turns()
    assert s.client.post("/abort", json={"sessionKey": "slow"}).json()["aborted"] is False


def test_concurrency_limits_surface_as_error_events(serve, fake_path):
    s = serve(assistant_opts={"max_concurrent": 2, "max_queue_per_session": 1})
    running = s.client.start_chat({"message": "FAKE_SLOW:30", "sessionKey": "a"})
    s.wait_running("a")
    queued = s.client.start_chat({"message": "FAKE_SAY:queued", "sessionKey": "a"})
    deadline = gevent.Timeout(10)
    with deadline:  # the second request on "a" waits in the key's queue
        while len(s.state.turns) < 2:
            gevent.sleep(0.01)
    events = s.client.events({"message": "FAKE_SAY:x", "sessionKey": "b"})
    assert events == [
        {"type": "error", "message": "Server busy: too many concurrent requests (limit: 2). "
                                     "Try again later."},
        {"type": "completion", "status": "failed",
         "message": "Server busy: too many concurrent requests (limit: 2). Try again later."}]
    s.assistant.max_concurrent = 5  # hot change: next call sees it
    events = s.client.events({"message": "FAKE_SAY:x", "sessionKey": "a"})
    assert events[0] == {"type": "error", "message": "Too many pending requests for this session "
                                                    "(limit: 1). Try again later."}
    assert events[-1]["status"] == "failed"
    assert s.client.post("/abort", json={"sessionKey": "a"}).json()["aborted"] is True
    assert data_events(running.get(timeout=20)[1])[-1]["status"] == "aborted"
    assert data_events(queued.get(timeout=20)[1])[-1]["status"] == "completed"


def test_shutdown_ends_open_streams_and_kills_engines(serve, fake_path):
    s = serve(assistant_opts={"max_queue_per_session": 2})
    running = s.client.start_chat({"message": "FAKE_SLOW:30 FAKE_SAY:first", "sessionKey": "z"})
    s.wait_running("z")
    queued = s.client.start_chat({"message": "FAKE_SLOW:30 marker-queued", "sessionKey": "z"})
    with gevent.Timeout(10):  # the second request waits behind the first on its key
        while len(s.state.turns) < 2:
            gevent.sleep(0.01)
    assert s.state.shutdown() is True
    for pending in (running, queued):
        status, frames = pending.get(timeout=20)
        assert status == 200
        assert data_events(frames)[-2:] == [
            {"type": "error", "message": "Server shutting down"},
            {"type": "completion", "status": "failed", "message": "Server shutting down"}]
    assert not s.state.turns and not s.assistant.is_running("z")
    # the interrupted turn was recorded; the queued one never reached its engine
    lines = history_lines(s.assistant.dir, "z")
    assert [line.get("role") for line in lines] == ["user", "assistant"]
    assert "FAKE_SAY:first" in json.dumps(lines[0]) and "marker-queued" not in json.dumps(lines)
    for call in fake_calls(fake_path):  # whichever engine got as far as logging is gone
        wait_gone(call["pid"])
    assert s.state.shutdown() is False  # idempotent
    late = s.client.events({"message": "FAKE_SAY:too late", "sessionKey": "late"})
    assert late == [{"type": "error", "message": "Server shutting down"},
                    {"type": "completion", "status": "failed", "message": "Server shutting down"}]


def test_reset_clears_history_and_session(serve, fake_path):
    s = serve()
    s.client.events({"message": "FAKE_SAY:remember", "sessionKey": "r"})
    assert history_lines(s.assistant.dir, "r")
    assert s.client.post("/reset", json={"sessionKey": "r"}).json() == {"ok": True}
    assert not os.path.exists(os.path.join(s.assistant.dir, ".golem", "history", "r.jsonl"))
    s.client.events({"message": "FAKE_SAY:fresh", "sessionKey": "r"})
    assert "--resume" not in fake_calls(fake_path)[-1]["argv"]


def test_health_is_open_and_exact(serve):
    s = serve()
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        resp = s.client.get("/health?x=1", auth=False, headers=headers)
        assert resp.status_code == 200
        body = resp.json()
        assert list(body) == ["status", "timestamp"] and body["status"] == "ok"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["timestamp"])


def test_serve_mode_routes(serve):
    s = serve()
    resp = s.client.get("/", auth=False)
    assert resp.text == ('{"hint":"Use POST /chat to interact",'
                         '"endpoints":["/chat","/abort","/reset","/health"]}')
    assert s.client.get("/api/status").json() == {
        "hint": "Dashboard not available (gateway mode only)"}
    assert s.client.post("/shutdown").status_code == 404


def test_agent_gets_the_server_url_token_and_session_key(make_bot, fake_path):
    from golembot.server import create_golem_server
    assistant = golembot.create_assistant(make_bot())
    server = create_golem_server(assistant, port=0, token="tok", hostname="127.0.0.1")
    port = server.server_port
    assert port  # bound before start, so the URL is known
    server.start()
    try:
        def run():
            with requests.post(f"http://127.0.0.1:{port}/chat",
                               json={"message": "FAKE_SAY:env", "sessionKey": "env-key"},
                               headers={"Authorization": "Bearer tok"}, stream=True,
                               timeout=30) as resp:
                return parse_sse(resp.raw.read())
        events = data_events(in_thread(run))
        assert events[-1]["status"] == "completed"
        env = fake_calls(fake_path)[-1]["env"]
        assert env["GOLEM_URL"] == f"http://127.0.0.1:{port}"
        assert env["GOLEM_TOKEN"] == "tok"
        assert env["GOLEM_SESSION_KEY"] == "env-key"
    finally:
        server.stop(timeout=1)
        server.golem_state.shutdown()


# -- embedding ---------------------------------------------------------------------------------
def test_blueprint_mounts_under_a_prefix_without_touching_the_host_app(make_bot, fake_path):
    from gevent.pywsgi import WSGIServer
    assistant = golembot.create_assistant(make_bot())
    host = Flask("host")

    @host.get("/mine")
    def mine():
        return {"b": 1, "a": 2}

    bp = blueprint(assistant, token="tok", keepalive_s=15)
    host.register_blueprint(bp, url_prefix="/bot")
    server = WSGIServer(("127.0.0.1", 0), host, log=None)
    server.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        own = in_thread(requests.get, url + "/mine")
        assert own.status_code == 200 and "Access-Control-Allow-Origin" not in own.headers
        assert in_thread(requests.get, url + "/bot/health").status_code == 200
        unauthorized = in_thread(requests.post, url + "/bot/chat", json={"message": "hi"})
        assert unauthorized.status_code == 401
        pre = in_thread(requests.options, url + "/bot/chat")
        assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == "*"

        def run():
            with requests.post(url + "/bot/chat", json={"message": "FAKE_SAY:mounted"},
                               headers={"Authorization": "Bearer tok"}, stream=True,
                               timeout=30) as resp:
                return parse_sse(resp.raw.read())
        events = data_events(in_thread(run))
        assert "mounted" in events[-1]["finalText"]
        bad = in_thread(requests.post, url + "/bot/chat", data=b"{",
                        headers={"Authorization": "Bearer tok"})
        assert (bad.status_code, bad.json()) == (400, {"error": "Invalid JSON body"})
    finally:
        server.stop(timeout=1)
        bp.golem_state.shutdown()


def test_cron_command_works_in_serve_mode(serve, fake_path):
    s = serve()
    resp = s.client.post("/chat", json={"message": "/cron list"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["type"] == "command" and "error" not in body, body
    assert isinstance(body["text"], str) and body["text"]


def test_lone_surrogates_become_replacement_characters(serve, fake_path):
    s = serve()
    raw = b'{"message": "FAKE_SAY:half \\ud83d pair \\ud83d\\ude00", "sessionKey": "s\\udc00"}'
    resp = s.client.post("/chat", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200
    events = parse_sse(resp.content)
    assert events[-1]["status"] == "completed"
    assert events[-1]["finalText"] == "half \ufffd pair \U0001F600"
    assert fake_calls(fake_path)[-1]["env"]["GOLEM_SESSION_KEY"] == "s\ufffd"


def test_gateway_metrics_record_each_streamed_turn_even_after_a_disconnect(serve, make_bot,
                                                                           fake_path):
    gateway_mod = pytest.importorskip("golembot.gateway")
    if not hasattr(gateway_mod, "Gateway"):
        pytest.skip("golembot.gateway.Gateway not built yet")
    from golembot.config import load_config
    d = make_bot()
    assistant = golembot.create_assistant(d)
    gateway = gateway_mod.Gateway(assistant, d, load_config(d))
    gateway.start()
    try:
        s = serve(dir=d, assistant=assistant, gateway=gateway, keepalive_s=0.05)
        s.client.events({"message": "FAKE_SAY:counted", "sessionKey": "m1"})
        assert s.client.post("/chat", json={"message": "/help"}).status_code == 200  # not counted

        def hang_up():
            sock = open_raw_chat(s.server.server_port, {"message": "FAKE_SLOW:0.5 FAKE_SAY:late"})
            try:
                return read_until(sock, b"keep-alive")
            finally:
                sock.close()
        in_thread(hang_up)
        s.join_turns()
        snap = gateway.metrics.snapshot()
        assert snap["totalMessages"] == 2
        assert snap["messagesBySource"] == {"http": 2}
        recent = snap["recentMessages"][-2:]
        assert recent[0]["sender"] == "m1" and recent[0]["messagePreview"] == "FAKE_SAY:counted"
        assert "counted" in recent[0]["responsePreview"]
        assert recent[1]["sender"] == "anonymous" and "late" in recent[1]["responsePreview"]
    finally:
        gateway.stop()


def test_task_store_works_over_http_in_serve_mode(serve, fake_path):
    s = serve()
    assert s.client.get("/api/tasks", auth=False).status_code == 401
    assert s.client.get("/api/tasks").json() == []
    created = s.client.post("/api/tasks", json={"name": "daily", "schedule": "every 2h",
                                                "prompt": "FAKE_SAY:task ran"})
    assert created.status_code == 201, created.text
    listed = s.client.post("/chat", json={"message": "/cron list"}).json()
    assert "daily" in listed["text"] and "error" not in listed
