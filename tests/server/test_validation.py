"""Request validation: every field of /chat, /reset, /abort; bodies over the limit; JSON errors.

A 4xx must start nothing: the fake engine's call log stays empty and nothing is written under
``.golem/images`` or ``.golem/files``.
"""
from __future__ import annotations

import base64
import json
import os

import pytest
import requests

from .conftest import in_thread

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()

CHAT_CASES = [
    # body (raw JSON text), expected error
    ("null", 'Missing "message" field'),
    ("[]", 'Missing "message" field'),
    ('"hi"', 'Missing "message" field'),
    ("42", 'Missing "message" field'),
    ("{}", 'Missing "message" field'),
    ('{"message": ""}', 'Missing "message" field'),
    ('{"message": null}', 'Missing "message" field'),
    ('{"message": 123}', 'Missing "message" field'),
    ('{"message": ["hi"]}', 'Missing "message" field'),
    ('{"message": "", "images": []}', 'Missing "message" field'),
    ('{"images": "x"}', 'Missing "message" field'),
    ('{"files": []}', 'Missing "message" field'),
    (json.dumps({"message": 123, "images": [{"data": PNG}]}), '"message" must be a string'),
    (json.dumps({"message": True, "files": [{"data": PNG, "fileName": "a"}]}),
     '"message" must be a string'),
    ('{"message": "hi", "sessionKey": 42}', '"sessionKey" must be a string'),
    ('{"message": "hi", "sessionKey": ["a"]}', '"sessionKey" must be a string'),
    ('{"message": "hi", "sessionKey": false}', '"sessionKey" must be a string'),
    (json.dumps({"message": "hi", "sessionKey": "x" * 1025}),
     '"sessionKey" is too long (max 1024 characters)'),
    ('{"message": "hi", "sessionKey": "a\\u0000b"}',
     '"sessionKey" must not contain control characters'),
    ('{"message": "hi", "images": "x"}', '"images" must be an array'),
    ('{"message": "hi", "images": {"data": "QQ=="}}', '"images" must be an array'),
    ('{"message": "hi", "files": 5}', '"files" must be an array'),
    ('{"message": "hi", "images": [null]}', '"images[0]" must be an object'),
    ('{"images": [{"data": "QQ=="}, 3]}', '"images[1]" must be an object'),
    ('{"message": "hi", "files": [[]]}', '"files[0]" must be an object'),
    ('{"message": "hi", "images": [{"data": 5}]}', '"images[0].data" must be a base64 string'),
    ('{"message": "hi", "images": [{"data": [1, 2]}]}', '"images[0].data" must be a base64 string'),
    ('{"message": "hi", "images": [{"data": "not base64!"}]}',
     '"images[0].data" is not valid base64'),
    ('{"message": "hi", "images": [{"data": "QQ=Q"}]}', '"images[0].data" is not valid base64'),
    ('{"message": "hi", "images": [{"data": "QUJDR"}]}', '"images[0].data" is not valid base64'),
    ('{"message": "hi", "files": [{"data": "%%%", "fileName": "a.txt"}]}',
     '"files[0].data" is not valid base64'),
    ('{"message": "hi", "images": [{"data": "QQ==", "mimeType": 7}]}',
     '"images[0].mimeType" must be a string'),
    ('{"message": "hi", "images": [{"data": "QQ==", "fileName": {}}]}',
     '"images[0].fileName" must be a string'),
    ('{"message": "hi", "files": [{"data": "QQ==", "fileName": 1}]}',
     '"files[0].fileName" must be a string'),
]


@pytest.mark.parametrize("raw,error", CHAT_CASES)
def test_chat_rejects_bad_fields_with_a_named_error(serve, fake_path, raw, error):
    s = serve()
    resp = s.client.post("/chat", data=raw.encode(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json() == {"error": error}
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert not os.path.exists(fake_path), "a rejected request started the engine"
    golem = os.path.join(s.assistant.dir, ".golem")
    for sub in ("images", "files"):
        folder = os.path.join(golem, sub)
        assert not os.path.isdir(folder) or not os.listdir(folder)


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"undefined", b"\xef\xbb\xbf{}",
                                 b'{"message": NaN}', b'{"message": Infinity}',
                                 b'{"message": "\xff"}'])
def test_invalid_json_is_400(serve, fake_path, raw):
    s = serve()
    resp = s.client.post("/chat", data=raw, headers={"Content-Type": "application/json"})
    assert (resp.status_code, resp.json()) == (400, {"error": "Invalid JSON body"})
    assert not os.path.exists(fake_path)


@pytest.mark.parametrize("path", ["/reset", "/abort"])
@pytest.mark.parametrize("raw,status,error", [
    (b"null", 400, "Body must be a JSON object"),
    (b"[]", 400, "Body must be a JSON object"),
    (b'"default"', 400, "Body must be a JSON object"),
    (b"{", 400, "Invalid JSON body"),
    (b'{"sessionKey": 0}', 400, '"sessionKey" must be a string'),
    (b'{"sessionKey": {"a": 1}}', 400, '"sessionKey" must be a string'),
])
def test_reset_and_abort_validate_their_body(serve, path, raw, status, error):
    s = serve()
    resp = s.client.post(path, data=raw, headers={"Content-Type": "application/json"})
    assert (resp.status_code, resp.json()) == (status, {"error": error})


@pytest.mark.parametrize("path,expected", [("/reset", {"ok": True}),
                                           ("/abort", {"ok": True, "aborted": False})])
def test_reset_and_abort_accept_empty_and_long_keys(serve, path, expected):
    s = serve()
    for body in (b"", b"{}", b'{"sessionKey": null}', b'{"sessionKey": ""}',
                 json.dumps({"sessionKey": "k" * 300}).encode()):
        resp = s.client.post(path, data=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 200, body
        assert resp.text == json.dumps(expected, separators=(",", ":"))  # documented key order


def test_body_over_the_limit_is_413_json(serve, fake_path):
    s = serve(max_body_bytes=1000)
    big = json.dumps({"message": "x" * 2000})
    resp = s.client.post("/chat", data=big, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert resp.json() == {"error": "Request body too large (limit: 1000 bytes)"}
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    # a chunked body (no Content-Length) is cut at the limit too
    chunks = (b"x" * 100 for _ in range(30))
    resp = s.client.post("/reset", data=chunks, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.json()["error"].startswith("Request body too large")
    # auth comes first: 401 beats 413
    resp = s.client.post("/chat", data=big, auth=False,
                         headers={"Content-Type": "application/json"})
    assert resp.status_code == 401
    assert not os.path.exists(fake_path)


def test_default_limit_is_20_mib(serve):
    s = serve()
    assert s.state.max_body_bytes == 20 * 1024 * 1024

    def declared_too_big():
        # Only the headers: the server must refuse from Content-Length without reading the body.
        import socket
        with socket.create_connection(("127.0.0.1", s.server.server_port), timeout=10) as sock:
            sock.sendall(b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tok\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 20971521\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data
    head = in_thread(declared_too_big)
    assert head.startswith(b"HTTP/1.1 413")


def test_unknown_routes_and_methods_are_404_json(serve):
    s = serve()
    for method, path in [("GET", "/chat"), ("PUT", "/reset"), ("POST", "/health"),
                         ("GET", "/nope"), ("POST", "/chat/x"), ("DELETE", "/abort")]:
        resp = s.client.request(method, path)
        assert (resp.status_code, resp.json()) == (404, {"error": "Not found"}), (method, path)
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_no_redirects_and_exact_paths(serve):
    s = serve()
    for path in ("/chat/", "/CHAT", "/reset/"):
        resp = s.client.request("POST", path, allow_redirects=False, json={"message": "/help"})
        assert (resp.status_code, resp.json()) == (404, {"error": "Not found"}), path
    resp = s.client.get("/health/", allow_redirects=False)
    assert resp.status_code == 404


def test_malformed_host_header_never_crashes(serve):
    s = serve()

    def raw_request(host: bytes):
        import socket
        with socket.create_connection(("127.0.0.1", s.server.server_port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: " + host
                         + b"\r\nConnection: close\r\n\r\n")
            out = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    return out
                out += chunk
    for host in (b"a b", b"[::1", b"%"):
        status = in_thread(raw_request, host).split(b" ", 2)[1]
        assert status in (b"200", b"400")
    assert in_thread(requests.get, s.url + "/health").status_code == 200


def test_unexpected_failure_is_a_500_json_and_the_server_stays_up(serve, make_bot):
    d = make_bot()
    golem = os.path.join(d, ".golem")
    os.makedirs(golem, exist_ok=True)
    with open(os.path.join(golem, "history"), "w") as f:  # a file where a folder belongs
        f.write("not a folder")
    s = serve(dir=d)
    resp = s.client.post("/reset", json={"sessionKey": "x"})
    assert resp.status_code == 500
    assert resp.headers["Content-Type"] == "application/json"
    assert set(resp.json()) == {"error"} and resp.json()["error"]
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert s.client.get("/health").status_code == 200
