"""The gateway API (/api/*) over real sockets, with a real gateway and a custom adapter.

The app is the real ``create_app(..., gateway=...)`` served on the main gevent loop by the
``serve`` fixture (tests/server/conftest.py); client calls run in gevent's thread pool. The custom
adapter below stands in for an IM platform: its "platform" is a small HTTP endpoint that the
tests post incoming messages to and read the bot's outgoing messages from.
"""
from __future__ import annotations

import json
import os
import re
import textwrap
import time

import gevent
import pytest
import requests

from .conftest import in_thread, spawn_thread
from .test_api_support import make_gateway, write_adapter

TOKEN = "tok-SECRET-0123456789abcdef"
PROVIDER_KEY = "sk-SECRET-provider-abcdef123456"
CHANNEL_TOKEN = "chan-SECRET-token-abcdef987654"
SECRETS = (TOKEN, PROVIDER_KEY, CHANNEL_TOKEN)

GOLEM_YAML = textwrap.dedent('''\
    # my bot — hand-written comments must survive a PATCH
    name: apibot
    engine: claude-code   # the engine
    timeout: 120
    provider:
      baseUrl: http://127.0.0.1:9/v1
      apiKey: ${{TEST_PROVIDER_KEY}}   # from the environment
    gateway:
      token: ${{TEST_GATEWAY_TOKEN}}
    channels:
      web:
        _adapter: ./adapters/web.py:WebAdapter
        portFile: {port_file}
        token: {channel_token}
      quiet:
        _adapter: ./adapters/web.py:ListenOnly
        portFile: {quiet_port_file}
    # trailing comment
''')


def _wait_for(predicate, timeout=15.0, interval=0.02):
    """Bounded poll that lets the event loop (the server) run meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        gevent.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture
def bot(make_bot, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_PROVIDER_KEY", PROVIDER_KEY)
    monkeypatch.setenv("TEST_GATEWAY_TOKEN", TOKEN)
    monkeypatch.delenv("GOLEM_TOKEN", raising=False)
    d = make_bot(name="apibot")
    write_adapter(d)
    port_file = os.path.join(d, "web.port")
    with open(os.path.join(d, "golem.yaml"), "w") as fh:
        fh.write(GOLEM_YAML.format(port_file=port_file, channel_token=CHANNEL_TOKEN,
                                   quiet_port_file=os.path.join(d, "quiet.port")))
    return d


class Harness:
    """The served app plus the gateway behind it; ``get``/``post``/… go through a thread."""

    def __init__(self, served, gateway, dir):
        self.served = served
        self.gateway = gateway
        self.dir = dir
        self.assistant = served.assistant

    def url(self, path):
        return self.served.url + path

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 30)
        return in_thread(requests.request, method, self.url(path), **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)


@pytest.fixture
def start_gateway(serve):
    """``start_gateway(dir, token)`` → :class:`Harness` (real assistant, gateway and app)."""
    from golembot import create_assistant
    from golembot.config import load_config

    gateways = []

    def _start(dir, token=TOKEN, **app_opts):
        assistant = create_assistant(dir)
        gateway = make_gateway(assistant, dir, load_config(dir))
        gateways.append(gateway)
        gateway.start()
        # adapters may start in the background: wait until none is still connecting
        _wait_for(lambda: all(c["status"] in ("connected", "failed", "not_configured")
                              for c in gateway.channel_status()))
        served = serve(dir, token=token, assistant=assistant, gateway=gateway, **app_opts)
        return Harness(served, gateway, dir)

    yield _start
    for gateway in gateways:
        gateway.stop()


@pytest.fixture
def server(bot, start_gateway):
    return start_gateway(bot, TOKEN, keepalive_s=0.3)


def _auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def _platform_url(srv, path="/"):
    port = _wait_for(lambda: _read(os.path.join(srv.dir, "web.port")))
    return f"http://127.0.0.1:{port}{path}"


def _incoming(srv, sender, text, msg_id):
    r = in_thread(requests.post, _platform_url(srv), timeout=10,
                  json={"sender": sender, "text": text, "id": msg_id})
    assert r.status_code == 200


def _read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _assert_no_secret(text):
    for secret in SECRETS:
        assert secret not in text


# -- auth ------------------------------------------------------------------------------------------
def test_api_routes_require_the_bearer_token(server):
    for method, path in [("GET", "/api/status"), ("GET", "/api/dashboard"), ("GET", "/api/channels"),
                         ("POST", "/api/send"), ("PATCH", "/api/config"), ("GET", "/api/events")]:
        r = server.request(method, path)
        assert r.status_code == 401, (method, path)
        assert r.json() == {"error": "Unauthorized"}
        r = server.request(method, path, headers=_auth("wrong"))
        assert r.status_code == 401, (method, path)
    # the scheme is case-sensitive and a bare token is not a bearer header
    assert server.get("/api/status", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 401
    assert server.get("/api/status", headers={"Authorization": TOKEN}).status_code == 401
    # nothing happened: golem.yaml untouched, nothing sent
    assert in_thread(requests.get, _platform_url(server, "/outbox"), timeout=5).json() == []


def test_query_token_is_accepted_only_on_events(server):
    assert server.get(f"/api/status?token={TOKEN}").status_code == 401
    assert server.get(f"/api/dashboard?token={TOKEN}").status_code == 401
    assert server.post(f"/api/send?token={TOKEN}", json={}).status_code == 401

    def open_events():
        with requests.get(server.url(f"/api/events?token={TOKEN}"), stream=True,
                          timeout=10) as r:
            return r.status_code, r.headers.get("Content-Type", "")

    status, content_type = in_thread(open_events)
    assert status == 200
    assert content_type.startswith("text/event-stream")


def test_without_a_token_the_api_is_local_only(bot, start_gateway):
    srv = start_gateway(bot, token=None)
    assert srv.get("/api/status").status_code == 200
    r = srv.get("/api/status", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = srv.patch("/api/config", data='{"timeout": 5}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert "timeout: 120" in _yaml(srv)


# -- status ----------------------------------------------------------------------------------------
def test_status_reports_the_bot_and_masks_secrets(server):
    r = server.get("/api/status", headers=_auth())
    assert r.status_code == 200
    _assert_no_secret(r.text)
    body = r.json()
    assert list(body)[:9] == ["name", "engine", "model", "version", "uptime", "channels", "skills",
                              "metrics", "recentMessages"]
    assert body["name"] == "apibot"
    assert body["engine"] == "claude-code"
    assert isinstance(body["uptime"], int) and body["uptime"] >= 0
    assert body["version"]
    assert body["authEnabled"] is True
    channels = {c["type"]: c["status"] for c in body["channels"]}
    assert channels["web"] == "connected"
    assert channels["telegram"] == "not_configured"
    assert set(body["metrics"]) >= {"totalMessages", "totalCostUsd", "avgDurationMs",
                                    "messagesBySource"}
    assert body["recentMessages"] == []
    assert body["config"]["provider"]["apiKey"] == PROVIDER_KEY[:3] + "••••" + PROVIDER_KEY[-2:]
    assert body["config"]["gateway"]["token"] == TOKEN[:3] + "••••" + TOKEN[-2:]
    assert body["config"]["channels"]["web"]["token"] != CHANNEL_TOKEN
    # /api/dashboard carries the same data
    r2 = server.get("/api/dashboard", headers=_auth())
    assert r2.status_code == 200
    _assert_no_secret(r2.text)
    assert list(r2.json()) == list(body)


def test_status_shows_escalations_sessions_and_memory(server):
    golem = os.path.join(server.dir, ".golem")
    os.makedirs(golem, exist_ok=True)
    with open(os.path.join(golem, "escalations.jsonl"), "w") as fh:
        fh.write(json.dumps({"ts": "2026-03-01T10:00:00Z", "sessionKey": "web:alice",
                             "reason": "wants a human", "status": "open"}) + "\n")
        fh.write("not json\n")
        fh.write(json.dumps({"ts": "2026-03-02T10:00:00Z", "sessionKey": "web:bob",
                             "reason": "refund", "status": "resolved"}) + "\n")
    os.makedirs(os.path.join(server.dir, "memory", "groups"))
    with open(os.path.join(server.dir, "memory", "groups", "web-room.md"), "w") as fh:
        fh.write("# Group\n")
    with open(os.path.join(server.dir, "notes.md"), "w") as fh:
        fh.write("remember: tea, not coffee\n")
    body = server.get("/api/dashboard", headers=_auth()).json()
    assert [e["reason"] for e in body["escalations"]] == ["refund", "wants a human"]
    assert [e["status"] for e in body["escalations"]] == ["resolved", "open"]
    memory = body["memoryOverview"]
    assert memory["notesPreview"].startswith("remember: tea")
    assert memory["groupFiles"] == ["web-room.md"]
    assert [f["path"] for f in memory["files"]] == ["notes.md", "memory/groups/web-room.md"]


def test_a_secret_typed_into_a_message_is_masked_in_the_status(server):
    _incoming(server, "mallory", f"FAKE_SAY:ok, the token is {TOKEN}", "m-secret")
    _wait_for(lambda: server.get("/api/status", headers=_auth()).json()["recentMessages"])
    r = server.get("/api/status", headers=_auth())
    _assert_no_secret(r.text)
    assert "mallory" in r.text


def test_dashboard_page_without_token_shows_only_public_basics(server):
    r = server.get("/")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    _assert_no_secret(r.text)
    assert "apibot" in r.text
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    # data that needs auth is not in the public page
    assert "http://127.0.0.1:9/v1" not in r.text
    assert '"data": null' in r.text
    js = server.get("/golem-static/dashboard.js")
    assert js.status_code == 200 and "EventSource" in js.text


# -- channels and send -------------------------------------------------------------------------------
def test_channels_lists_running_adapters_with_can_send(server):
    r = server.get("/api/channels", headers=_auth())
    assert r.status_code == 200
    assert sorted(r.json()["channels"], key=lambda c: c["name"]) == [
        {"name": "quiet", "canSend": False}, {"name": "web", "canSend": True}]


def test_send_delivers_through_the_adapter(server):
    r = server.post("/api/send", headers=_auth(),
                    json={"channel": "web", "chatId": "room-1", "text": "Meeting moved to 3pm"})
    assert r.status_code == 200
    assert r.json() == {"ok": True}
    outbox = in_thread(requests.get, _platform_url(server, "/outbox"), timeout=5).json()
    assert outbox == [{"chatId": "room-1", "text": "Meeting moved to 3pm"}]


@pytest.mark.parametrize("body, status, message", [
    ("not json", 400, "Invalid JSON body"),
    ({"channel": "web", "chatId": "x"}, 400, "Missing required fields: channel, chatId, text"),
    ({"channel": "web", "chatId": "", "text": "hi"}, 400,
     "Missing required fields: channel, chatId, text"),
    ({"channel": "web", "chatId": 5, "text": "hi"}, 400,
     "Missing required fields: channel, chatId, text"),
    ({"channel": "telegram", "chatId": "1", "text": "hi"}, 404,
     'Channel "telegram" not found. Available: web, quiet'),
    ({"channel": "quiet", "chatId": "1", "text": "hi"}, 501,
     'Channel "quiet" does not support proactive send'),
])
def test_send_errors(server, body, status, message):
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    r = server.post("/api/send", headers=_auth(), **kwargs)
    assert r.status_code == status
    assert r.json() == {"error": message}
    assert in_thread(requests.get, _platform_url(server, "/outbox"), timeout=5).json() == []


def test_send_without_adapters_is_503(make_bot, start_gateway):
    srv = start_gateway(make_bot(name="lonely"), token=TOKEN)
    r = srv.post("/api/send", data="not even json", headers=_auth())
    assert r.status_code == 503
    assert r.json() == {"error": "No channel adapters available"}
    assert srv.get("/api/channels", headers=_auth()).json() == {"channels": []}


# -- PATCH /api/config ---------------------------------------------------------------------------------
def _yaml(srv):
    with open(os.path.join(srv.dir, "golem.yaml"), encoding="utf-8") as fh:
        return fh.read()


def test_patch_config_merges_keeps_comments_and_applies_hot_fields(server):
    r = server.patch("/api/config", headers=_auth(),
                     json={"timeout": 180, "maxConcurrent": 4,
                           "groupChat": {"groupPolicy": "smart"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    assert body["needsRestart"] is False
    assert body["config"]["timeout"] == 180
    assert body["config"]["groupChat"]["groupPolicy"] == "smart"
    assert body["config"]["provider"]["baseUrl"] == "http://127.0.0.1:9/v1"
    _assert_no_secret(r.text)
    after = _yaml(server)
    for kept in ("# my bot — hand-written comments must survive a PATCH", "# the engine",
                 "# trailing comment", "# from the environment", "${TEST_PROVIDER_KEY}",
                 "${TEST_GATEWAY_TOKEN}", "_adapter: ./adapters/web.py:WebAdapter"):
        assert kept in after
    assert TOKEN not in after and PROVIDER_KEY not in after  # placeholders never resolved
    assert "timeout: 180" in after and "groupPolicy: smart" in after
    # hot fields take effect at once: the limits on the running assistant, the timeout through
    # golem.yaml (re-read every turn) unless the assistant holds an explicit override
    assert server.assistant.max_concurrent == 4
    assert server.assistant.timeout_s in (None, 180)
    from golembot.config import load_config
    assert load_config(server.dir)["timeout"] == 180


def test_patch_config_needs_restart_for_engine(server):
    r = server.patch("/api/config", headers=_auth(), json={"engine": "codex"})
    assert r.status_code == 200, r.text
    assert r.json()["needsRestart"] is True
    assert re.search(r"^engine: codex +# the engine$", _yaml(server), re.M)


@pytest.mark.parametrize("patch", [
    {"timeout": "soon"},
    {"timeout": -5},
    {"groupChat": {"groupPolicy": "sometimes"}},
    {"engine": "no-such-engine"},
])
def test_patch_config_validation_leaves_the_file_alone(server, patch):
    before = _yaml(server)
    r = server.patch("/api/config", headers=_auth(), json=patch)
    assert r.status_code == 400
    assert r.json()["error"]
    assert _yaml(server) == before


@pytest.mark.parametrize("patch", [
    {"gateway": {"token": "new-token-value-123"}},
    {"provider": {"apiKey": "sk-new-key-000000000"}},
    {"channels": {"web": {"token": "other-token-0000000"}}},
])
def test_patch_config_refuses_secret_fields(server, patch):
    before = _yaml(server)
    r = server.patch("/api/config", headers=_auth(), json=patch)
    assert r.status_code == 400
    assert _yaml(server) == before
    _assert_no_secret(r.text)


@pytest.mark.parametrize("raw, message", [
    ("{not json", "Invalid JSON body"),
    ("[1, 2]", "Body must be a JSON object"),
    ("null", "Body must be a JSON object"),
])
def test_patch_config_body_must_be_an_object(server, raw, message):
    r = server.patch("/api/config", data=raw,
                     headers={**_auth(), "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"error": message}


# -- events ---------------------------------------------------------------------------------------------
def _read_events(url, frames, want_data=1, timeout=20.0):
    """Collect SSE frames into ``frames`` (live) until ``want_data`` data frames or the deadline.
    Runs in a thread; returns ``(status, headers)``."""
    with requests.get(url, stream=True, timeout=10) as r:
        deadline = time.monotonic() + timeout
        buf = b""
        for chunk in r.iter_content(chunk_size=None):
            buf += chunk
            while b"\n\n" in buf:
                frame, buf = buf.split(b"\n\n", 1)
                frames.append(frame.decode("utf-8"))
            if sum(f.startswith("data: ") for f in frames) >= want_data:
                break
            if time.monotonic() > deadline:  # keep-alives every 0.3 s bound this loop
                break
        return r.status_code, dict(r.headers)


def test_events_stream_an_adapter_message_and_keep_alives(server):
    frames = []
    reader = spawn_thread(_read_events, server.url(f"/api/events?token={TOKEN}"), frames)
    _wait_for(lambda: ": keep-alive" in frames)  # subscribed, and silence gives keep-alives
    assert not [f for f in frames if f.startswith("data: ")]
    _incoming(server, "alice", "FAKE_SAY:hello alice", "m-1")
    status, headers = reader.get(timeout=30)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    data = [json.loads(f[6:]) for f in frames if f.startswith("data: ")]
    assert len(data) == 1
    event = data[0]
    assert event["source"] == "web"
    assert event["sender"] == "alice"
    assert event["messagePreview"] == "FAKE_SAY:hello alice"
    assert "hello alice" in event["responsePreview"]
    metrics = server.get("/api/status", headers=_auth()).json()["metrics"]
    assert metrics["totalMessages"] == 1
    assert metrics["messagesBySource"] == {"web": 1}


def test_events_mask_secrets_in_activity(server):
    frames = []
    reader = spawn_thread(_read_events, server.url(f"/api/events?token={TOKEN}"), frames)
    _wait_for(lambda: ": keep-alive" in frames)
    _incoming(server, "mallory", f"FAKE_SAY:leaking {PROVIDER_KEY}", "m-leak")
    reader.get(timeout=30)
    text = "\n".join(frames)
    assert "mallory" in text
    _assert_no_secret(text)
