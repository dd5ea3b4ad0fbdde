"""The task HTTP API over a real socket: auth, validation, 503 without a scheduler, runs."""
from __future__ import annotations

import pytest
import requests
from flask import Flask
from gevent.pywsgi import WSGIServer

from golembot.scheduler import TaskScheduler
from golembot.scheduler.api import create_blueprint
from golembot.server import auth

from .conftest import Channel, in_thread

TOKEN = "s3cret-token"


class Api:
    def __init__(self, url, token=TOKEN):
        self.url, self.token = url, token

    def __call__(self, method, path, token="default", **kw):
        token = self.token if token == "default" else token
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return in_thread(requests.request, method, self.url + path, headers=headers,
                         timeout=30, **kw)


@pytest.fixture
def serve():
    servers = []

    def _serve(scheduler_getter):
        app = Flask("tasks-test")
        app.register_blueprint(create_blueprint(
            None, scheduler_getter, lambda: auth.check_request(TOKEN)))
        server = WSGIServer(("127.0.0.1", 0), app, log=None)
        server.start()
        servers.append(server)
        return Api(f"http://127.0.0.1:{server.server_port}")

    yield _serve
    for s in servers:
        s.stop(timeout=1)


@pytest.fixture
def api(bot, serve):
    d, assistant = bot()
    channel = Channel()
    scheduler = TaskScheduler(assistant, d, deliver=channel.send)
    client = serve(lambda: scheduler)
    client.scheduler, client.channel = scheduler, channel
    return client


def test_every_route_needs_the_token(api):
    routes = [("GET", "/api/tasks"), ("POST", "/api/tasks"), ("PATCH", "/api/tasks/x"),
              ("DELETE", "/api/tasks/x"), ("POST", "/api/tasks/x/run"),
              ("GET", "/api/tasks/x/history")]
    for method, path in routes:
        assert api(method, path, token=None).status_code == 401, path
        assert api(method, path, token="wrong").status_code == 401, path
    assert api.scheduler.list_tasks() == []


def test_no_scheduler_is_503(serve):
    client = serve(lambda: None)
    resp = client("GET", "/api/tasks")
    assert resp.status_code == 503 and resp.json() == {"error": "Task scheduler not available"}
    assert client("GET", "/api/tasks", token=None).status_code == 401  # auth first


def test_create_list_patch_delete(api):
    assert api("GET", "/api/tasks").json() == []
    resp = api("POST", "/api/tasks", json={
        "name": "digest", "schedule": "0 9 * * 1-5", "prompt": "Summarise",
        "target": {"channel": "slack", "chatId": "C1"}, "timeout": 5})
    assert resp.status_code == 201
    task = resp.json()
    assert len(task["id"]) == 8 and task["createdBy"] == "api" and task["enabled"] is True
    assert task["target"] == {"channel": "slack", "chatId": "C1"} and "timeout" not in task
    assert api("GET", "/api/tasks").json() == [task]
    resp = api("PATCH", f"/api/tasks/{task['id']}", json={"enabled": False, "target": None})
    assert resp.status_code == 200 and resp.json()["ok"] is True
    stored = api.scheduler.get(task["id"])
    assert stored["enabled"] is False and "target" not in stored
    assert api("DELETE", f"/api/tasks/{task['id']}").json() == {"ok": True}
    assert api("GET", "/api/tasks").json() == []


def test_client_id_and_duplicates(api):
    body = {"id": "my-task_1", "name": "a", "schedule": "every 5m", "prompt": "p"}
    assert api("POST", "/api/tasks", json=body).json()["id"] == "my-task_1"
    resp = api("POST", "/api/tasks", json={**body, "name": "b"})
    assert resp.status_code == 409 and resp.json() == {"error": "Task id already exists: my-task_1"}
    resp = api("POST", "/api/tasks", json={**body, "id": ""})
    assert resp.status_code == 409 and "name" in resp.json()["error"]
    resp = api("POST", "/api/tasks", json={**body, "id": "../etc", "name": "c"})
    assert resp.status_code == 400 and "[A-Za-z0-9_-]" in resp.json()["error"]


@pytest.mark.parametrize("body,status,message", [
    (b"{nope", 400, "Invalid JSON body"),
    (b"[1]", 400, "Body must be a JSON object"),
    (b'{"name": "a", "schedule": "every 5m"}', 400,
     "Missing required fields: name, schedule, prompt"),
    (b'{"name": "a", "schedule": "0 9 * * 8", "prompt": "p"}', 400,
     'Task "a": invalid schedule "0 9 * * 8" (field "schedule"): Invalid cron value: 8 '
     '(day-of-week)'),
    (b'{"name": "a", "schedule": "every 5m", "prompt": "p", "enabled": "false"}', 400,
     '"enabled" must be true or false'),
])
def test_create_rejects_bad_input_and_stores_nothing(api, body, status, message):
    resp = api("POST", "/api/tasks", data=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == status and resp.json() == {"error": message}
    assert api.scheduler.list_tasks() == []


def test_patch_errors(api):
    tid = api("POST", "/api/tasks", json={"name": "a", "schedule": "every 5m",
                                          "prompt": "p"}).json()["id"]
    cases = [({"schedule": "every 0m"}, 400, "invalid schedule"),
             ({"enabled": "no"}, 400, '"enabled" must be true or false'),
             ({"timeout": 3}, 400, "Unknown field: timeout"),
             ({"id": "other"}, 400, '"id" cannot be changed'),
             ({"prompt": ""}, 400, '"prompt" must be a non-empty string')]
    for body, status, message in cases:
        resp = api("PATCH", f"/api/tasks/{tid}", json=body)
        assert resp.status_code == status and message in resp.json()["error"], body
    assert api.scheduler.get(tid)["schedule"] == "every 5m"
    resp = api("PATCH", "/api/tasks/nope", json={"enabled": True})
    assert resp.status_code == 404 and resp.json() == {"error": "Task not found: nope"}
    assert api("DELETE", "/api/tasks/nope").json() == {"error": "Task not found: nope"}
    assert api("PATCH", f"/api/tasks/{tid}", data=b"{").json() == {"error": "Invalid JSON body"}


def test_run_now_and_history(api):
    ok = api("POST", "/api/tasks", json={
        "name": "ok", "schedule": "every 5m", "prompt": "FAKE_SAY:all good",
        "target": {"channel": "custom", "chatId": "c"}}).json()["id"]
    bad = api("POST", "/api/tasks", json={"name": "bad", "schedule": "every 5m",
                                          "prompt": "FAKE_ERROR"}).json()["id"]
    resp = api("POST", f"/api/tasks/{ok}/run")
    assert resp.status_code == 200
    assert resp.json()["ok"] is True and resp.json()["reply"] == "all good"
    assert api.channel.sent == [("custom", "c", "all good")]
    resp = api("POST", f"/api/tasks/{bad}/run")
    assert resp.status_code == 200 and resp.json()["ok"] is False and resp.json()["error"]
    resp = api("POST", "/api/tasks/nope/run")
    assert resp.status_code == 404 and resp.json() == {"error": "Task not found: nope"}
    runs = api("GET", f"/api/tasks/{ok}/history").json()
    assert [r["reply"] for r in runs] == ["all good"]
    assert api("GET", f"/api/tasks/{ok}/history?limit=0").status_code == 400
