"""``golembot run`` driven like a user drives it: through pipes and a pseudo-terminal."""
from __future__ import annotations

import json
import re
import subprocess
import time

from golembot.repl import stats_line, tool_summary

from .conftest import cli_argv, cli_env


def test_tool_summary():
    assert tool_summary("Read", '{"file_path":"/a/b.py","limit":3}') == "Read /a/b.py"
    assert tool_summary("Bash", '{"command":"ls -la","description":"x"}') == "Bash ls -la"
    assert tool_summary("Grep", '{"pattern":"TODO"}') == "Grep TODO"
    long = "x" * 100
    out = tool_summary("Bash", json.dumps({"command": long}))
    assert out == "Bash " + "x" * 59 + "…"
    assert tool_summary("Todo", '{"items":[1,2]}') == 'Todo {"items":[1,2]}'
    assert tool_summary("Odd", "not json") == "Odd"
    assert tool_summary("Empty", "{}") == "Empty"


def test_stats_line():
    assert stats_line(8500, 0.0123) == "(8.5s | $0.0123)"
    assert stats_line(None, 0) == "($0.0000)"
    assert stats_line(0, None) == ""
    assert stats_line(1234, None) == "(1.2s)"


def run_repl(bot_dir, stdin: str, timeout=30):
    return subprocess.run(cli_argv("run", "-d", bot_dir), input=stdin, capture_output=True,
                          text=True, env=cli_env(), timeout=timeout)


def prompts(log_path):
    """The prompts the fake engine received, in order."""
    with open(log_path) as f:
        calls = [json.loads(line) for line in f]
    return [c["argv"] for c in calls]


def wait_for_calls(log_path, n, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_path.exists() and len(log_path.read_text().splitlines()) >= n:
            return
        time.sleep(0.02)  # bounded poll on a condition
    raise AssertionError(f"the fake engine was not called {n} times")


def interrupt_until(p, condition, tries=5):
    """Press Ctrl-C until ``condition()`` holds.

    A ^C typed within microseconds of a readline prompt can be held back by Python's readline
    loop until the next key (it only checks signals when its select() is interrupted); a human
    never types that fast, a test does. A held-back ^C is delivered with the next one, never twice.
    """
    for _ in range(tries):
        p.send("\x03")
        try:
            return condition()
        except (AssertionError, subprocess.TimeoutExpired):
            continue
    raise AssertionError("Ctrl-C had no effect:\n" + p.output.decode(errors="replace"))


def test_chat_turn_streams_reply_and_stats(make_bot, fake_path):
    d = make_bot(name="replbot")
    res = run_repl(d, "FAKE_SAY:Hello from the fake\n/quit\n")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "replbot" in out and "/help for commands" in out
    assert "Hello from the fake" in out
    after = out.split("Hello from the fake", 1)[1]
    assert re.fullmatch(r"\(\d+\.\ds \| \$0\.0008\)", after.splitlines()[1])  # duration | cost
    assert out.rstrip().endswith("Bye!")
    assert "Thinking" not in out + res.stderr  # no spinner without a terminal
    assert "\x1b[" not in out


def test_multiline_slash_commands_and_eof(make_bot, fake_path):
    d = make_bot(name="ml")
    stdin = ('"""\nFAKE_SAY:two lines\n  indented second line\n"""\n'
             "/help\n"
             "/foo FAKE_SAY:unknown slash goes to agent\n"
             "\n   \n")
    res = run_repl(d, stdin)  # ends with EOF, no /quit
    assert res.returncode == 0, res.stderr
    assert "> " not in res.stdout and "... " not in res.stdout  # no prompts on a pipe
    assert "\n\nAvailable commands:\n  /help" in res.stdout
    assert "unknown slash goes to agent" in res.stdout
    assert "Bye!" not in res.stdout
    sent = [argv for argv in prompts(fake_path)]
    joined = [" ".join(a) for a in sent]
    assert len(sent) == 2
    assert any("FAKE_SAY:two lines\n  indented second line" in a for argv in sent for a in argv)
    assert any("/foo FAKE_SAY:unknown slash goes to agent" in j for j in joined)


def test_tool_calls_and_errors_are_visible(make_bot, fake_path):
    d = make_bot(name="tools")
    res = run_repl(d, "FAKE_TOOL\nFAKE_ERROR\n/exit\n")
    assert res.returncode == 0
    tool_lines = [l for l in res.stdout.splitlines() if l.startswith("🔧 ")]
    assert tool_lines, res.stdout
    assert all(len(l) <= 3 + 80 for l in tool_lines)
    assert "❌" in res.stderr
    assert res.stdout.rstrip().endswith("Bye!")


def test_status_and_stop_commands_in_repl(make_bot, fake_path):
    d = make_bot(name="cmds", engine="codex")
    res = run_repl(d, "/status\n/stop\n/engine\n/quit\n")
    assert "Name:      cmds" in res.stdout
    assert "Engine:    codex" in res.stdout
    assert "No running task to stop." in res.stdout
    assert "Current engine: codex" in res.stdout


def test_ctrl_c_stops_the_turn_not_the_repl(make_bot, fake_path, pty_process):
    d = make_bot(name="ctrlc")
    env = cli_env()
    env.pop("NO_COLOR")
    p = pty_process(cli_argv("run", "-d", d), env=env)
    pos = p.expect("> ")
    p.send("FAKE_SLOW:60 first\r")
    pos = p.expect("Thinking", start=pos)  # the spinner: the turn is running
    wait_for_calls(fake_path, 1)  # … and the engine process has started
    p.send("\x03")
    pos = p.expect("❌", start=pos)
    pos = p.expect("stopped by user", start=pos)
    pos = p.expect("> ", start=pos)
    assert p.proc.poll() is None  # the REPL survived
    p.send("FAKE_SAY:still\\nhere\r")
    pos = p.expect("still\r\nhere", start=pos)  # the reply, not the echo of the input
    pos = p.expect("> ", start=pos)
    pos = interrupt_until(p, lambda: p.expect("Ctrl-C again", timeout=2, start=pos))
    interrupt_until(p, lambda: p.proc.wait(2))
    assert p.proc.returncode == 0
    with open(fake_path) as f:
        assert len(f.readlines()) == 2


def test_run_without_assistant_fails_clearly(tmp_path, fake_path):
    res = subprocess.run(cli_argv("run", "-d", str(tmp_path)), input="", capture_output=True,
                         text=True, env=cli_env(), timeout=30)
    assert res.returncode == 1
    assert res.stderr.startswith("❌ No golem.yaml in ") and "golembot init" in res.stderr


def test_init_asks_for_engine_and_name_on_a_terminal(tmp_path, pty_process):
    target = tmp_path / "asked"
    p = pty_process(cli_argv("init", "-d", str(target)), env=cli_env())
    pos = p.expect("Select AI engine:")
    pos = p.expect("Engine [1]: ", start=pos)
    p.send("2\r")
    pos = p.expect("Name your assistant [my-assistant]: ", start=pos)
    p.send("\r")
    p.expect("✅ GolemBot assistant created!", start=pos)
    assert p.proc.wait(20) == 0
    text = (target / "golem.yaml").read_text()
    assert "name: my-assistant" in text and "engine: claude-code" in text


def test_missing_engine_binary_is_named(make_bot, fake_path, tmp_path):
    d = make_bot(name="nobin", engine="codex")
    res = subprocess.run(cli_argv("run", "-d", d), input="hello\n", capture_output=True,
                         text=True, env=cli_env(PATH=str(tmp_path)), timeout=30)
    assert res.returncode == 0
    first = res.stderr.splitlines()[0]
    assert first.startswith("⚠ ") and '"codex"' in first and "install it:" in first
    assert "❌" in res.stderr and "codex" in res.stderr.split("❌", 1)[1]
    assert "Traceback" not in res.stderr
