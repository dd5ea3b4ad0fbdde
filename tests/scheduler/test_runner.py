"""One run of a task with a real assistant and the fake ``claude``: the agent turn on session
``task:<id>``, the history line, the record update, delivery, and no overlap."""
from __future__ import annotations

import datetime as dt
import json

import gevent

from golembot.scheduler import history
from golembot.scheduler.runner import SKIPPED_MESSAGE, TaskRunner
from golembot.scheduler.store import TaskStore

from .conftest import Channel, wait_for


def setup(bot, prompt="FAKE_SAY:tick", target=None, channel=None, list_chats=None):
    d, assistant = bot()
    store = TaskStore(d)
    fields = {"name": "job", "schedule": "every 5m", "prompt": prompt}
    if target:
        fields["target"] = target
    task = store.add(fields, task_id="t1")
    deliver = channel.send if channel else None
    runner = TaskRunner(assistant, store, deliver, list_chats)
    return d, assistant, store, task, runner


def history_lines(d, tid="t1"):
    path = history.history_path(d, tid)
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_success_records_history_and_state_on_the_task_session(bot, fake_path):
    d, assistant, store, task, runner = setup(bot)
    entry = runner.run(task)
    assert entry["status"] == "success" and entry["reply"] == "tick"
    assert entry["trigger"] == "manual" and "error" not in entry
    assert isinstance(entry["durationMs"], int) and entry["costUsd"] == 0.0008
    lines = history_lines(d)
    assert lines == [entry]
    assert history.history_path(d, "t1").endswith("/.golem/tasks/history/t1.jsonl")
    assert list(lines[0])[:7] == ["taskId", "taskName", "startedAt", "completedAt", "status",
                                  "reply", "durationMs"]
    record = store.get("t1")
    assert record["lastRun"] == entry["completedAt"] and record["lastStatus"] == "success"
    calls = [json.loads(line) for line in fake_path.read_text().splitlines()]
    assert calls[-1]["env"]["GOLEM_SESSION_KEY"] == "task:t1"
    # the session persists: the second run resumes the first one's engine session
    runner.run(task)
    calls = [json.loads(line) for line in fake_path.read_text().splitlines()]
    assert "--resume" in calls[-1]["argv"]


def test_failed_run_is_recorded_not_raised(bot):
    d, assistant, store, task, runner = setup(bot, prompt="FAKE_ERROR")
    entry = runner.run(task)
    assert entry["status"] == "error" and entry["reply"] == "" and entry["error"]
    record = store.get("t1")
    assert record["lastStatus"] == "error" and record["lastError"] == entry["error"]
    assert history_lines(d)[-1]["error"] == entry["error"]


def test_delivery_to_a_chat(bot):
    channel = Channel()
    d, assistant, store, task, runner = setup(
        bot, "FAKE_SAY:  report ready  ", {"channel": "slack", "chatId": "C1"}, channel)
    entry = runner.run(task)
    assert entry["status"] == "success"
    assert channel.sent == [("slack", "C1", "report ready")]


def test_broadcast_without_chat_id_goes_to_every_listed_chat(bot):
    channel = Channel(chats=[{"chatId": "a", "chatType": "dm"}, {"chatId": "b"}, "c"])
    d, assistant, store, task, runner = setup(
        bot, "FAKE_SAY:hello all", {"channel": "tg"}, channel, list_chats=channel.list_chats)
    runner.run(task)
    assert channel.sent == [("tg", "a", "hello all"), ("tg", "b", "hello all"),
                            ("tg", "c", "hello all")]


def test_broadcast_uses_the_adapter_of_a_bound_send(bot):
    class Adapter:
        def list_chats(self):
            return [{"chatId": "g1", "chatType": "group"}]

    class Gateway:
        adapters = {"feishu": Adapter()}
        sent = []

        def send(self, channel, chat_id, text):
            self.sent.append((channel, chat_id, text))

    gw = Gateway()
    d, assistant = bot()
    store = TaskStore(d)
    task = store.add({"name": "job", "schedule": "every 5m", "prompt": "FAKE_SAY:x",
                      "target": {"channel": "feishu"}}, task_id="t1")
    TaskRunner(assistant, store, gw.send).run(task)
    assert gw.sent == [("feishu", "g1", "x")]


def test_delivery_failure_is_recorded(bot):
    channel = Channel()
    channel.fail = "chat not found"
    d, assistant, store, task, runner = setup(
        bot, "FAKE_SAY:hi", {"channel": "slack", "chatId": "C9"}, channel)
    entry = runner.run(task)
    assert entry["status"] == "error"
    assert entry["error"] == "Delivery to slack:C9 failed: chat not found"
    assert store.get("t1")["lastError"] == entry["error"]
    assert history_lines(d)[-1]["status"] == "error"


def test_silent_replies_and_missing_channels_are_not_sent(bot):
    channel = Channel()
    d, assistant, store, task, runner = setup(
        bot, "FAKE_SAY:[PASS]", {"channel": "slack", "chatId": "C1"}, channel)
    entry = runner.run(task)
    assert entry["status"] == "success" and channel.sent == []
    assert entry["delivery"] == "not delivered: nothing to send"
    # outside the gateway (no deliver): the run happens, nothing is sent, the note says why
    store.update("t1", {"prompt": "FAKE_SAY:hi"})
    entry = TaskRunner(assistant, store).run(store.get("t1"))
    assert entry["status"] == "success"
    assert entry["delivery"] == "not delivered: no channel is running in this process"


def test_a_tick_finding_the_task_running_is_skipped_and_recorded(bot):
    d, assistant, store, task, runner = setup(bot, prompt="FAKE_SLOW:1 FAKE_SAY:slow")
    first = gevent.spawn(runner.run, task)
    wait_for(lambda: assistant.is_running("task:t1"), message="first run")
    when = dt.datetime(2026, 3, 6, 10, 0, tzinfo=dt.timezone.utc)
    skipped = runner.run(task, scheduled_for=when)
    assert skipped["status"] == "skipped" and skipped["error"] == SKIPPED_MESSAGE
    assert skipped["scheduledFor"] == "2026-03-06T10:00:00.000Z"
    assert first.get(timeout=30)["status"] == "success"
    statuses = [line["status"] for line in history_lines(d)]
    assert statuses == ["skipped", "success"]
    assert store.get("t1")["lastStatus"] == "success"  # a skip is not a run


def test_a_manual_run_waits_for_the_running_one(bot):
    d, assistant, store, task, runner = setup(bot, prompt="FAKE_SLOW:1 FAKE_SAY:slow")
    first = gevent.spawn(runner.run, task)
    wait_for(lambda: assistant.is_running("task:t1"), message="first run")
    second = runner.run(task)
    assert first.get(timeout=30)["status"] == "success"
    assert second["status"] == "success"
    a, b = history_lines(d)
    assert b["startedAt"] >= a["completedAt"]  # one after the other, never both at once
