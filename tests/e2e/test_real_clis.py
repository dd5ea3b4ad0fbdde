"""golembot's engine layer against the REAL Claude Code, Codex and OpenCode CLIs.

Optional: runs only with ``GOLEM_E2E=1`` and the CLIs installed from npm into
``GOLEM_E2E_BIN_DIR`` (default ``/tmp/golem-real-clis/node_modules/.bin``); see the README, "End-to-end tests against the real agent CLIs".
Every CLI talks only to ``fake_llm.py`` on 127.0.0.1, through golembot's own provider routing
(``provider:`` in golem.yaml), so these tests prove that routing, the argv, the environment
(``IS_SANDBOX`` as root), the parsers and session resume work with the CLIs as they are today —
what the replayed fixtures of ``tests/fake_bin`` cannot.
"""
from __future__ import annotations

import json
import os
import re
import time

import pytest

from .conftest import TURN_TIMEOUT_S, fresh_home

E2E_ENABLED = os.environ.get("GOLEM_E2E") == "1"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not E2E_ENABLED, reason="real-CLI end-to-end tests: set GOLEM_E2E=1 (README: End-to-end tests)"),
]

ENGINES = ["claude-code", "codex", "opencode"]


def run_turn(bot, message: str, session_key: str = "e2e"):
    """All events of one turn, the completion (last), and the wall time."""
    started = time.monotonic()
    events = list(bot.chat(message, session_key=session_key))
    elapsed = time.monotonic() - started
    assert events and events[-1]["type"] == "completion", events
    assert [e["type"] for e in events].count("completion") == 1, events
    assert events[-1]["status"] != "aborted", f"turn hit the {TURN_TIMEOUT_S}s timeout: {events}"
    return events, events[-1], elapsed


def of_type(events, kind: str) -> list:
    return [e for e in events if e["type"] == kind]


def user_turns(reply: str) -> int:
    """The fake's count of user messages it was sent. Codex sends the workspace's AGENTS.md as
    one more user message, so only differences between turns are compared, never the number."""
    found = re.search(r"user_turns=(\d+)", reply)
    assert found, reply
    return int(found.group(1))


def models_asked(requests) -> set:
    return {(r.get("body") or {}).get("model") for r in requests if isinstance(r.get("body"), dict)}


@pytest.mark.parametrize("engine", ENGINES)
def test_text_turn_then_resume(engine, make_real_bot, fake_llm):
    bot = make_real_bot(engine)
    mark = fake_llm.mark()

    events, done, _ = run_turn(bot, "Say hello")
    assert done["status"] == "completed", done
    assert "Hello from fake-llm (" in done["finalText"]
    assert "model=fake-model" in done["finalText"]
    assert done.get("sessionId"), done
    assert of_type(events, "text") and not of_type(events, "error")
    asked = fake_llm.requests(mark)
    assert asked, "the CLI never reached the fake provider"
    assert "fake-model" in models_asked(asked)

    events2, done2, _ = run_turn(bot, "Say hello again")
    assert done2["status"] == "completed", done2
    assert user_turns(done2["finalText"]) == user_turns(done["finalText"]) + 1, \
        "the second turn did not resume the session (the CLI did not re-send its history)"
    assert done2["sessionId"] == done["sessionId"]
    assert not any("Starting fresh" in e.get("message", "") for e in of_type(events2, "warning"))


@pytest.mark.parametrize("engine", ENGINES)
def test_separate_session_keys_do_not_share_history(engine, make_real_bot):
    bot = make_real_bot(engine)
    _, first, _ = run_turn(bot, "Say hello", session_key="alice")
    _, other, _ = run_turn(bot, "Say hello", session_key="bob")
    assert first["status"] == other["status"] == "completed", (first, other)
    assert user_turns(other["finalText"]) == user_turns(first["finalText"])
    assert other["sessionId"] != first["sessionId"]


@pytest.mark.parametrize("engine", ENGINES)
def test_tool_turn(engine, make_real_bot):
    bot = make_real_bot(engine)
    events, done, _ = run_turn(bot, "FAKE_TOOL run echo hello")
    assert done["status"] == "completed", done
    kinds = [e["type"] for e in events]
    calls, results = of_type(events, "tool_call"), of_type(events, "tool_result")
    assert calls and results, kinds
    assert any("echo hello" in c["name"] + c["args"] for c in calls), calls
    assert any("hello" in r["content"] for r in results), results
    assert kinds.index("tool_call") < kinds.index("tool_result")
    assert "The command printed: hello" in done["finalText"]
    # the final text comes after the tool ran
    assert max(i for i, k in enumerate(kinds) if k == "text") > kinds.index("tool_result")


@pytest.mark.parametrize("engine", ENGINES)
def test_auth_error_fails_the_turn_with_a_clear_message(engine, make_real_bot):
    bot = make_real_bot(engine)
    events, done, _ = run_turn(bot, "FAKE_AUTH_401 please")
    assert done["status"] == "failed", done
    message = done["message"]
    assert any(w in message.lower() for w in ("401", "api key", "auth", "unauthorized")), message
    assert "Traceback" not in message
    errors = of_type(events, "error")
    assert len(errors) == 1 and errors[0]["message"] == message, errors
    # Claude prints API errors twice; the synthetic assistant line must not become reply text
    assert not any(message.strip() and message.strip() in t["content"] for t in of_type(events, "text"))


def codex_sandbox(request) -> str:
    """The sandbox_mode Codex told the model in the request's latest permissions message.

    (Its approval policy is always ``never`` under ``codex exec``, whatever
    ``--ask-for-approval`` says, so only the sandbox is checked.)"""
    modes = re.findall(r"`sandbox_mode` is `([a-z-]+)`", json.dumps(request.get("body")))
    assert modes, "no permissions message in the Codex request"
    return modes[-1]


def test_codex_safe_mode_resumes_with_the_same_sandbox(make_real_bot, fake_llm):
    """``codex.mode: safe``: --sandbox on a new turn, ``-c sandbox_mode`` on resume (``exec
    resume`` rejects --sandbox with exit 2; without the override a resumed session silently
    falls back to read-only, verified by hand with 0.171.0)."""
    bot = make_real_bot("codex", codex={"mode": "safe"})
    mark = fake_llm.mark()
    _, first, _ = run_turn(bot, "Say hello")
    assert first["status"] == "completed", first
    assert codex_sandbox(fake_llm.requests(mark)[-1]) == "workspace-write"

    mark = fake_llm.mark()
    _, second, _ = run_turn(bot, "Say hello again")
    assert second["status"] == "completed", second
    assert user_turns(second["finalText"]) == user_turns(first["finalText"]) + 1
    assert second["sessionId"] == first["sessionId"]
    assert codex_sandbox(fake_llm.requests(mark)[-1]) == "workspace-write"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only meaningful as root")
def test_claude_runs_as_root_without_is_sandbox_in_the_environment(make_real_bot):
    """The environment has no IS_SANDBOX (conftest scrubs it): as root golembot must add it,
    or the CLI refuses --dangerously-skip-permissions and exits 1 with nothing on stdout."""
    assert "IS_SANDBOX" not in os.environ
    bot = make_real_bot("claude-code")
    _, done, _ = run_turn(bot, "Say hello")
    assert done["status"] == "completed", done


@pytest.mark.parametrize("engine", ENGINES)
def test_lost_cli_session_starts_fresh(engine, make_real_bot, monkeypatch, tmp_path):
    """The CLI no longer knows the saved session (its HOME was wiped): golembot must recognise
    each CLI's own "unknown session" failure, warn, and answer in a fresh session."""
    bot = make_real_bot(engine)
    _, first, _ = run_turn(bot, "Say hello")
    assert first["status"] == "completed", first
    monkeypatch.setenv("HOME", fresh_home(tmp_path / "wiped-home"))

    events, done, _ = run_turn(bot, "Say hello again")
    assert done["status"] == "completed", done
    warnings = [e["message"] for e in of_type(events, "warning")]
    assert "Session could not be resumed. Starting fresh conversation." in warnings, events
    assert user_turns(done["finalText"]) == user_turns(first["finalText"])
    assert done["sessionId"] != first["sessionId"]
