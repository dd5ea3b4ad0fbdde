"""Tasks inside a real Gateway: a golem.yaml task fires, its reply reaches a custom channel
(one chat, or every chat the adapter lists), a failing channel is recorded, and ``/cron`` works
from an IM message."""
from __future__ import annotations

import os

import pytest
import yaml

import golembot
from golembot.gateway import Gateway

from .conftest import wait_for

ADAPTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recording_adapter.py")


@pytest.fixture(autouse=True)
def second_schedules(monkeypatch):
    monkeypatch.setenv("GOLEM_ALLOW_SECOND_SCHEDULES", "1")


@pytest.fixture
def gateway(tmp_path, fake_path):
    made = []

    def make(tasks):
        d = tmp_path / f"gw{len(made)}"
        d.mkdir()
        conf = {"name": "golem", "engine": "claude-code",
                "channels": {"im": {"_adapter": ADAPTER + ":Recorder", "chats": ["g1", "g2"]}},
                "tasks": tasks}
        (d / "golem.yaml").write_text(yaml.safe_dump(conf))
        gw = Gateway(golembot.create_assistant(str(d)), str(d))
        made.append(gw)
        gw.start()
        return gw, gw.adapters["im"]

    yield make
    for gw in made:
        gw.stop()


def test_yaml_tasks_reach_the_custom_channel(gateway):
    gw, im = gateway([
        {"id": "one", "name": "one", "schedule": "every 1s", "prompt": "FAKE_SAY:to room",
         "target": {"channel": "im", "chatId": "room"}},
        {"id": "all", "name": "all", "schedule": "every 1s", "prompt": "FAKE_SAY:to all",
         "target": {"channel": "im"}}])
    assert gw.scheduler is not None and gw.scheduler.running
    wait_for(lambda: ("room", "to room") in im.sent, timeout=15, message="the chat delivery")
    wait_for(lambda: ("g1", "to all") in im.sent and ("g2", "to all") in im.sent, timeout=15,
             message="the broadcast")
    assert gw.scheduler.get("one")["lastStatus"] == "success"


def test_a_failing_channel_is_recorded(gateway):
    gw, im = gateway([{"id": "one", "name": "one", "schedule": "every 1s",
                       "prompt": "FAKE_SAY:hi", "target": {"channel": "im", "chatId": "room"}},
                      {"id": "gone", "name": "gone", "schedule": "every 1s",
                       "prompt": "FAKE_SAY:hi", "target": {"channel": "nope", "chatId": "x"}}])
    im.fail = "platform down"
    errors = wait_for(lambda: [r for r in gw.scheduler.history("one") if r["status"] == "error"],
                      timeout=15, message="a failed delivery")
    assert errors[0]["error"] == "Delivery to im:room failed: platform down"
    gone = wait_for(lambda: gw.scheduler.history("gone"), timeout=15, message="the other task")
    assert gone[0]["status"] == "error" and 'Channel "nope" not found' in gone[0]["error"]


def test_cron_from_an_im_message(gateway):
    gw, im = gateway([{"id": "daily", "name": "daily", "schedule": "daily 09:00",
                       "prompt": "FAKE_SAY:report", "target": {"channel": "im", "chatId": "r"}}])
    im.deliver("/cron list")
    wait_for(lambda: im.replies, message="the /cron list reply")
    assert im.replies[0][1].startswith("Scheduled tasks (1):\n  daily  ON   daily 09:00")
    im.deliver("/cron run daily")
    wait_for(lambda: len(im.replies) >= 2, timeout=15, message="the /cron run reply")
    assert im.replies[1] == ("dm1", "report")
    assert ("r", "report") in im.sent
    im.deliver("/cron disable daily")
    wait_for(lambda: len(im.replies) >= 3, message="the /cron disable reply")
    assert im.replies[2][1] == "Task daily disabled."
    assert gw.scheduler.next_run_time("daily") is None
