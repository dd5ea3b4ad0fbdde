"""Slash commands against a real assistant directory (fake engine CLIs on PATH)."""
from __future__ import annotations

import json
import os

import gevent
import pytest
import yaml

from golembot import commands, create_assistant


@pytest.mark.parametrize("message, expected", [
    ("/help", True), ("  /STATUS  ", True), ("/engine codex", True), ("/model list", True),
    ("/skill", True), ("/cron list", True), ("/reset", True), ("/stop", True),
    ("/cron\nlist", True),
    ("/path/to/file is broken", False), ("/helpme", False), ("/foo", False), ("hello /help", False),
    ("", False), ("/", False), (None, False), (42, False),
])
def test_is_command(message, expected):
    assert commands.is_command(message) is expected


def _bot(make_bot, **fields):
    d = make_bot(**fields)
    skill = os.path.join(d, "skills", "notes")
    os.makedirs(skill)
    with open(os.path.join(skill, "SKILL.md"), "w") as f:
        f.write("---\nname: notes\ndescription: Keeps notes\n---\n# Notes\n")
    return d, create_assistant(d)


def test_help_shape_and_text(make_bot):
    d, bot = _bot(make_bot)
    res = commands.execute(bot, "/help")
    assert list(res) == ["type", "commands", "text"]
    assert res["type"] == "command"
    assert list(res["commands"]) == ["/help", "/status", "/engine", "/model", "/skill", "/reset",
                                     "/stop", "/cron"]
    lines = res["text"].splitlines()
    assert lines[0] == "Available commands:"
    assert lines[1] == "  /help        Show available commands"
    assert lines[3] == "  /engine      Show or switch engine — /engine [name]"
    assert len(lines) == 9


def test_status(make_bot):
    d, bot = _bot(make_bot, name="bot", engine="cursor",
                  channels={"slack": {"botToken": "t", "appToken": "a"}})
    res = commands.execute(bot, "/status", "user:1")
    assert res["name"] == "bot" and res["engine"] == "cursor" and res["model"] is None
    assert res["skills"] == [{"name": "notes", "description": "Keeps notes"}]
    assert res["channels"] == ["slack"]
    assert res["session"] == "user:1" and res["running"] is False
    assert res["text"].splitlines()[:4] == ["Name:      bot", "Engine:    cursor",
                                            "Skills:    notes", "Channels:  slack"]
    assert list(res)[-1] == "text"


def test_engine_show_switch_and_unknown(make_bot):
    d, bot = _bot(make_bot, engine="claude-code", model="claude-opus-4-6")
    res = commands.execute(bot, "/engine")
    assert res["current"] == "claude-code"
    assert res["available"] == ["cursor", "claude-code", "opencode", "codex"]
    assert res["text"].startswith("Current engine: claude-code\nAvailable: cursor, claude-code")

    res = commands.execute(bot, "/engine FOO")
    assert res == {"type": "command", "error": "unknown_engine",
                   "available": ["cursor", "claude-code", "opencode", "codex"],
                   "text": "Unknown engine: foo\nAvailable: cursor, claude-code, opencode, codex"}

    res = commands.execute(bot, "/engine Codex")
    assert res["engine"] == "codex" and res["modelReset"] is True
    assert res["text"] == ("Engine switched to: codex (takes effect on next message)\n"
                           "Model reset to engine default (formats differ between engines)")
    saved = yaml.safe_load(open(os.path.join(d, "golem.yaml")))
    assert saved["engine"] == "codex" and "model" not in saved
    assert bot.get_status()["engine"] == "codex"

    res = commands.execute(bot, "/engine cursor")
    assert res == {"type": "command", "engine": "cursor", "modelReset": False,
                   "text": "Engine switched to: cursor (takes effect on next message)"}


def test_model_show_set_and_list(make_bot):
    d, bot = _bot(make_bot, engine="claude-code")
    res = commands.execute(bot, "/model")
    assert res["current"] is None and res["engine"] == "claude-code"
    assert res["text"].startswith("No model override (using claude-code default)\n")

    res = commands.execute(bot, "/model claude sonnet   x")
    assert res["model"] == "claude sonnet x"
    assert res["text"] == "Model switched to: claude sonnet x (takes effect on next message)"
    assert yaml.safe_load(open(os.path.join(d, "golem.yaml")))["model"] == "claude sonnet x"
    res = commands.execute(bot, "/model")
    assert res["current"] == "claude sonnet x"
    assert res["text"].startswith("Current model: claude sonnet x (engine: claude-code)\n")

    res = commands.execute(bot, "/model LIST")
    assert res["engine"] == "claude-code"
    assert isinstance(res["models"], list) and res["models"]
    n = len(res["models"])
    assert res["text"].splitlines()[0] == f"Available models for claude-code ({n}):"
    assert res["text"].splitlines()[1] == "  " + res["models"][0]
    assert list(res) == ["type", "engine", "models", "text"]
    json.dumps(res)


def test_skill_list(make_bot):
    d, bot = _bot(make_bot)
    res = commands.execute(bot, "/skill")
    assert res["skills"] == [{"name": "notes", "description": "Keeps notes"}]
    assert res["text"] == "Installed skills (1):\n  notes                Keeps notes"
    empty = create_assistant(make_bot())
    assert commands.execute(empty, "/skill") == {"type": "command", "skills": [],
                                                 "text": "No skills installed."}


def test_reset_clears_session_and_history(make_bot):
    d, bot = _bot(make_bot)
    events = list(bot.chat("FAKE_SAY:hi", "k1"))
    assert events[-1]["status"] == "completed"
    history = os.path.join(d, ".golem", "history", "k1.jsonl")
    assert os.path.exists(history)
    assert "k1" in json.load(open(os.path.join(d, ".golem", "sessions.json")))
    res = commands.execute(bot, "/reset", "k1")
    assert res == {"type": "command", "ok": True, "reset": True,
                   "text": "Session and history reset."}
    assert not os.path.exists(history)
    assert "k1" not in json.load(open(os.path.join(d, ".golem", "sessions.json")))


def test_stop_running_and_idle(make_bot):
    d, bot = _bot(make_bot)
    assert commands.execute(bot, "/stop") == {"type": "command", "ok": True, "stopped": False,
                                              "text": "No running task to stop."}
    seen = []
    turn = gevent.spawn(lambda: seen.extend(bot.chat("FAKE_SLOW:30", "s1")))
    with gevent.Timeout(10):
        while not bot.is_running("s1"):
            gevent.sleep(0.01)
    assert commands.execute(bot, "/status", "s1")["running"] is True
    res = commands.execute(bot, "/stop", "s1")
    assert res["stopped"] is True and res["text"] == "Stopped the current task."
    turn.join(timeout=10)
    assert seen[-1]["type"] == "completion" and seen[-1]["status"] == "aborted"
    assert seen[-1]["reason"] == "user"


def test_failures_are_results_not_exceptions(make_bot, tmp_path):
    bot = create_assistant(str(tmp_path))  # no golem.yaml at all
    for message in ("/status", "/engine", "/model", "/model list", "/skill"):
        res = commands.execute(bot, message)
        assert res["type"] == "command" and res["error"], message
        assert isinstance(res["text"], str) and res["text"]
        assert list(res)[-1] == "text"
    res = commands.execute(bot, "not a command")
    assert res["error"] == "not_a_command"


def test_cron_works_without_a_scheduler(make_bot):
    d, bot = _bot(make_bot)
    res = commands.execute(bot, "/cron list", context={"scheduler": None})
    assert res == {"type": "command", "tasks": [], "text": "No scheduled tasks."}
    assert commands.execute(bot, "/cron") == res


def test_cron_subcommands_pass_through(make_bot):
    d, bot = _bot(make_bot)
    res = commands.execute(bot, "/CRON bogus x")
    assert res["error"] and res["text"].startswith("Unknown subcommand: bogus\nUsage: /cron")
    res = commands.execute(bot, "/cron history my task")
    assert "error" not in res and res["history"] == []
    assert res["text"] == "No history for task my task."
