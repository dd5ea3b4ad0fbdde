"""The chat loop end to end, with the fake CLIs of tests/fake_bin replaying real output."""
import json
import os
import signal

import gevent
import pytest

import golembot
from golembot import assistant as amod


def run(bot, message, key="default", **kw):
    events = list(bot.chat(message, session_key=key, **kw))
    completions = [e for e in events if e["type"] == "completion"]
    assert len(completions) == 1 and events[-1] is completions[0], events
    return events


def calls(log):
    return [json.loads(line) for line in open(log)] if os.path.exists(log) else []


def wait_until(cond, timeout=5.0):
    with gevent.Timeout(timeout):
        while not cond():
            gevent.sleep(0.01)


def test_text_turn_saves_session_and_history(make_bot, fake_path):
    d = make_bot()
    bot = golembot.create_assistant(d)
    events = run(bot, "FAKE_SAY:hello there")
    assert [e["type"] for e in events][-2:] == ["done", "completion"]
    done = events[-1]
    assert done["status"] == "completed" and done["finalText"] == "hello there" and done["sessionId"]
    sessions = json.load(open(os.path.join(d, ".golem", "sessions.json")))
    assert sessions["default"]["engineSessionId"] == done["sessionId"]
    assert sessions["default"]["engineType"] == "claude-code"
    hist = [json.loads(l) for l in open(os.path.join(d, ".golem", "history", "default.jsonl"))]
    assert [(h["role"], h["content"]) for h in hist] == [("user", "FAKE_SAY:hello there"),
                                                        ("assistant", "hello there")]
    assert hist[0]["ts"].endswith("Z") and len(hist[0]["ts"]) == 24
    assert os.path.isfile(os.path.join(d, "AGENTS.md"))


def test_second_turn_resumes_and_gets_env(make_bot, fake_path):
    bot = golembot.create_assistant(make_bot())
    bot.server_env = {"GOLEM_URL": "http://127.0.0.1:9"}
    first = run(bot, "FAKE_SAY:one", key="u1")[-1]
    run(bot, "FAKE_SAY:two", key="u1")
    argv = calls(fake_path)[-1]["argv"]
    assert "--resume" in argv and argv[argv.index("--resume") + 1] == first["sessionId"]
    env = calls(fake_path)[-1]["env"]
    assert env.get("GOLEM_SESSION_KEY") == "u1" and env.get("GOLEM_URL") == "http://127.0.0.1:9"


def test_failed_resume_retries_once_with_history_hint(make_bot, fake_path):
    d = make_bot()
    bot = golembot.create_assistant(d)
    run(bot, "FAKE_SAY:first")
    bot.sessions.save("default", "00000000-dead-beef-0000-000000000000", "claude-code")
    events = run(bot, "FAKE_SAY:again")
    kinds = [e["type"] for e in events]
    assert kinds.count("completion") == 1 and "error" in kinds
    warnings = [e["message"] for e in events if e["type"] == "warning"]
    assert amod.RESUME_FAILED in warnings and amod.RESTORING in warnings
    assert events[-1]["status"] == "completed" and events[-1]["finalText"] == "again"
    prompt = calls(fake_path)[-1]["argv"]
    assert any("Read " in a and "history" in a for a in prompt)
    hist = [json.loads(l) for l in open(os.path.join(d, ".golem", "history", "default.jsonl"))]
    assert [h["role"] for h in hist] == ["user", "assistant", "user", "assistant"]


def test_context_recovery_after_lost_session(make_bot, fake_path):
    d = make_bot()
    bot = golembot.create_assistant(d)
    run(bot, "FAKE_SAY:remember me", key="k")
    os.unlink(os.path.join(d, ".golem", "sessions.json"))
    events = run(bot, "FAKE_ECHO", key="k")
    assert {"type": "warning", "message": amod.RESTORING} in events
    assert "[System: This is a new session" in events[-1]["finalText"]


@pytest.mark.parametrize("key", ["../../x", "a/b", "k" * 3000, "用户:张三", "..", "a\x00b"])
def test_session_keys_stay_in_their_folder(make_bot, fake_path, key):
    d = make_bot()
    bot = golembot.create_assistant(d)
    assert run(bot, "FAKE_SAY:ok", key=key)[-1]["status"] == "completed"
    hist_dir = os.path.join(d, ".golem", "history")
    files = os.listdir(hist_dir)
    assert len(files) == 1 and len(files[0]) < 150
    assert json.loads(open(os.path.join(hist_dir, files[0])).readline())["sessionKey"] == key
    assert sorted(os.listdir(d)) == sorted(os.listdir(d))  # nothing created outside
    assert not os.path.exists(os.path.join(os.path.dirname(d), "x.jsonl"))
    assert json.load(open(os.path.join(d, ".golem", "sessions.json")))[key]["engineSessionId"]


def test_reset_session_forgets(make_bot, fake_path):
    d = make_bot()
    bot = golembot.create_assistant(d)
    run(bot, "FAKE_SAY:x", key="r")
    bot.reset_session("r")
    assert "r" not in json.load(open(os.path.join(d, ".golem", "sessions.json")))
    assert not bot.history.exists("r")
    events = run(bot, "FAKE_SAY:y", key="r")
    assert not [e for e in events if e["type"] == "warning"]
    assert "--resume" not in calls(fake_path)[-1]["argv"]


def test_global_cap_rejects_with_exact_message(make_bot, fake_path):
    bot = golembot.create_assistant(make_bot(), max_concurrent=1)
    first = bot.chat("FAKE_HANG", session_key="a")
    g = gevent.spawn(list, first)
    wait_until(lambda: bot.is_running("a"))
    events = run(bot, "FAKE_SAY:x", key="b")
    msg = "Server busy: too many concurrent requests (limit: 1). Try again later."
    assert events == [{"type": "error", "message": msg},
                      {"type": "completion", "status": "failed", "message": msg}]
    assert bot.cancel("a") is True and bot.cancel("a") is False
    result = g.get(timeout=10)
    assert result[-1]["status"] == "aborted" and result[-1]["reason"] == "user"
    assert {"type": "error", "message": "Agent invocation stopped by user"} in result


def test_per_session_queue_cap_and_fifo(make_bot, fake_path):
    bot = golembot.create_assistant(make_bot(), max_queue_per_session=1)
    running = gevent.spawn(lambda: list(bot.chat("FAKE_SLOW:0.5 FAKE_SAY:first", session_key="s")))
    wait_until(lambda: bot.is_running("s"))
    queued = gevent.spawn(lambda: list(bot.chat("FAKE_SAY:second", session_key="s")))
    wait_until(lambda: len(bot._locks["s"].waiters) == 1)
    events = run(bot, "FAKE_SAY:third", key="s")
    assert events[-1]["message"] == ("Too many pending requests for this session (limit: 1). "
                                     "Try again later.")
    assert running.get(timeout=10)[-1]["finalText"] == "first"
    assert queued.get(timeout=10)[-1]["finalText"] == "second"
    assert bot._locks == {} and bot._active == 0


def test_timeout_kills_whole_process_group(make_bot, fake_path, tmp_path, monkeypatch):
    pidfile = tmp_path / "grandchild.pid"
    monkeypatch.setenv("GOLEM_FAKE_PIDFILE", str(pidfile))
    bot = golembot.create_assistant(make_bot(), timeout_s=1)
    events = run(bot, "FAKE_GRANDCHILD")
    assert {"type": "error", "message": "Agent invocation timed out"} in events
    assert events[-1]["status"] == "aborted" and events[-1]["reason"] == "timeout"
    pid = int(pidfile.read_text())

    def dead():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie of an already-reaped group counts as dead
            return open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z"
        except OSError:
            return True
    wait_until(dead, timeout=10)


def test_consumer_going_away_kills_the_engine(make_bot, fake_path, tmp_path, monkeypatch):
    """A consumer greenlet that is killed mid-turn (e.g. a dropped caller) ends the whole group."""
    pidfile = tmp_path / "gc.pid"
    monkeypatch.setenv("GOLEM_FAKE_PIDFILE", str(pidfile))
    bot = golembot.create_assistant(make_bot())
    g = gevent.spawn(list, bot.chat("FAKE_GRANDCHILD"))
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip())
    pid = int(pidfile.read_text())
    g.kill()
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z", timeout=10)
    assert not bot.is_running("default") and bot._active == 0 and bot._locks == {}


def test_missing_binary_names_it_and_how_to_install(make_bot, fake_path, monkeypatch):
    d = make_bot(engine="codex")
    monkeypatch.setenv("PATH", "/nonexistent")
    events = run(golembot.create_assistant(d), "hi")
    c = events[-1]
    assert c["status"] == "failed"
    assert 'Codex CLI ("codex") not found in PATH' in c["message"]
    assert "npm install -g @openai/codex" in c["message"]


def test_invalid_config_is_a_failed_completion(make_bot, fake_path):
    d = make_bot()
    open(os.path.join(d, "golem.yaml"), "w").write("name: bot\nengine: [unclosed\n")
    events = run(golembot.create_assistant(d), "hi")
    assert events[-1]["status"] == "failed" and "golem.yaml" in events[-1]["message"]


def test_images_are_saved_confined_listed_and_removed(make_bot, fake_path):
    d = make_bot()
    bot = golembot.create_assistant(d)
    images = [{"mimeType": "image/png", "data": b"\x89PNG fake", "fileName": "../../golem.yaml"},
              {"mimeType": "image/jpeg", "data": b"jpeg"}]
    events = run(bot, "FAKE_ECHO look", images=images)
    text = events[-1]["finalText"]
    assert "[User attached 2 image(s). File paths:" in text
    img_dir = os.path.join(d, ".golem", "images")
    paths = [l for l in text.splitlines() if l.startswith(img_dir)]
    assert len(paths) == 2 and all(os.path.dirname(p) == img_dir for p in paths)
    assert paths[1].endswith(".jpg")
    assert os.listdir(img_dir) == []
    assert open(os.path.join(d, "golem.yaml")).read().startswith("engine") or "name" in open(
        os.path.join(d, "golem.yaml")).read()


def test_concurrent_turns_keep_sessions_file_valid(make_bot, fake_path):
    d = make_bot()
    bot = golembot.create_assistant(d, max_concurrent=20)
    greenlets = [gevent.spawn(lambda k=k: list(bot.chat(f"FAKE_SAY:{k}", session_key=f"k{k}")))
                 for k in range(8)]
    gevent.joinall(greenlets, timeout=30, raise_error=True)
    sessions = json.load(open(os.path.join(d, ".golem", "sessions.json")))
    assert sorted(sessions) == sorted(f"k{k}" for k in range(8))


def test_failover_switches_provider_and_warns(make_bot, fake_path):
    d = make_bot(provider={"baseUrl": "http://127.0.0.1:9/primary", "apiKey": "pk",
                           "failoverThreshold": 1,
                           "fallback": {"baseUrl": "http://127.0.0.1:9/fallback", "apiKey": "fk"}})
    bot = golembot.create_assistant(d)
    events = run(bot, "FAKE_ERROR")
    assert events[-1]["status"] == "failed"
    assert any(e["type"] == "warning" and "Switching to fallback provider" in e["message"]
               for e in events)
    assert calls(fake_path)[-1]["env"]["ANTHROPIC_BASE_URL"].endswith("/primary")
    run(bot, "FAKE_SAY:ok")
    assert calls(fake_path)[-1]["env"]["ANTHROPIC_BASE_URL"].endswith("/fallback")


def test_tool_fixture_relayed_in_order(make_bot, fake_path):
    events = run(golembot.create_assistant(make_bot()), "FAKE_TOOL")
    kinds = [e["type"] for e in events]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("done")
    assert events[-1]["finalText"].endswith("The command printed: hello")


def test_shutdown_ends_running_and_queued_turns_and_refuses_new(make_bot, fake_path):
    bot = golembot.create_assistant(make_bot())
    running = gevent.spawn(list, bot.chat("FAKE_HANG", session_key="s"))
    wait_until(lambda: bot.is_running("s"))
    queued = gevent.spawn(list, bot.chat("FAKE_SAY:never", session_key="s"))
    wait_until(lambda: len(bot._locks["s"].waiters) == 1)
    bot.shutdown()
    assert running.get(timeout=10)[-1]["status"] == "aborted"
    assert queued.get(timeout=10)[-1] == {"type": "completion", "status": "failed",
                                          "message": amod.SHUTTING_DOWN}
    assert run(bot, "FAKE_SAY:late")[-1]["message"] == amod.SHUTTING_DOWN
    assert not any("never" in " ".join(c["argv"]) for c in calls(fake_path))
