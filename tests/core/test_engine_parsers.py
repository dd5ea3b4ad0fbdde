"""Every recorded CLI output line maps to the events it shows — nothing dropped, nothing twice.

The fixture list is read from the directory, so a new recording is covered (and fails until its
expected events are written down here). The helpers mimic the runner: lines are fed in order,
then stderr, then ``finish(exit_code)``, and the stream stops at the first ``done``/``error``.
"""
from __future__ import annotations

import glob
import json
import os

import pytest

from golembot.engines import Invocation, get_engine
from golembot.engines.base import _LineSplitter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.environ.get("GOLEM_FIXTURES") or os.path.join(os.path.dirname(ROOT), "shared",
                                                             "fixtures", "engines")

ENGINES = ("claude-code", "codex", "cursor", "opencode")


def fixture_ids():
    found = []
    for engine in ENGINES:
        for path in sorted(glob.glob(os.path.join(FIXTURES, engine, "*.ndjson"))):
            found.append(f"{engine}/{os.path.basename(path)[:-len('.ndjson')]}")
    return found


def load(fid):
    engine, scenario = fid.split("/")
    base = os.path.join(FIXTURES, engine, scenario)
    with open(base + ".ndjson", "rb") as fh:
        stdout = fh.read()
    stderr = b""
    if os.path.exists(base + ".stderr.txt"):
        with open(base + ".stderr.txt", "rb") as fh:
            stderr = fh.read()
    with open(base + ".meta.json", encoding="utf-8") as fh:
        meta = json.load(fh)
    code = meta.get("exit_code")
    code = 0 if code is None else (1 if code < 0 else code)  # killed by a signal counts as 1
    return engine, stdout, stderr, code


def parse(engine, stdout: bytes, stderr: bytes = b"", code: int = 0, chunk: int | None = None, inv=None):
    """Events as the runner would deliver them (chunk: feed stdout in pieces of that size)."""
    parser = get_engine(engine).new_parser(inv or Invocation(workspace="/tmp", prompt="x"))
    splitter = _LineSplitter()
    events = []
    pieces = [stdout] if chunk is None else [stdout[i:i + chunk] for i in range(0, len(stdout), chunk)]
    for piece in pieces:
        for line in splitter.feed(piece):
            events += parser.feed_line(line)
    for line in splitter.feed(b"", final=True):
        events += parser.feed_line(line)
    if stderr:
        events += parser.feed_stderr(stderr.decode("utf-8", "replace"))
    events += parser.finish(code)
    out = []
    for e in events:
        out.append(e)
        if e["type"] in ("done", "error"):
            break
    return out


def lines(*objs) -> bytes:
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs).encode()


EXPECTED = {
    'claude-code/auth-401': [
        {'type': 'warning', 'message': 'Claude Code API authentication_failed (HTTP 401); retrying 1/2'},
        {'type': 'warning', 'message': 'Claude Code API authentication_failed (HTTP 401); retrying 2/2'},
        {'type': 'error', 'message': 'Invalid API key · Fix external API key'},
    ],
    'claude-code/error-500': [
        {'type': 'warning', 'message': 'Claude Code API server_error (HTTP 500); retrying 1/2'},
        {'type': 'warning', 'message': 'Claude Code API server_error (HTTP 500); retrying 2/2'},
        {'type': 'error', 'message': 'API Error: 500 fake-llm: internal server error. This is a server-side issue, usually temporary — try again in a moment. If it persists, check your inference gateway (127.0.0.1:8765).'},
    ],
    'claude-code/model-env': [
        {'type': 'text', 'content': 'Hello from fake-llm (model=fake-model, user_turns=1).'},
        {'type': 'done', 'sessionId': '20f98747-39a8-4aec-b454-74d77f9eb613', 'durationMs': 128, 'costUsd': 0.001, 'numTurns': 1, 'fullText': 'Hello from fake-llm (model=fake-model, user_turns=1).'},
    ],
    'claude-code/model-flag': [
        {'type': 'text', 'content': 'Hello from fake-llm (model=claude-sonnet-4-6, user_turns=1).'},
        {'type': 'done', 'sessionId': 'd63629ba-699d-4d7e-9410-db9a844e908a', 'durationMs': 122, 'costUsd': 0.0006000000000000001, 'numTurns': 1, 'fullText': 'Hello from fake-llm (model=claude-sonnet-4-6, user_turns=1).'},
    ],
    'claude-code/overloaded-529': [
        {'type': 'warning', 'message': 'Claude Code API overloaded (HTTP 529); retrying 1/2'},
        {'type': 'warning', 'message': 'Claude Code API overloaded (HTTP 529); retrying 2/2'},
        {'type': 'error', 'message': 'API Error: 529 Overloaded. This is a server-side issue, usually temporary — try again in a moment. If it persists, check your inference gateway (127.0.0.1:8765).'},
    ],
    'claude-code/resume-missing': [
        {'type': 'error', 'message': 'No conversation found with session ID: 3f0c6c1e-0000-4000-8000-000000000000'},
    ],
    'claude-code/resume': [
        {'type': 'text', 'content': 'Hello from fake-llm (model=claude-opus-5-5, user_turns=2).'},
        {'type': 'done', 'sessionId': '7a8f94cd-0622-4dba-b924-7c50a19d6652', 'durationMs': 143, 'costUsd': 0.0016, 'numTurns': 1, 'fullText': 'Hello from fake-llm (model=claude-opus-5-5, user_turns=2).'},
    ],
    'claude-code/root-refused': [
        {'type': 'error', 'message': 'Claude Code process exited with code 1; stderr: --dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons'},
    ],
    'claude-code/stream-error': [
        {'type': 'text', 'content': 'Hello from fake-llm (model=claude-opus-5-5, user_turns=1).'},
        {'type': 'done', 'sessionId': '37a9dd8c-6ff8-4288-8b5b-446e1e58be9e', 'durationMs': 191, 'costUsd': 0.0008, 'numTurns': 1, 'fullText': 'Hello from fake-llm (model=claude-opus-5-5, user_turns=1).'},
    ],
    'claude-code/text-partial': [
        {'type': 'text', 'content': 'Hello from fake-llm (model=claude-opus-5-5, user_turns=1).'},
        {'type': 'done', 'sessionId': '3bda75b6-e1d6-474d-adce-890ee0219b40', 'durationMs': 144, 'costUsd': 0.0008, 'numTurns': 1, 'fullText': 'Hello from fake-llm (model=claude-opus-5-5, user_turns=1).'},
    ],
    'claude-code/text': [
        {'type': 'text', 'content': 'Hello from fake-llm (model=claude-opus-5-5, user_turns=1).'},
        {'type': 'done', 'sessionId': '7a8f94cd-0622-4dba-b924-7c50a19d6652', 'durationMs': 115, 'costUsd': 0.0008, 'numTurns': 1, 'fullText': 'Hello from fake-llm (model=claude-opus-5-5, user_turns=1).'},
    ],
    'claude-code/tool-partial': [
        {'type': 'text', 'content': 'I will run a command.'},
        {'type': 'tool_call', 'name': 'Bash', 'args': '{"command":"echo hello"}'},
        {'type': 'tool_result', 'content': 'hello'},
        {'type': 'text', 'content': 'The command printed: hello'},
        {'type': 'done', 'sessionId': 'e1afce02-e677-4f86-b0b6-8569433e2b2e', 'durationMs': 256, 'costUsd': 0.0016, 'numTurns': 2, 'fullText': 'The command printed: hello'},
    ],
    'claude-code/tool': [
        {'type': 'text', 'content': 'I will run a command.'},
        {'type': 'tool_call', 'name': 'Bash', 'args': '{"command":"echo hello"}'},
        {'type': 'tool_result', 'content': 'hello'},
        {'type': 'text', 'content': 'The command printed: hello'},
        {'type': 'done', 'sessionId': '0ed46ec0-45e6-4d2f-a5a8-0a186b7fac40', 'durationMs': 171, 'costUsd': 0.0016, 'numTurns': 2, 'fullText': 'The command printed: hello'},
    ],
    'codex/auth-401': [
        {'type': 'warning', 'message': 'Model metadata for `fake-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues.'},
        {'type': 'error', 'message': "unexpected status 401 Unauthorized: Incorrect API key provided: fake. You can find your API key at the provider's dashboard., url: http://127.0.0.1:8765/v1/responses, request id: req_06f1fba78c4d425aab0e2006"},
    ],
    'codex/builtin-openai-base-url': [
        {'type': 'warning', 'message': 'Falling back from WebSockets to HTTPS transport. unexpected status 404 Not Found: fake-llm: no route for GET /responses, url: ws://127.0.0.1:8765/v1/responses'},
        {'type': 'text', 'content': 'Hello from fake-llm (model=gpt-6.2-sol, user_turns=1).'},
        {'type': 'done', 'sessionId': '01a240b1-9c56-77f2-8562-ebb43e1dec7b'},
    ],
    'codex/error-500': [
        {'type': 'warning', 'message': 'Model metadata for `fake-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues.'},
        {'type': 'error', 'message': 'We’re currently experiencing high demand, which may cause temporary errors.'},
    ],
    'codex/full-auto-rejected': [
        {'type': 'error', 'message': "Codex process exited with code 2: error: unexpected argument '--full-auto' found\ntip: to pass '--full-auto' as a value, use '-- --full-auto'\nUsage: codex exec [OPTIONS] [PROMPT]\ncodex exec [OPTIONS] <COMMAND> [ARGS]\nFor more information, try '--help'."},
    ],
    'codex/model-flag': [
        {'type': 'warning', 'message': 'Model metadata for `fake-model-2` not found. Defaulting to fallback metadata; this can degrade performance and cause issues.'},
        {'type': 'text', 'content': 'Hello from fake-llm (model=fake-model-2, user_turns=1).'},
        {'type': 'done', 'sessionId': '01a240b1-9a4e-7492-a170-5be0dfa55c01'},
    ],
    'codex/openai-base-url-env-ignored': [
        {'type': 'warning', 'message': 'Falling back from WebSockets to HTTPS transport. stream disconnected before completion: failed to lookup address information: Name does not resolve'},
        {'type': 'error', 'message': 'Codex process exited with code 1: 2026-12-04T10:55:28.795117Z ERROR codex_api::endpoint::responses_websocket: failed to connect to Responses WebSocket stage=Unknown\n2026-12-04T10:55:30.418435Z ERROR codex_api::endpoint::responses_websocket: failed to connect to Responses WebSocket stage=Unknown\n2026-12-04T10:55:33.711460Z ERROR codex_api::endpoint::responses_websocket: failed to connect to Responses WebSocket stage=Unknown'},
    ],
    'codex/resume-missing': [
        {'type': 'error', 'message': 'Codex process exited with code 1: Error: thread/resume: thread/resume failed: no rollout found for thread id 3f0c6c1e-0000-4000-8000-000000000000 (code -32600)'},
    ],
    'codex/resume-sandbox-rejected': [
        {'type': 'error', 'message': "Codex process exited with code 2: error: unexpected argument '--sandbox' found\ntip: to pass '--sandbox' as a value, use '-- --sandbox'\nUsage: codex exec resume --json [SESSION_ID] [PROMPT]\nFor more information, try '--help'."},
    ],
    'codex/resume': [
        {'type': 'warning', 'message': 'Model metadata for `fake-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues.'},
        {'type': 'text', 'content': 'Hello from fake-llm (model=fake-model, user_turns=2).'},
        {'type': 'done', 'sessionId': '01a240b0-fcea-7dc0-969a-43e8600fe4ef'},
    ],
    'codex/stream-error': [
        {'type': 'warning', 'message': 'Model metadata for `fake-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues.'},
        {'type': 'error', 'message': 'stream disconnected before completion: fake-llm: stream broke midway'},
    ],
    'codex/text': [
        {'type': 'warning', 'message': 'Model metadata for `fake-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues.'},
        {'type': 'text', 'content': 'Hello from fake-llm (model=fake-model, user_turns=1).'},
        {'type': 'done', 'sessionId': '01a240b0-fcea-7dc0-969a-43e8600fe4ef'},
    ],
    'codex/tool': [
        {'type': 'warning', 'message': 'Model metadata for `fake-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues.'},
        {'type': 'text', 'content': 'I will run a command.'},
        {'type': 'tool_call', 'name': "/bin/bash -lc 'echo hello'", 'args': ''},
        {'type': 'tool_result', 'content': 'hello\n'},
        {'type': 'text', 'content': 'The command printed: hello'},
        {'type': 'done', 'sessionId': '01a240b0-fef8-7d03-8663-d0c069316511'},
    ],
    'cursor/model-error': [
        {'type': 'error', 'message': 'Cursor Agent emitted non-JSON stdout instead of stream-json; stdout: Cannot use this model: claude-4.6-sonnet. Available models: auto, composer-1.5, sonnet-4.6, opus-4.6, opus-4.5'},
    ],
    'cursor/tool-call': [
        {'type': 'tool_call', 'name': 'shellToolCall', 'args': '{"command":"pwd","workingDirectory":"","timeout":30000,"hasInputRedirect":false,"hasOutputRedirect":false,"fileOutputThresholdBytes":"40000","isBackground":false,"skipApproval":false,"timeoutBehavior":"TIMEOUT_BEHAVIOR_BACKGROUND","description":"显示当前工作目录"}'},
        {'type': 'tool_result', 'content': '{"success":{"command":"pwd","workingDirectory":"","exitCode":0,"signal":"","stdout":"/Users/test/project\\n","stderr":"","executionTime":464,"interleavedOutput":"/Users/test/project\\n","localExecutionTimeMs":215},"isBackground":false}'},
        {'type': 'text', 'content': '当前目录是：`/Users/test/project`'},
        {'type': 'done', 'sessionId': '94ea14d1-cd73-4639-9db5-6037eaf6dd3c', 'durationMs': 5373, 'fullText': '当前目录是：`/Users/test/project`'},
    ],
    'opencode/auth-401': [
        {'type': 'error', 'message': "Incorrect API key provided: fake. You can find your API key at the provider's dashboard."},
    ],
    'opencode/error-500': [
        {'type': 'error', 'message': 'fake-llm: The server had an error while processing your request.'},
    ],
    'opencode/model-flag': [
        {'type': 'text', 'content': 'Hello from fake-llm (model=fake-model-2, user_turns=1).'},
        {'type': 'done', 'sessionId': 'ses_dbf4b51a1ffewh5Eh04fQM6pXa', 'numTurns': 1},
    ],
    'opencode/provider-openai-env': [
        {'type': 'text', 'content': 'Hello from fake-llm (model=fake-model, user_turns=1).'},
        {'type': 'done', 'sessionId': 'ses_dbf4b4024ffenKwsC7fbuoKdcB', 'numTurns': 1},
    ],
    'opencode/resume-missing': [
        {'type': 'error', 'message': 'OpenCode process exited with code 1: Error: Session not found'},
    ],
    'opencode/resume': [
        {'type': 'text', 'content': 'Hello from fake-llm (model=fake-model, user_turns=2).'},
        {'type': 'done', 'sessionId': 'ses_dbf4da6e4ffepcAapMQ4Xuw4jg', 'numTurns': 1},
    ],
    'opencode/stream-error': [
        {'type': 'error', 'message': 'fake-llm: stream broke midway'},
    ],
    'opencode/text': [
        {'type': 'text', 'content': 'Hello from fake-llm (model=fake-model, user_turns=1).'},
        {'type': 'done', 'sessionId': 'ses_dbf4da6e4ffepcAapMQ4Xuw4jg', 'numTurns': 1},
    ],
    'opencode/tool': [
        {'type': 'text', 'content': 'I will run a command.'},
        {'type': 'tool_call', 'name': 'bash', 'args': '{"command":"echo hello"}'},
        {'type': 'tool_result', 'content': 'hello\n'},
        {'type': 'text', 'content': 'The command printed: hello'},
        {'type': 'done', 'sessionId': 'ses_dbf4d97f8ffe8u8iYbhiImwNRw', 'numTurns': 2},
    ],
}


@pytest.mark.parametrize("fid", fixture_ids())
def test_fixture_maps_to_exact_events(fid):
    assert fid in EXPECTED, f"new fixture {fid}: write down the events it must produce"
    engine, stdout, stderr, code = load(fid)
    assert parse(engine, stdout, stderr, code) == EXPECTED[fid]


@pytest.mark.parametrize("fid", fixture_ids())
def test_fixture_survives_any_chunking(fid):
    """Byte-sized reads (multi-byte characters split) give the same events."""
    engine, stdout, stderr, code = load(fid)
    assert parse(engine, stdout, stderr, code, chunk=7) == parse(engine, stdout, stderr, code)


def _reply_texts(engine: str, stdout: bytes) -> list:
    """Every reply text the CLI printed (what must reach the user exactly once)."""
    texts = []
    for raw in stdout.decode("utf-8").splitlines():
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if engine in ("claude-code", "cursor") and obj.get("type") == "assistant":
            if obj.get("is_api_error_message"):
                continue
            texts += [b["text"] for b in obj["message"]["content"] if b.get("type") == "text"]
        elif engine == "codex" and obj.get("type") == "item.completed" \
                and obj["item"].get("type") == "agent_message":
            texts.append(obj["item"]["text"])
        elif engine == "opencode" and obj.get("type") == "text":
            texts.append(obj["part"]["text"])
    return texts


@pytest.mark.parametrize("fid", fixture_ids())
def test_fixture_drops_nothing_and_repeats_nothing(fid):
    engine, stdout, stderr, code = load(fid)
    events = parse(engine, stdout, stderr, code)
    got = [e["content"] for e in events if e["type"] == "text"]
    assert got == _reply_texts(engine, stdout)
    terminals = [e for e in events if e["type"] in ("done", "error")]
    assert len(terminals) <= 1 and (not terminals or events[-1] is terminals[0])


def test_every_engine_has_fixtures():
    ids = fixture_ids()
    for engine in ENGINES:
        assert any(i.startswith(engine + "/") for i in ids), engine


# -- defensive parsing -------------------------------------------------------------------------
def test_bom_and_blank_lines_are_handled():
    out = b"\xef\xbb\xbf" + lines({"type": "result", "is_error": False, "session_id": "s", "result": "hi"})
    assert parse("claude-code", b"\n   \n" + out) == [{"type": "done", "sessionId": "s", "fullText": "hi"}]


def test_bool_is_not_a_number_and_wrong_types_are_absent():
    out = lines({"type": "assistant", "message": "not a dict"},
                {"type": "assistant", "message": {"content": {"type": "text"}}},
                {"type": "assistant", "message": {"content": [{"type": "text", "text": 5}, "x", None]}},
                {"type": "user", "message": {"content": [{"type": "tool_result", "content": {"a": 1}}]}},
                {"type": "result", "is_error": False, "session_id": 7, "duration_ms": True,
                 "total_cost_usd": "1", "num_turns": 0, "result": ["x"]})
    assert parse("claude-code", out) == [{"type": "tool_result", "content": ""},
                                        {"type": "done", "numTurns": 0}]


def test_claude_tool_result_list_content_and_tool_use_defaults():
    out = lines({"type": "assistant", "message": {"content": [
                    {"type": "thinking", "thinking": "hm"}, {"type": "tool_use"},
                    {"type": "text", "text": "ok"}]}},
                {"type": "user", "message": {"content": [{"type": "tool_result", "content": [
                    {"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}]}]}})
    assert parse("claude-code", out) == [
        {"type": "tool_call", "name": "unknown", "args": "{}"}, {"type": "text", "content": "ok"},
        {"type": "tool_result", "content": "a\nb"}]


@pytest.mark.parametrize("result, expected", [
    ({"is_error": True, "result": "boom"}, "boom"),
    ({"is_error": True, "result": "", "error": "bad"}, "bad"),
    ({"is_error": True, "errors": ["", "one", 3, "two"]}, "one | two"),
    ({"is_error": True}, "Agent error"),
    ({"is_error": True, "subtype": "success", "result": "API Error: 500"}, "API Error: 500"),
])
def test_claude_error_result_message(result, expected):
    assert parse("claude-code", lines({"type": "result", **result})) == [{"type": "error", "message": expected}]


def test_claude_close_handling():
    assert parse("claude-code", b"", b"", 0) == [
        {"type": "error", "message": "Claude Code exited without emitting stream-json events"}]
    assert parse("claude-code", b"", b"a\n\nb\n", 0) == [
        {"type": "error", "message": "Claude Code exited without emitting stream-json events; stderrLines=2"}]
    assert parse("claude-code", lines({"type": "system", "subtype": "init"}), b"", 0) == [
        {"type": "error", "message": "Claude Code emitted non-JSON stdout instead of stream-json"}]
    assert parse("claude-code", b"Usage:   claude   [options]\n", b"", 0) == [
        {"type": "error", "message": "Claude Code emitted non-JSON stdout instead of stream-json; "
                                     "stdout: Usage: claude [options]"}]
    # events but no result: the stream simply ends
    assert parse("claude-code", lines({"type": "assistant", "message": {"content": [
        {"type": "text", "text": "partial"}]}}), b"", 0) == [{"type": "text", "content": "partial"}]
    stderr = "".join(f"line {i}\n" for i in range(30)).encode()
    msg = parse("claude-code", b"", stderr, 2)[0]["message"]
    assert msg == "Claude Code process exited with code 2; stderr: " + " | ".join(
        f"line {i}" for i in range(10, 30))


def test_claude_api_error_text_is_not_repeated_as_reply():
    engine, stdout, stderr, code = load("claude-code/error-500")
    events = parse(engine, stdout, stderr, code)
    assert not [e for e in events if e["type"] == "text"]
    assert events[-1]["message"].startswith("API Error: 500")


def test_cursor_partial_output_dedup():
    def a(text):
        return {"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}}
    call = {"type": "tool_call", "subtype": "started", "tool_call": {"readToolCall": {"args": {"path": "x"}}}}
    out = lines(a("Hel"), a("lo"), a("Hello"), call, a("Done"), a("Done"), a("ha"), a("ha"))
    assert parse("cursor", out) == [
        {"type": "text", "content": "Hel"}, {"type": "text", "content": "lo"},
        {"type": "tool_call", "name": "readToolCall", "args": '{"path":"x"}'},
        {"type": "text", "content": "Done"},
        {"type": "text", "content": "ha"},  # the documented false positive: a delta equal to the segment
    ]


def test_cursor_tool_calls_and_results():
    out = lines({"type": "tool_call", "tool_call": {"function": {"name": "grep", "arguments": '{"q":1}'}}},
                {"type": "tool_call", "subtype": "completed", "tool_call": {"function": {"result": {"n": 1}}}},
                {"type": "tool_call", "subtype": "completed", "tool_call": {"editToolCall": {"result": None}}},
                {"type": "tool_call", "tool_call": {"other": 1}},
                {"type": "tool_call"})
    assert parse("cursor", out) == [
        {"type": "tool_call", "name": "grep", "args": '{"q":1}'},
        {"type": "tool_result", "content": '{"n":1}'},
        {"type": "tool_result", "content": ""},
        {"type": "tool_call", "name": "unknown", "args": ""},
        {"type": "tool_call", "name": "unknown", "args": ""}]


def test_cursor_close_handling_and_ansi():
    assert parse("cursor", b"") == [
        {"type": "error", "message": "Cursor Agent exited without emitting stream events"}]
    assert parse("cursor", b"", b"fatal: no auth\n", 2) == [
        {"type": "error", "message": "Agent process exited with code 2; stderr: fatal: no auth"}]
    colored = b"\x1b[32m" + lines({"type": "result", "is_error": False, "session_id": "c1",
                                   "duration_ms": 0})
    assert parse("cursor", colored) == [{"type": "done", "sessionId": "c1", "durationMs": 0}]
    assert parse("cursor", lines({"type": "result", "is_error": True, "result": ""}), b"", 1) == [
        {"type": "error", "message": "Agent error"}]


def test_codex_edges():
    out = b"\x1b[2m" + lines(
        {"type": "thread.started", "thread_id": "t1"},
        {"type": "error", "message": "Reconnecting... 1/5 (x)"},
        {"type": "error", "message": "Reconnecting... waiting for network (Connection failed)"},
        {"type": "item.completed", "item": {"id": "i1", "type": "command_execution", "command": "ls",
                                            "output": "a\n"}},
        {"type": "item.completed", "item": {"type": "command_execution", "aggregated_output": ""}},
        {"type": "item.completed", "item": {"type": "agent_message", "content": [
            {"type": "output_text", "text": "A"}, {"type": "refusal", "text": "no"},
            {"type": "output_text", "text": "B"}]}},
        {"type": "item.completed", "item": {"type": "reasoning", "text": "thinking"}},
        {"type": "item.updated", "item": {"type": "agent_message", "text": "draft"}})
    assert parse("codex", out) == [
        {"type": "tool_call", "name": "ls", "args": ""}, {"type": "tool_result", "content": "a\n"},
        {"type": "tool_call", "name": "shell", "args": ""}, {"type": "tool_result", "content": ""},
        {"type": "text", "content": "AB"}, {"type": "done", "sessionId": "t1"}]


def test_codex_close_handling():
    assert parse("codex", b"", b"Reading additional input from stdin...\nboom\n", 1) == [
        {"type": "error", "message": "Codex process exited with code 1: boom"}]
    custom = Invocation(workspace="/tmp", prompt="x", provider={"baseUrl": "http://127.0.0.1:1/v1"})
    assert parse("codex", b"", b"", 1, inv=custom) == [
        {"type": "error", "message": "Codex process exited with code 1 Codex custom providers must "
                                     "support the OpenAI Responses API (/responses)."}]
    assert parse("codex", lines({"type": "error", "message": ""})) == [
        {"type": "error", "message": "Codex error"}]
    assert parse("codex", lines({"type": "turn.failed", "error": "x"})) == [
        {"type": "error", "message": "Codex turn failed"}]
    long_err = ("x" * 300 + "\n") * 5
    msg = parse("codex", b"", long_err.encode(), 1)[0]["message"]
    assert msg == "Codex process exited with code 1: " + "x" * 300


def test_opencode_edges():
    def row(kind, **part):
        return {"type": kind, "sessionID": "ses_1", "part": {"type": kind, **part}}
    out = lines(row("tool_use", tool="read"),
                {"type": "tool_use", "part": {"tool": "grep", "state": {"status": "running", "input": {"q": 1}}}},
                {"type": "tool_use", "part": {"state": {"status": "completed"}}},
                {"type": "tool_use", "part": {"tool": "x", "state": {"status": "completed", "output": {"k": [1]}}}},
                row("step_finish", cost=0.25), row("step_finish", cost=True), row("step_finish", cost=0.5),
                row("text", text=""))
    assert parse("opencode", out, b"", 1) == [
        {"type": "tool_call", "name": "read", "args": "{}"},
        {"type": "tool_call", "name": "grep", "args": '{"q":1}'},
        {"type": "tool_call", "name": "unknown", "args": "{}"}, {"type": "tool_result", "content": '""'},
        {"type": "tool_call", "name": "x", "args": "{}"}, {"type": "tool_result", "content": '{"k":[1]}'},
        {"type": "done", "sessionId": "ses_1", "costUsd": 0.75, "numTurns": 3}]


def test_opencode_stderr_json_error_and_exit_message():
    err = json.dumps({"type": "error", "error": {"name": "ProviderInitError"}}).encode() + b"\n"
    assert parse("opencode", b"", err, 1) == [{"type": "error", "message": "ProviderInitError"}]
    assert parse("opencode", b"", b"\x1b[91mError:\x1b[0m nope\n", 7) == [
        {"type": "error", "message": "OpenCode process exited with code 7: Error: nope"}]
    assert parse("opencode", lines({"type": "error"})) == [{"type": "error", "message": "OpenCode error"}]
    assert parse("opencode", b"", b"", 0) == [{"type": "done"}]
