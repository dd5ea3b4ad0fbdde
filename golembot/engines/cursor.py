"""Cursor Agent (``agent -p … --output-format stream-json``): argv, environment and parser.

Unlike the original, the API key travels only in ``CURSOR_API_KEY`` (never ``--api-key`` on the
command line, where ``ps`` and crash reports would show it), ``permissions`` in golem.yaml is
written to ``.cursor/cli.json``, and stderr is drained and quoted when the CLI fails.
"""
from __future__ import annotations

import os
import re
import time

import gevent

from .. import events as ev
from ..files import atomic_write_json, atomic_write_text, read_json
from .base import (Engine, Invocation, StderrTail, StreamParser, as_dict, as_list, as_str,
                   is_number, parse_json_line, preview, run_cli_capture, safe_prompt, strip_ansi)
from .claude_code import mcp_document

MODEL_LINE = re.compile(r"^(\S+)\s+-\s")
PERMISSION_KEYS = (("allowedPaths", "allowedDirectories"), ("deniedPaths", "deniedDirectories"),
                   ("allowedCommands", "allowedCommands"), ("deniedCommands", "deniedCommands"))


def cli_json(permissions: dict) -> dict:
    """``.cursor/cli.json`` for golem.yaml ``permissions`` (engines.md §3.1)."""
    perms = {}
    for ours, theirs in PERMISSION_KEYS:
        values = [v for v in as_list(as_dict(permissions).get(ours)) if isinstance(v, str)]
        if values:
            perms[theirs] = values
    return {"permissions": perms} if perms else {}


def _write_if_changed(path: str, doc: dict) -> None:
    if read_json(path) != doc:
        atomic_write_json(path, doc)


def merge_mcp_file(path: str, mcp: dict) -> None:
    """Our servers into ``.cursor/mcp.json``; servers the user added there are kept."""
    doc = mcp_document(mcp)
    if os.path.exists(path):
        existing = read_json(path)
        if not isinstance(existing, dict):
            try:
                with open(path, encoding="utf-8") as fh:
                    atomic_write_text(f"{path}.invalid-{time.strftime('%Y%m%d-%H%M%S')}", fh.read())
            except OSError:
                pass
        elif isinstance(existing.get("mcpServers"), dict):
            doc = {**existing, "mcpServers": {**existing["mcpServers"], **doc["mcpServers"]}}
    _write_if_changed(path, doc)


def _tool_args(inner: dict):
    """``args`` when the CLI nests them; else the call's own scalar fields (today's CLI puts
    ``command`` etc. directly in the object — the original reported ``{}`` and lost them)."""
    if inner.get("args") is not None:
        return inner["args"]
    return {k: v for k, v in inner.items()
            if k not in ("result", "toolCallId") and isinstance(v, (str, int, float, bool))}


class CursorParser(StreamParser):
    def __init__(self):
        self.raw_lines = 0
        self.parsed = 0
        self.non_json: str | None = None
        self.terminal = False
        self.segment = ""
        self.stderr = StderrTail(max_lines=20, max_chars=500)

    def feed_line(self, line: str) -> list:
        if self.terminal:  # the runner stops at the first done/error; so does the parser
            return []
        obj, text = parse_json_line(line, ansi=True)
        if not text:
            return []
        self.raw_lines += 1
        if obj is None:
            if self.non_json is None:
                self.non_json = text
            return []
        events = self.map(obj)
        if events:
            self.parsed += 1
        events = self.dedup(events)
        if any(ev.is_terminal(e) for e in events):
            self.terminal = True
        return events

    def dedup(self, events: list) -> list:
        """Drop the repeat of a streamed text segment (engines.md §3.5)."""
        out = []
        for e in events:
            if e["type"] == "text":
                if self.segment and e["content"] == self.segment:
                    self.segment = ""
                    continue
                self.segment += e["content"]
            elif e["type"] in ("tool_call", "tool_result"):
                self.segment = ""
            out.append(e)
        return out

    @staticmethod
    def map(obj: dict) -> list:
        kind = obj.get("type")
        if kind == "assistant":
            content = as_dict(obj.get("message")).get("content")
            if not isinstance(content, list):
                return []
            text = "\n".join(as_str(as_dict(b).get("text")) for b in content
                             if as_dict(b).get("type") == "text")
            return [ev.text(text)] if text else []
        if kind == "tool_call":
            call = as_dict(obj.get("tool_call"))
            if obj.get("subtype") == "completed":
                for key, value in call.items():
                    if key.endswith("ToolCall") or key == "function":
                        result = as_dict(value).get("result")
                        return [ev.tool_result(ev.compact_json(result) if result else "")]
                return [ev.tool_result("")]
            if "function" in call:
                fn = as_dict(call.get("function"))
                return [ev.tool_call(as_str(fn.get("name")) or "unknown", as_str(fn.get("arguments")))]
            for key, value in call.items():
                if key.endswith("ToolCall"):
                    return [ev.tool_call(key, ev.compact_json(_tool_args(as_dict(value))))]
            return [ev.tool_call("unknown", "")]
        if kind == "result":
            if obj.get("is_error"):
                return [ev.error(as_str(obj.get("result")) or "Agent error")]
            duration = obj.get("duration_ms")
            return [ev.done(sessionId=as_str(obj.get("session_id")) or None,
                            durationMs=duration if is_number(duration) else None,
                            fullText=as_str(obj.get("result")) or None)]
        return []

    def finish(self, exit_code: int) -> list:
        if self.terminal:
            return []
        if exit_code != 0:
            msg = f"Agent process exited with code {exit_code}"
            detail = self.stderr.text(" | ")[-500:]
            if not detail and self.non_json:
                detail = preview(self.non_json)
            return [ev.error(msg + (f"; stderr: {detail}" if detail else ""))]
        if self.raw_lines == 0:
            return [ev.error("Cursor Agent exited without emitting stream events")]
        if self.parsed == 0:
            msg = "Cursor Agent emitted non-JSON stdout instead of stream-json"
            p = preview(self.non_json or "")
            return [ev.error(msg + (f"; stdout: {p}" if p else ""))]
        return []


class CursorEngine(Engine):
    name = "cursor"
    binary = "agent"
    label = "Cursor Agent"
    local_bin = True
    install_hint = "curl https://cursor.com/install -fsS | bash"
    docs_url = "https://docs.cursor.com/cli"
    skills_folder = os.path.join(".cursor", "skills")

    def not_found_message(self) -> str:
        # The label in this one message is "Cursor", the product name (engines.md §1.5).
        where = os.path.expanduser("~/.local/bin/agent")
        return (f'Cursor CLI ("agent") not found in PATH or at {where}\n'
                f"Install it with: {self.install_hint}\nSee: {self.docs_url}")

    def prepare_workspace(self, inv: Invocation) -> None:
        super().prepare_workspace(inv)
        cursor_dir = os.path.join(inv.workspace, ".cursor")
        if inv.mcp:
            merge_mcp_file(os.path.join(cursor_dir, "mcp.json"), inv.mcp)
        if inv.permissions is not None:
            _write_if_changed(os.path.join(cursor_dir, "cli.json"), cli_json(inv.permissions))

    def build_argv(self, inv: Invocation) -> list:
        argv = ["-p", safe_prompt(inv.prompt), "--force", "--sandbox", "disabled",
                "--output-format", "stream-json", "--stream-partial-output", "--approve-mcps",
                "--workspace", inv.workspace]
        if not inv.has_permissions:
            argv.append("--trust")
        if inv.session_id:
            argv += ["--resume", inv.session_id]
        if inv.model:
            argv += ["--model", inv.model]
        return argv

    def build_env(self, inv: Invocation, base: dict) -> dict:
        env = dict(base)
        env["PATH"] = os.path.expanduser("~/.local/bin") + os.pathsep + env.get("PATH", os.defpath)
        provider = inv.provider or {}
        if inv.provider:
            if provider.get("apiKey"):
                env["CURSOR_API_KEY"] = str(provider["apiKey"])
            if provider.get("baseUrl"):
                env["CURSOR_API_BASE_URL"] = str(provider["baseUrl"])
        if inv.api_key:
            env["CURSOR_API_KEY"] = inv.api_key
        return env

    def new_parser(self, inv: Invocation) -> StreamParser:
        return CursorParser()

    def list_models(self, api_key: str | None = None, model: str | None = None,
                    workspace: str | None = None) -> list:
        binary = self.find_binary()  # a missing CLI raises EngineNotFoundError
        env = dict(os.environ)
        if api_key:
            env["CURSOR_API_KEY"] = api_key
        try:
            _, out = run_cli_capture([binary, "--list-models"], env=env, cwd=workspace)
        except (OSError, gevent.Timeout):
            return []
        models = []
        for line in strip_ansi(out).split("\n"):
            m = MODEL_LINE.match(line)
            if m:
                models.append(m.group(1))
        return models

