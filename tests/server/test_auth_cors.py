"""Bearer auth, CORS, and the local-only rules of a server without a token."""
from __future__ import annotations

import os

import pytest

from golembot.server.auth import host_name

CORS = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type, Authorization"}


def assert_cors(resp):
    for k, v in CORS.items():
        assert resp.headers.get(k) == v, (k, resp.headers)
    assert "Access-Control-Allow-Credentials" not in resp.headers


@pytest.mark.parametrize("header", [None, "Bearer wrong", "bearer tok", "Bearer  tok", "tok",
                                    "Basic dG9rOg==", "Bearer tökén", "Bearer tok2"])
def test_protected_routes_need_the_exact_bearer_token(serve, fake_path, header):
    s = serve()
    headers = {"Authorization": header} if header else {}
    for method, path in [("POST", "/chat"), ("POST", "/reset"), ("POST", "/abort"),
                         ("GET", "/nope"), ("GET", "/chat"), ("GET", "/api/status")]:
        resp = s.client.request(method, path, auth=False, headers=headers,
                                json={"message": "hi"})
        assert resp.status_code == 401, (method, path, resp.text)
        assert resp.json() == {"error": "Unauthorized"}
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert_cors(resp)
    assert not os.path.exists(fake_path)


def test_token_in_the_url_only_opens_api_events(serve, fake_path):
    s = serve()
    resp = s.client.post("/chat?token=tok", auth=False, json={"message": "/help"})
    assert resp.status_code == 401
    assert s.client.post("/abort?token=tok", auth=False).status_code == 401
    resp = s.client.get("/api/events?token=tok", auth=False)
    assert resp.status_code == 404  # auth passed; serve mode has no event stream
    assert resp.json() == {"error": "Events not available (gateway mode only)"}
    assert s.client.get("/api/events?token=bad", auth=False).status_code == 401


def test_correct_token_passes(serve):
    s = serve(token="s3cr3t-☃")
    s.client.token = "s3cr3t-☃"
    headers = {"Authorization": "Bearer s3cr3t-☃".encode()}
    resp = s.client.request("POST", "/abort", auth=False, headers=headers)
    assert resp.status_code == 200 and resp.json() == {"ok": True, "aborted": False}


def test_token_falls_back_to_golem_token_env(serve, monkeypatch):
    monkeypatch.setenv("GOLEM_TOKEN", "from-env")
    s = serve(token=None)
    assert s.client.post("/abort", auth=False).status_code == 401
    resp = s.client.post("/abort", auth=False, headers={"Authorization": "Bearer from-env"})
    assert resp.status_code == 200


@pytest.mark.parametrize("path", ["/chat", "/health", "/api/config", "/does/not/exist", "/"])
def test_preflight_anywhere_is_204_without_auth(serve, path):
    s = serve()
    resp = s.client.request("OPTIONS", path, auth=False, headers={
        "Origin": "https://example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert resp.status_code == 204 and resp.content == b""
    assert_cors(resp)
    assert "Content-Type" not in resp.headers


def test_cors_headers_on_every_kind_of_response(serve, fake_path):
    s = serve()
    origin = {"Origin": "https://elsewhere.example"}
    assert_cors(s.client.get("/health", headers=origin))
    assert_cors(s.client.get("/nope", headers=origin))
    assert_cors(s.client.post("/chat", headers=origin, data=b"{"))
    assert_cors(s.client.post("/chat", headers=origin, json={"message": "/help"}))
    resp, _ = s.client.chat({"message": "FAKE_SAY:x"}, headers=origin)
    assert_cors(resp)


# -- no token: local, same-origin use only -------------------------------------------------------
def test_no_token_refuses_cross_site_origins(serve, fake_path, monkeypatch):
    monkeypatch.delenv("GOLEM_TOKEN", raising=False)
    s = serve(token=None)
    for origin in ("https://evil.example", "null", "http://127.0.0.1.evil.example"):
        resp = s.client.post("/chat", headers={"Origin": origin}, json={"message": "hi"})
        assert resp.status_code == 403, origin
        assert set(resp.json()) == {"error"}
        assert_cors(resp)
    assert not os.path.exists(fake_path)
    port = s.server.server_port
    for origin in (f"http://127.0.0.1:{port}", "http://localhost:5173", "http://[::1]:8080"):
        resp = s.client.post("/abort", headers={"Origin": origin}, json={})
        assert resp.status_code == 200, origin


def test_no_token_refuses_foreign_host_headers(serve, monkeypatch):
    monkeypatch.delenv("GOLEM_TOKEN", raising=False)
    s = serve(token=None)
    resp = s.client.post("/abort", headers={"Host": "attacker.example"}, json={})
    assert resp.status_code == 403
    for host in ("localhost:3000", "LOCALHOST", "127.0.0.1", "[::1]:3000"):
        assert s.client.post("/abort", headers={"Host": host}, json={}).status_code == 200, host
    # /health stays public
    assert s.client.get("/health", headers={"Host": "attacker.example"}).status_code == 200


def test_no_token_accepts_the_bound_host(serve, monkeypatch):
    monkeypatch.delenv("GOLEM_TOKEN", raising=False)
    s = serve(token=None, host="bot.internal")
    ok = s.client.post("/abort", headers={"Host": "bot.internal:3000"}, json={})
    assert ok.status_code == 200
    assert s.client.post("/abort", headers={"Host": "other.internal"}, json={}).status_code == 403


def test_no_token_needs_json_bodies(serve, fake_path, monkeypatch):
    monkeypatch.delenv("GOLEM_TOKEN", raising=False)
    s = serve(token=None)
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": ctype} if ctype else {}
        resp = s.client.post("/chat", headers=headers, data=b'{"message":"hi"}')
        assert resp.status_code == 415, ctype
    resp = s.client.post("/chat", json={"message": "/help"})
    assert resp.status_code == 200 and resp.json()["type"] == "command"
    assert not os.path.exists(fake_path)


def test_with_a_token_content_type_is_not_checked(serve):
    s = serve()
    resp = s.client.post("/chat", headers={"Content-Type": "text/plain"},
                         data=b'{"message":"/help"}')
    assert resp.status_code == 200 and resp.json()["type"] == "command"


def test_host_name_parsing():
    assert host_name("[::1]:3000") == "::1"
    assert host_name("LocalHost.:80") == "localhost"
    assert host_name("a b") is None and host_name("%") is None
    assert host_name("") is None
    assert host_name("x:notaport") is None
