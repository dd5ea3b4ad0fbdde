"""Each engine end to end through ``Engine.invoke``/``run_engine`` with the fake CLIs on PATH.

Covers every fake scenario, resume, the call log (argv, cwd, stdin, env), abort/timeout/close
killing the whole process group (grandchild included), a missing binary and model listing.
"""
from __future__ import annotations

import json
import os
import time

import gevent
import pytest
from gevent.pywsgi import WSGIServer

from golembot.engines import AbortSignal, EngineNotFoundError, Invocation, get_engine
from golembot.engines import base

ENGINES = ["claude-code", "codex", "cursor", "opencode"]
BIG = 10 * 1024 * 1024


def run(engine, ws, prompt, abort=None, **kw):
    return list(get_engine(engine).invoke(Invocation(workspace=str(ws), prompt=prompt, **kw),
                                          abort or AbortSignal()))


def texts(events):
    return "".join(e["content"] for e in events if e["type"] == "text")


def calls(log):
    with open(log, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def wait_until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        gevent.sleep(0.02)
    return cond()


def dead(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie of ours still answers kill(0): reap it
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


@pytest.fixture
def ws(tmp_path):
    d = tmp_path / "ws"
    d.mkdir()
    return d


# -- replies ---------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_say_reply_with_session_and_call_log(engine, ws, fake_path):
    events = run(engine, ws, "FAKE_SAY:Hello\\nworld 你好", extra_env={"GOLEM_SESSION_KEY": "k1"})
    assert texts(events) == "Hello\nworld 你好"
    done = events[-1]
    assert done["type"] == "done" and done["sessionId"]
    [call] = calls(fake_path)
    assert call["cwd"] == str(ws)
    assert call["stdin_is_devnull"] is True and call["stdin_isatty"] is False
    assert call["env"]["GOLEM_SESSION_KEY"] == "k1"
    assert "FAKE_SAY:Hello\\nworld 你好" in " ".join(call["argv"])


@pytest.mark.parametrize("engine", ENGINES)
def test_default_reply_replays_the_text_fixture(engine, ws, fake_path):
    events = run(engine, ws, "Say hello")
    expected = "Hello from fake cursor agent." if engine == "cursor" else \
        "Hello from fake-llm (model=%s, user_turns=1)." % ("claude-opus-5-5" if engine == "claude-code" else "fake-model")
    assert texts(events) == expected
    assert events[-1]["type"] == "done"


@pytest.mark.parametrize("engine", ENGINES)
def test_option_like_prompt_is_echoed_not_parsed(engine, ws, fake_path):
    events = run(engine, ws, "--help FAKE_ECHO")
    assert texts(events) == " --help FAKE_ECHO"


@pytest.mark.parametrize("engine", ENGINES)
def test_tool_scenario(engine, ws, fake_path):
    events = run(engine, ws, "FAKE_TOOL please")
    kinds = [e["type"] for e in events if e["type"] != "warning"]
    assert kinds[-1] == "done"
    assert "tool_call" in kinds and kinds.index("tool_call") < kinds.index("tool_result")


@pytest.mark.parametrize("engine, message", [
    ("claude-code", "API Error: 500 fake-llm: internal server error"),
    ("codex", "We’re currently experiencing high demand"),
    ("cursor", "API Error: 500 fake: internal server error"),
    ("opencode", "fake-llm: The server had an error while processing your request."),
])
def test_error_scenario(engine, message, ws, fake_path):
    events = run(engine, ws, "FAKE_ERROR")
    assert events[-1]["type"] == "error" and events[-1]["message"].startswith(message)
    assert not [e for e in events if e["type"] in ("text", "done")]


@pytest.mark.parametrize("engine, prefix", [
    ("claude-code", "Claude Code process exited with code 3; stderr: fake claude-code: simulated crash"),
    ("codex", "Codex process exited with code 3: fake codex: simulated crash"),
    ("cursor", "Agent process exited with code 3; stderr: fake cursor: simulated crash"),
    ("opencode", "OpenCode process exited with code 3: fake opencode: simulated crash"),
])
def test_crash_gives_clear_error_with_stderr(engine, prefix, ws, fake_path):
    events = run(engine, ws, "FAKE_CRASH")
    assert len(events) == 1 and events[0]["type"] == "error"
    assert events[0]["message"].startswith(prefix)


@pytest.mark.parametrize("engine", ENGINES)
def test_garbage_lines_are_skipped(engine, ws, fake_path):
    events = run(engine, ws, "FAKE_GARBAGE")
    assert texts(events) == "Survived the garbage."
    assert events[-1]["type"] == "done"


@pytest.mark.parametrize("engine", ENGINES)
def test_ten_megabyte_line(engine, ws, fake_path):
    events = run(engine, ws, "FAKE_BIGLINE")
    [result] = [e for e in events if e["type"] == "tool_result"]
    if engine == "cursor":  # Cursor reports the whole result object as JSON
        assert "x" * BIG in result["content"]
    else:
        assert result["content"] == "x" * BIG
    assert texts(events) == "Big line done." and events[-1]["type"] == "done"


@pytest.mark.parametrize("engine", ENGINES)
def test_invalid_utf8_and_split_multibyte(engine, ws, fake_path):
    events = run(engine, ws, "FAKE_BADUTF8")
    assert texts(events) == "bad:\ufffd\ufffd ok: héllo 世界 🎉"
    assert events[-1]["type"] == "done"


@pytest.mark.parametrize("engine", ENGINES)
def test_many_lines_in_order(engine, ws, fake_path):
    events = run(engine, ws, "FAKE_LINES:2000")
    lines = [e["content"] for e in events if e["type"] == "text"]
    assert lines == [f"line {i}\n" for i in range(2000)]
    assert events[-1]["type"] == "done"


# -- sessions --------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_resume_issued_session_and_reject_unknown(engine, ws, fake_path):
    first = run(engine, ws, "FAKE_SAY:one")[-1]["sessionId"]
    second = run(engine, ws, "FAKE_SAY:other")[-1]["sessionId"]
    assert first != second
    again = run(engine, ws, "FAKE_SAY:two", session_id=first)
    assert texts(again) == "two" and again[-1] == {**again[-1], "type": "done", "sessionId": first}
    missing = run(engine, ws, "FAKE_SAY:three", session_id="no-such-session")
    assert missing[-1]["type"] == "error"
    assert any(m in missing[-1]["message"].lower()
               for m in ("resume", "no conversation found", "session not found", "no rollout found"))
    resumed_argv = calls(fake_path)[2]["argv"]
    assert first in resumed_argv


@pytest.mark.parametrize("engine, fixture_id, text", [
    ("claude-code", "7a8f94cd-0622-4dba-b924-7c50a19d6652", "user_turns=2"),
    ("codex", "01a240b0-fcea-7dc0-969a-43e8600fe4ef", "user_turns=2"),
    ("opencode", "ses_dbf4da6e4ffepcAapMQ4Xuw4jg", "user_turns=2"),
])
def test_resume_fixture_session(engine, fixture_id, text, ws, fake_path):
    events = run(engine, ws, "Say hello again", session_id=fixture_id)
    assert text in texts(events) and events[-1]["sessionId"] == fixture_id


# -- abort, timeout, close: the whole group dies ------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_abort_kills_group_including_grandchild(engine, ws, fake_path, tmp_path, monkeypatch):
    pidfile = tmp_path / "grandchild.pid"
    monkeypatch.setenv("GOLEM_FAKE_PIDFILE", str(pidfile))
    abort = AbortSignal()
    gen = get_engine(engine).invoke(Invocation(workspace=str(ws), prompt="FAKE_GRANDCHILD"), abort)
    out = []

    def consume():
        for e in gen:
            out.append(e)

    g = gevent.spawn(consume)
    assert wait_until(pidfile.exists)
    grandchild = int(pidfile.read_text())
    child = calls(fake_path)[0]["pid"]
    abort.fire("user")
    g.join(timeout=5)
    assert out[-1] == {"type": "error", "message": "Agent invocation stopped by user"}
    assert wait_until(lambda: dead(child) and dead(grandchild), timeout=6), "process group survived"


def test_timeout_via_abort_signal(ws, fake_path):
    abort = AbortSignal()
    g = gevent.spawn(run, "claude-code", ws, "FAKE_SLOW:30 FAKE_SAY:late", abort=abort)
    assert wait_until(lambda: fake_path.exists() and calls(fake_path))  # the CLI is running
    t0 = time.monotonic()
    abort.fire("timeout")
    events = g.get(timeout=5)
    assert events == [{"type": "error", "message": "Agent invocation timed out"}]
    assert time.monotonic() - t0 < 2
    pid = calls(fake_path)[0]["pid"]
    assert wait_until(lambda: dead(pid))


def test_slow_answer_arrives(ws, fake_path):
    events = run("codex", ws, "FAKE_SLOW:0.2 FAKE_SAY:eventually")
    assert texts(events) == "eventually"


@pytest.mark.parametrize("engine", ["claude-code", "codex"])
def test_killing_the_consumer_kills_the_group(engine, ws, fake_path, tmp_path, monkeypatch):
    pidfile = tmp_path / "gc.pid"
    monkeypatch.setenv("GOLEM_FAKE_PIDFILE", str(pidfile))
    gen = get_engine(engine).invoke(Invocation(workspace=str(ws), prompt="FAKE_GRANDCHILD"), AbortSignal())
    g = gevent.spawn(list, gen)  # blocked: the first line maps to no event and the CLI hangs
    assert wait_until(pidfile.exists)
    g.kill()
    grandchild = int(pidfile.read_text())
    child = calls(fake_path)[0]["pid"]
    assert wait_until(lambda: dead(child) and dead(grandchild), timeout=6)


@pytest.mark.parametrize("engine", ENGINES)
def test_closing_the_generator_kills_the_group(engine, ws, fake_path):
    gen = get_engine(engine).invoke(Invocation(workspace=str(ws), prompt="FAKE_LINES:1000000"), AbortSignal())
    first = next(gen)
    assert first["type"] in ("text", "warning")
    gen.close()  # the consumer went away mid-stream
    child = calls(fake_path)[0]["pid"]
    assert wait_until(lambda: dead(child), timeout=6)


def test_hang_then_shutdown_all(ws, fake_path):
    gen = get_engine("opencode").invoke(Invocation(workspace=str(ws), prompt="FAKE_HANG"), AbortSignal())
    g = gevent.spawn(list, gen)
    assert wait_until(lambda: os.path.exists(fake_path) and calls(fake_path))
    pid = calls(fake_path)[0]["pid"]
    assert wait_until(lambda: base._live_processes and True)
    assert base.shutdown_all(grace=1) >= 1
    g.join(timeout=5)
    assert g.ready()
    assert wait_until(lambda: dead(pid))


# -- missing binary ----------------------------------------------------------------------------
@pytest.mark.parametrize("engine, binary, install", [
    ("claude-code", "claude", "npm install -g @anthropic-ai/claude-code"),
    ("codex", "codex", "npm install -g @openai/codex"),
    ("cursor", "agent", "curl https://cursor.com/install -fsS | bash"),
    ("opencode", "opencode", "npm install -g opencode-ai"),
])
def test_missing_binary(engine, binary, install, ws, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(EngineNotFoundError) as info:
        run(engine, ws, "hi")
    assert f'("{binary}")' in str(info.value) and install in str(info.value)
    # workspace preparation happened before the lookup (engines.md §1.2)
    assert os.path.isdir(os.path.join(ws, get_engine(engine).skills_folder))


def test_spawn_failure_is_an_error_event(ws, tmp_path):
    bad = tmp_path / "notexec"
    bad.write_text("#!/nonexistent/interpreter\n")
    bad.chmod(0o755)
    events = list(base.run_engine([str(bad)], str(ws), {"PATH": "/usr/bin"},
                                  get_engine("codex").new_parser(Invocation(str(ws), "x")), AbortSignal(), "Codex"))
    assert events[0]["type"] == "error" and events[0]["message"].startswith("Failed to start Codex: ")


# -- models ------------------------------------------------------------------------------------
@pytest.fixture
def models_api():
    seen = []

    def app(environ, start_response):
        seen.append({"path": environ["PATH_INFO"], "query": environ.get("QUERY_STRING", ""),
                     "x-api-key": environ.get("HTTP_X_API_KEY"),
                     "auth": environ.get("HTTP_AUTHORIZATION"),
                     "version": environ.get("HTTP_ANTHROPIC_VERSION")})
        if environ.get("HTTP_X_API_KEY") == "bad" or environ.get("HTTP_AUTHORIZATION") == "Bearer bad":
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"error":"no"}']
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"data": [{"id": "m-b"}, {"id": "m-a"}, {"nope": 1}]}).encode()]

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.stop(timeout=1)


def test_claude_models(models_api, monkeypatch):
    url, seen = models_api
    monkeypatch.setenv("GOLEM_ANTHROPIC_API_URL", url)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    e = get_engine("claude-code")
    assert e.list_models() == ["claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5-20251001"]
    assert e.list_models(api_key="sk-1") == ["m-a", "m-b"]
    assert seen[-1] == {"path": "/v1/models", "query": "limit=100", "x-api-key": "sk-1", "auth": None,
                        "version": "2023-06-01"}
    assert e.list_models(api_key="bad")[0] == "claude-opus-4-6"


def test_codex_models(models_api, monkeypatch):
    url, seen = models_api
    monkeypatch.setenv("GOLEM_OPENAI_API_URL", url)
    monkeypatch.delenv("CODEX_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    e = get_engine("codex")
    assert e.list_models()[0] == "gpt-5.4" and len(e.list_models()) == 5
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert e.list_models() == ["m-a", "m-b"] and seen[-1]["auth"] == "Bearer sk-env"


def test_cli_models_and_timeout(fake_path, monkeypatch, models_api):
    url, _ = models_api
    monkeypatch.setenv("GOLEM_OPENROUTER_API_URL", url)
    assert get_engine("cursor").list_models() == ["auto", "composer-1.5", "sonnet-4.6", "opus-4.6", "gpt-5.4"]
    assert get_engine("opencode").list_models(model="openrouter/x/y") == ["m-a", "m-b"]
    monkeypatch.setenv("GOLEM_FAKE_MODELS", "a/b,c/d")
    assert get_engine("opencode").list_models(model="openai/x") == ["a/b", "c/d"]
    monkeypatch.setenv("GOLEM_FAKE_MODELS_HANG", "1")
    monkeypatch.setattr(base, "CLI_LIST_TIMEOUT_S", 0.3)
    t0 = time.monotonic()
    assert get_engine("cursor").list_models() == []
    assert get_engine("opencode").list_models(model="openai/x") == []
    assert time.monotonic() - t0 < 5
    pids = [c["pid"] for c in calls(fake_path) if c["engine"] in ("cursor", "opencode")][-2:]
    assert wait_until(lambda: all(dead(p) for p in pids))


def test_cursor_models_missing_binary_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(EngineNotFoundError):
        get_engine("cursor").list_models()
    assert get_engine("opencode").list_models() == []


# -- what reaches the CLI ----------------------------------------------------------------------
def test_codex_options_are_accepted_on_new_and_resumed_turns(ws, fake_path):
    """Today's codex rejects --full-auto, and --sandbox/--add-dir/--profile on `exec resume`."""
    opts = {"mode": "safe"}
    first = run("codex", ws, "FAKE_SAY:new", codex=opts)
    assert first[-1]["type"] == "done", first
    sid = first[-1]["sessionId"]
    for codex_opts in ({"mode": "safe"}, {"sandbox": "read-only", "addDirs": ["../x"], "search": True}):
        events = run("codex", ws, "FAKE_SAY:again", session_id=sid, codex=codex_opts,
                     provider={"codexProfile": "p1"})
        assert texts(events) == "again" and events[-1]["sessionId"] == sid, events
    rejected = list(base.run_engine(["codex", "exec", "--json", "--full-auto", "hi"], str(ws), dict(os.environ),
                                    get_engine("codex").new_parser(Invocation(str(ws), "hi")), AbortSignal(), "Codex"))
    assert rejected[-1]["message"].startswith(
        "Codex process exited with code 2: error: unexpected argument '--full-auto' found")


def test_provider_settings_reach_the_cli(ws, fake_path):
    provider = {"baseUrl": "http://127.0.0.1:9/v1", "apiKey": "sk-prov", "model": "prov-model"}
    run("claude-code", ws, "FAKE_SAY:x", provider=provider, extra_env={"GOLEM_URL": "http://127.0.0.1:3000"})
    run("cursor", ws, "FAKE_SAY:x", api_key="sk-cursor")
    run("codex", ws, "FAKE_SAY:x", provider=provider)
    claude, cursor, codex = calls(fake_path)
    assert claude["env"]["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9/v1"
    assert claude["env"]["ANTHROPIC_API_KEY"] == "sk-prov" and claude["env"]["ANTHROPIC_MODEL"] == "prov-model"
    assert claude["env"]["GOLEM_URL"] == "http://127.0.0.1:3000"
    assert "--model" not in claude["argv"]
    assert cursor["env"]["CURSOR_API_KEY"] == "sk-cursor" and "sk-cursor" not in cursor["argv"]
    assert 'model_providers.golem.base_url="http://127.0.0.1:9/v1"' in codex["argv"]
    assert codex["env"]["CODEX_API_KEY"] == "sk-prov"


def test_cursor_plain_text_instead_of_stream_json(ws, fake_path):
    events = run("cursor", ws, "hi", model="FAKE_BAD_MODEL")
    assert events == [{"type": "error", "message": "Cursor Agent emitted non-JSON stdout instead of stream-json; "
                       "stdout: Cannot use this model: claude-4.6-sonnet. Available models: auto, composer-1.5, "
                       "sonnet-4.6, opus-4.6, opus-4.5"}]
