"""Completion decisions and the provider circuit breaker (pure logic)."""
from golembot import events as ev
from golembot.engines.base import _LineSplitter
from golembot.provider import ProviderRouter, resolve_model


def outcome(*events_):
    o = ev.TurnOutcome()
    for e in events_:
        o.feed(e)
    return o


def test_completed_concatenates_chunks_and_separates_tool_segments():
    c = outcome(ev.text("Let me check."), ev.tool_call("Bash", "{}"), ev.text("It is 42."),
                ev.done(sessionId="s1", durationMs=5, costUsd=0.1, numTurns=2)).completion()
    assert c == {"type": "completion", "status": "completed", "finalText": "Let me check.\n\nIt is 42.",
                 "sessionId": "s1", "durationMs": 5, "costUsd": 0.1, "numTurns": 2}


def test_silent_wins_over_abort_and_error():
    assert outcome(ev.text(" [PASS] ")).completion("user")["status"] == "silent"
    c = outcome(ev.text("[SKIP]"), ev.error("x")).completion()
    assert c["status"] == "silent" and c["reason"] == "skip"
    assert outcome(ev.text("[PASS] ok")).completion()["status"] == "completed"


def test_aborted_and_failed_and_empty():
    c = outcome(ev.text("half")).completion("timeout")
    assert c == {"type": "completion", "status": "aborted", "reason": "timeout", "partialText": "half"}
    c = outcome(ev.error("boom")).completion()
    assert c == {"type": "completion", "status": "failed", "message": "boom"}
    c = outcome(ev.done(sessionId="s")).completion()
    assert c["message"] == "Agent completed without a final reply" and c["sessionId"] == "s"


def test_full_text_used_only_when_reply_blank():
    assert outcome(ev.done(fullText="from done")).completion()["finalText"] == "from done"
    assert outcome(ev.text("a"), ev.done(fullText="b")).completion()["finalText"] == "a"


def test_done_omits_absent_fields():
    assert ev.done(sessionId=None, durationMs=0) == {"type": "done", "durationMs": 0}


def test_line_splitter_keeps_multibyte_across_chunks():
    s = _LineSplitter()
    data = '{"t":"你好 😀"}\n'.encode()
    out = []
    for b in data:
        out += s.feed(bytes([b]))
    assert out == ['{"t":"你好 😀"}']
    assert s.feed(b"\xff\xfe tail", final=True) == ["\ufffd\ufffd tail"]


def test_model_priority():
    p = {"models": {"codex": "m-codex"}, "model": "m-prov"}
    assert resolve_model("codex", p, "m-over", "m-cfg") == "m-codex"
    assert resolve_model("claude-code", p, "m-over", "m-cfg") == "m-over"
    assert resolve_model("claude-code", p, None, "m-cfg") == "m-prov"
    assert resolve_model("claude-code", None, None, "m-cfg") == "m-cfg"
    assert resolve_model("claude-code", None, None, None) is None


def test_circuit_breaker_switches_and_recovers():
    now = [0.0]
    r = ProviderRouter(clock=lambda: now[0])
    cfg = {"provider": {"apiKey": "p", "failoverThreshold": 2, "fallbackRecoveryMs": 1000,
                        "fallback": {"apiKey": "f", "fallback": {"apiKey": "nested"}}}}
    block, fb = r.active(cfg)
    assert block["apiKey"] == "p" and not fb
    assert r.record(cfg, False, True) is None
    msg = r.record(cfg, False, True)
    assert msg == ("Primary provider failed 2 times in a row. Switching to fallback provider. "
                   "Will retry primary in 1s.")
    block, fb = r.active(cfg)
    assert fb and block == {"apiKey": "f"}
    assert r.record(cfg, True, True) is None  # failures on the fallback are not counted
    now[0] = 1.5
    block, fb = r.active(cfg)
    assert not fb and r.failures == 0


def test_breaker_success_resets_count_and_no_fallback_is_noop():
    r = ProviderRouter()
    cfg = {"provider": {"failoverThreshold": 2, "fallback": {"apiKey": "f"}}}
    r.record(cfg, False, True)
    r.record(cfg, False, False)
    assert r.record(cfg, False, True) is None
    assert ProviderRouter().record({"provider": {"apiKey": "x"}}, False, True) is None


def test_codex_warning_once_per_setup():
    r = ProviderRouter()
    w = r.codex_warning({"baseUrl": "https://x/v1/chat/completions"})
    assert "OpenAI Responses API support" in w and "/chat/completions" in w
    assert r.codex_warning({"baseUrl": "https://x/v1/chat/completions"}) is None
    assert "Anthropic" in r.codex_warning({"baseUrl": "https://api.anthropic.com"})
    assert r.codex_warning({"apiKey": "only"}) is None


def test_chunks_of_one_segment_are_joined_verbatim():
    c = outcome(ev.text("Hel"), ev.text("lo"), ev.tool_call("x", ""), ev.text("\nDone")).completion()
    assert c["finalText"] == "Hello\nDone"
