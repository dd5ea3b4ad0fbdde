"""``/cron`` from the REPL (a real ``golembot run`` process) and over ``POST /chat`` (the
server's app on a real socket), with the task store shared by both."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
from gevent.pywsgi import WSGIServer

from golembot.scheduler import TaskScheduler
from golembot.scheduler.store import TaskStore

from .conftest import Channel, in_thread

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def add_task(d, **extra):
    TaskStore(d).add({"name": "daily", "schedule": "daily 09:00", "prompt": "FAKE_SAY:morning",
                      **extra}, task_id="d1")


def test_cron_in_the_repl(make_bot):
    d = make_bot()
    add_task(d)
    env = {**os.environ, "PYTHONPATH": ROOT, "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "golembot.cli", "run", "-d", d],
                          input="/cron list\n/cron run daily\n/cron disable d1\n/cron history d1\n",
                          capture_output=True, text=True, env=env, timeout=60)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "Scheduled tasks (1):\n  d1  ON   daily 09:00" in out
    assert "\nmorning\n" in out
    assert "Task d1 disabled." in out
    assert "History for task d1 (last 1):" in out
    assert TaskStore(d).get("d1")["enabled"] is False


@pytest.fixture
def served(bot):
    servers = []

    def _serve(scheduler_for):
        from golembot.server import create_app
        d, assistant = bot()
        add_task(d, target={"channel": "custom", "chatId": "c1"})
        scheduler = scheduler_for(assistant, d)
        app = create_app(assistant, token="tok", scheduler=scheduler)
        server = WSGIServer(("127.0.0.1", 0), app, log=None)
        server.start()
        servers.append(server)

        def chat(message):
            return in_thread(requests.post, f"http://127.0.0.1:{server.server_port}/chat",
                             json={"message": message}, timeout=30,
                             headers={"Authorization": "Bearer tok"})
        return d, chat

    yield _serve
    for s in servers:
        s.stop(timeout=1)


def test_cron_over_http_with_a_scheduler(served):
    channel = Channel()
    d, chat = served(lambda a, d: TaskScheduler(a, d, deliver=channel.send))
    resp = chat("/cron list")
    assert resp.status_code == 200
    body = resp.json()
    assert body["type"] == "command" and body["tasks"][0]["id"] == "d1"
    assert body["text"].startswith("Scheduled tasks (1):") and list(body)[-1] == "text"
    body = chat("/cron run d1").json()
    assert body == {"type": "command", "taskId": "d1", "reply": "morning", "text": "morning"}
    assert channel.sent == [("custom", "c1", "morning")]
    body = chat("/cron run nope").json()
    assert body["error"] == "Task not found: nope"


def test_cron_over_http_without_a_scheduler_reads_the_store(served):
    d, chat = served(lambda a, d: None)  # `golembot serve`
    body = chat("/cron list").json()
    assert body["tasks"][0]["name"] == "daily"
    body = chat("/cron run daily").json()  # runs here; no channel to deliver to
    assert body["reply"] == "morning"
