"""``/cron`` answers (cli.md §4.3, scheduler.md §7), through run_cron and through the shared
slash-command entry point, with and without a running scheduler."""
from __future__ import annotations

import re

from golembot import commands
from golembot.scheduler import TaskScheduler, history
from golembot.scheduler.cron_command import history_row, list_row, run_cron
from golembot.scheduler.store import TaskStore

from .conftest import Channel


def make(bot, **extra):
    d, assistant = bot()
    store = TaskStore(d)
    store.add({"name": "daily-standup", "schedule": "0 9 * * 1-5", "prompt": "FAKE_SAY:Done",
               **extra}, task_id="a1b2c3d4")
    store.add({"name": "cleanup", "schedule": "every 30m", "prompt": "FAKE_ERROR",
               "enabled": False}, task_id="0f9e8d7c")
    return d, assistant, store


def test_row_formats_match_the_spec_exactly():
    task = {"id": "a1b2c3d4", "enabled": True, "schedule": "0 9 * * 1-5",
            "name": "daily-standup", "lastStatus": "success",
            "lastRun": "2026-03-02T09:00:41.532Z"}
    assert list_row(task) == ("  a1b2c3d4  ON   0 9 * * 1-5         daily-standup         "
                              "last: success @ 2026-03-02 09:00:41")
    assert list_row({"id": "0f9e8d7c", "enabled": False, "schedule": "every 30m",
                     "name": "cleanup"}) == (
        "  0f9e8d7c  OFF  every 30m           cleanup               last: never")
    run = {"startedAt": "2026-03-02T09:00:05.012Z", "status": "success", "durationMs": 8500,
           "reply": "Three commits landed yesterday"}
    assert history_row(run) == ("  2026-03-02 09:00:05  success  8.5s      "
                                "Three commits landed yesterday")
    assert history_row({**run, "durationMs": 999, "reply": "x" * 90}).endswith(
        "999ms     " + "x" * 80 + "…")
    failed = {**run, "status": "error", "reply": "", "error": "Task timed out"}
    assert history_row(failed).endswith("error: Task timed out")


def test_list(bot):
    d, assistant, store = make(bot)
    out = run_cron("", assistant)
    assert out["text"].splitlines()[0] == "Scheduled tasks (2):"
    assert out["text"].splitlines()[2].startswith("  0f9e8d7c  OFF  every 30m")
    assert out["tasks"] == [
        {"id": "a1b2c3d4", "name": "daily-standup", "schedule": "0 9 * * 1-5", "enabled": True,
         "lastRun": None, "lastStatus": None},
        {"id": "0f9e8d7c", "name": "cleanup", "schedule": "every 30m", "enabled": False,
         "lastRun": None, "lastStatus": None}]
    assert run_cron("LIST", assistant)["tasks"] == out["tasks"]
    store.remove("a1b2c3d4")
    store.remove("0f9e8d7c")
    assert run_cron("list", assistant) == {"type": "command", "tasks": [],
                                           "text": "No scheduled tasks."}


def test_enable_disable_delete_by_id_or_name(bot):
    d, assistant, store = make(bot)
    assert run_cron("enable cleanup", assistant) == {
        "type": "command", "taskId": "0f9e8d7c", "enabled": True,
        "text": "Task 0f9e8d7c enabled."}
    assert store.get("0f9e8d7c")["enabled"] is True
    assert run_cron("disable a1b2c3d4", assistant)["text"] == "Task a1b2c3d4 disabled."
    assert store.get("a1b2c3d4")["enabled"] is False
    assert run_cron("rm daily-standup", assistant) == {
        "type": "command", "taskId": "a1b2c3d4", "deleted": True,
        "text": "Task a1b2c3d4 deleted."}
    assert run_cron("delete 0f9e8d7c", assistant)["deleted"] is True
    assert store.load() == []


def test_not_found_usage_and_unknown(bot):
    d, assistant, store = make(bot)
    assert run_cron("enable no such task", assistant)["text"] == "Task not found: no such task"
    assert run_cron("del nope", assistant)["error"] == "Task not found: nope"
    assert run_cron("run", assistant)["text"] == "Usage: /cron run <id>"
    assert run_cron("disable", assistant)["text"] == "Usage: /cron disable <id>"
    assert run_cron("del", assistant)["text"] == "Usage: /cron del <id>"
    assert run_cron("history", assistant)["text"] == "Usage: /cron history <id>"
    out = run_cron("frobnicate x", assistant)
    assert out["text"] == ("Unknown subcommand: frobnicate\n"
                           "Usage: /cron [list|run|enable|disable|del|history] [id]")
    assert "error" in out


def test_run_and_history_outside_the_gateway(bot):
    d, assistant, store = make(bot)
    out = run_cron("run daily-standup", assistant)
    assert out == {"type": "command", "taskId": "a1b2c3d4", "reply": "Done", "text": "Done"}
    assert store.get("a1b2c3d4")["lastStatus"] == "success"
    failed = run_cron("run 0f9e8d7c", assistant)  # disabled tasks run on demand too
    assert failed["text"].startswith("Task 0f9e8d7c failed: ")
    assert failed["error"] == failed["text"] and failed["taskId"] == "0f9e8d7c"
    hist = run_cron("history a1b2c3d4", assistant)
    assert hist["text"].splitlines()[0] == "History for task a1b2c3d4 (last 1):"
    assert re.fullmatch(r"  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  success  \d+(ms|\.\ds)\s+Done",
                        hist["text"].splitlines()[1])
    assert hist["history"][0]["reply"] == "Done" and set(hist["history"][0]) == {
        "startedAt", "status", "durationMs", "reply"}
    assert run_cron("history ghost", assistant) == {
        "type": "command", "taskId": "ghost", "history": [],
        "text": "No history for task ghost."}
    listed = run_cron("list", assistant)["text"]
    assert "last: success @ " in listed and "last: error @ " in listed


def test_history_shows_the_ten_newest_first(bot):
    d, assistant, store = make(bot)
    for i in range(12):
        history.append(d, {"taskId": "a1b2c3d4", "startedAt": f"2026-03-02T09:{i:02d}:00.000Z",
                           "status": "success", "reply": f"run {i}", "durationMs": 5})
        history.append(d, {"taskId": "other", "status": "success", "reply": "x"})
    with open(history.history_path(d, "a1b2c3d4"), "a") as fh:
        fh.write("{torn line\n\n")  # skipped, not fatal
    hist = run_cron("history a1b2c3d4", assistant)
    assert [h["reply"] for h in hist["history"]] == [f"run {i}" for i in range(11, 1, -1)]
    assert hist["text"].startswith("History for task a1b2c3d4 (last 10):")


def test_through_the_shared_command_entry_point_with_a_scheduler(bot):
    channel = Channel()
    d, assistant, store = make(bot, target={"channel": "custom", "chatId": "c1"})
    scheduler = TaskScheduler(assistant, d, deliver=channel.send)
    out = commands.execute(assistant, "/cron run a1b2c3d4", "k",
                           context={"scheduler": scheduler})
    assert out == {"type": "command", "taskId": "a1b2c3d4", "reply": "Done", "text": "Done"}
    assert channel.sent == [("custom", "c1", "Done")]
    out = commands.execute(assistant, "/cron", "k", context={})
    assert out["text"].startswith("Scheduled tasks (2):")
