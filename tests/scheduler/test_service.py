"""TaskScheduler started for real: golem.yaml tasks armed, ticks run, store changes reconciled.

Ticks come from ``every 1s`` schedules (accepted only with GOLEM_ALLOW_SECOND_SCHEDULES=1);
the tests wait for history lines with bounded polls, never for fixed sleeps.
"""
from __future__ import annotations

import logging

import pytest

from golembot.scheduler import TaskNotFound, TaskScheduler
from golembot.scheduler.store import TaskStore

from .conftest import Channel, wait_for


@pytest.fixture(autouse=True)
def second_schedules(monkeypatch):
    monkeypatch.setenv("GOLEM_ALLOW_SECOND_SCHEDULES", "1")


@pytest.fixture
def started():
    schedulers = []

    def _start(scheduler):
        schedulers.append(scheduler)
        scheduler.start()
        return scheduler

    yield _start
    for s in schedulers:
        s.stop()


def test_yaml_task_fires_and_delivers(bot, started):
    channel = Channel()
    d, assistant = bot(tasks=[
        {"id": "tick", "name": "ticker", "schedule": "every 1s", "prompt": "FAKE_SAY:tick",
         "target": {"channel": "custom", "chatId": "room"}},
        {"name": "off", "schedule": "every 1s", "prompt": "FAKE_SAY:no", "enabled": False}])
    s = started(TaskScheduler(assistant, d, deliver=channel.send))
    assert [t["name"] for t in s.list_tasks()] == ["ticker", "off"]
    runs = wait_for(lambda: s.history("tick"), timeout=15, message="a scheduled run")
    assert runs[0]["status"] == "success" and runs[0]["trigger"] == "schedule"
    assert runs[0]["scheduledFor"].endswith("Z")
    wait_for(lambda: channel.sent, message="delivery")
    assert channel.sent[0] == ("custom", "room", "tick")
    off = s.resolve("off")
    assert s.next_run_time(off["id"]) is None and s.history(off["id"]) == []
    assert s.get("tick")["lastStatus"] == "success"


def test_invalid_yaml_schedule_is_logged_and_the_others_still_run(bot, started, caplog):
    d, assistant = bot(tasks=[
        {"id": "bad", "name": "broken", "schedule": "0 9 * * 8", "prompt": "x"},
        {"id": "good", "name": "fine", "schedule": "every 1s", "prompt": "FAKE_SAY:ok"}])
    with caplog.at_level(logging.ERROR, logger="golembot.scheduler"):
        s = started(TaskScheduler(assistant, d))
    assert 'Task "broken": invalid schedule "0 9 * * 8"' in caplog.text
    assert s.next_run_time("bad") is None and s.next_run_time("good") is not None
    wait_for(lambda: s.history("good"), timeout=15, message="the good task")


def test_store_changes_from_elsewhere_are_reconciled(bot, started):
    d, assistant = bot(tasks=[{"id": "t0", "name": "base", "schedule": "every 1h",
                               "prompt": "x"}])
    s = started(TaskScheduler(assistant, d, watch_interval_s=0.1))
    other = TaskStore(d)  # another worker writing through the API
    other.add({"name": "new", "schedule": "every 1s", "prompt": "FAKE_SAY:new"}, task_id="n1")
    wait_for(lambda: s.next_run_time("n1"), message="the new task armed")
    wait_for(lambda: s.history("n1"), timeout=15, message="a run of the new task")
    other.update("n1", {"enabled": False})
    wait_for(lambda: s.next_run_time("n1") is None, message="the disabled task disarmed")
    other.remove("t0")
    wait_for(lambda: s.next_run_time("t0") is None, message="the deleted task disarmed")


def test_an_unchanged_schedule_keeps_its_job(bot, started):
    d, assistant = bot(tasks=[{"id": "t0", "name": "base", "schedule": "every 1h",
                               "prompt": "x"}])
    s = started(TaskScheduler(assistant, d))
    before = s.next_run_time("t0")
    s.update("t0", prompt="changed")  # a prompt edit must not restart the interval
    assert s.next_run_time("t0") == before
    s.update("t0", schedule="every 2h")
    assert s.next_run_time("t0") > before


def test_overlapping_ticks_are_skipped_and_recorded(bot, started):
    d, assistant = bot(tasks=[{"id": "slow", "name": "slow", "schedule": "every 1s",
                               "prompt": "FAKE_SLOW:1.6 FAKE_SAY:done"}])
    s = started(TaskScheduler(assistant, d))
    wait_for(lambda: any(r["status"] == "skipped" for r in s.history("slow")), timeout=20,
             message="a skipped tick")
    wait_for(lambda: any(r["status"] == "success" for r in s.history("slow")), timeout=20,
             message="the slow run")
    runs = s.history("slow", limit=50)
    assert all(r["status"] in ("success", "skipped") for r in runs)
    done = [r for r in runs if r["status"] == "success"]
    assert len(done) < len(runs)  # ticks did not queue up behind the slow run


def test_api_style_changes_and_run_now(bot):
    d, assistant = bot()
    s = TaskScheduler(assistant, d)  # not started: store operations still work
    rec = s.add(name="mine", schedule="every 5m", prompt="FAKE_SAY:now")
    assert rec["createdBy"] == "api" and len(rec["id"]) == 8
    assert s.run_now(rec["id"])["reply"] == "now"
    with pytest.raises(TaskNotFound):
        s.run_now("missing")
    s.remove(rec["id"])
    assert s.list_tasks() == []
    assert s.history(rec["id"])[0]["reply"] == "now"  # history outlives the task


def test_reload_applies_new_yaml_tasks_and_timezone(bot, started):
    d, assistant = bot(tasks=[{"id": "a", "name": "a", "schedule": "daily 09:00",
                               "prompt": "x"}])
    s = started(TaskScheduler(assistant, d))
    assert str(s.next_run_time("a").tzinfo) == str(s._tz)
    s.reload({"name": "bot", "engine": "claude-code", "timezone": "Asia/Tokyo",
              "tasks": [{"id": "b", "name": "b", "schedule": "daily 10:00", "prompt": "y",
                         "enabled": True}]})
    assert [t["id"] for t in s.list_tasks()] == ["b"]
    assert s.next_run_time("a") is None
    nxt = s.next_run_time("b")
    assert str(nxt.tzinfo) == "Asia/Tokyo" and (nxt.hour, nxt.minute) == (10, 0)


def test_golem_yaml_edits_are_picked_up(bot, started):
    import yaml
    d, assistant = bot(tasks=[{"id": "a", "name": "a", "schedule": "daily 09:00",
                               "prompt": "x"}])
    s = started(TaskScheduler(assistant, d, watch_interval_s=0.1))
    assert s.next_run_time("a") is not None
    with open(f"{d}/golem.yaml") as fh:
        doc = yaml.safe_load(fh)
    doc["tasks"] = [{"id": "b", "name": "b", "schedule": "every 1s", "prompt": "FAKE_SAY:b"}]
    with open(f"{d}/golem.yaml", "w") as fh:
        yaml.safe_dump(doc, fh)
    wait_for(lambda: s.history("b"), timeout=15, message="the new yaml task to run")
    assert s.next_run_time("a") is None and [t["id"] for t in s.list_tasks()] == ["b"]
    with open(f"{d}/golem.yaml", "w") as fh:
        fh.write("name: [broken\n")  # a broken edit keeps what runs
    n = len(s.history("b", limit=100))
    wait_for(lambda: len(s.history("b", limit=100)) > n, timeout=15, message="more runs")
