"""Claude Code (``claude``): argv, environment, workspace files and the stream-json parser.

Line mapping follows engines.md §4.4 with what today's CLI (2.1.3xx) does differently, per the
fixtures README: API errors arrive twice (a synthetic ``assistant`` line marked
``is_api_error_message`` and the failing ``result``), so the synthetic line is skipped; success is
decided on ``is_error`` alone (``subtype`` says ``success`` for API errors); each
``system/api_retry`` line becomes a ``warning`` so a user waiting through the CLI's retries sees why.
"""
from __future__ import annotations

import os
import sys
import uuid

from .. import events as ev
from ..files import atomic_write_json, read_json
from .base import (Engine, Invocation, StderrTail, StreamParser, as_dict, as_list, as_str,
                   http_get_json, inject_skills, is_number, model_ids, parse_json_line, preview,
                   safe_prompt)

MODEL_VARS = ("ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
              "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL")
STATIC_MODELS = ["claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5-20251001"]
DEFAULT_API_URL = "https://api.anthropic.com"
MCP_FILE = os.path.join(".claude", "mcp.json")


def mcp_document(mcp: dict) -> dict:
    """``{"mcpServers": {...}}`` with absent fields omitted (shared with Cursor)."""
    servers = {}
    for name, spec in mcp.items():
        spec = as_dict(spec)
        entry = {k: spec[k] for k in ("command", "args", "env") if spec.get(k) is not None}
        servers[str(name)] = entry
    return {"mcpServers": servers}


def link_claude_md(workspace: str) -> None:
    """Point ``CLAUDE.md`` at ``AGENTS.md`` — without destroying a hand-written file.

    The original deleted whatever was at ``CLAUDE.md`` on every turn. Here a missing entry or a
    symlink is (re)pointed atomically; a real file or directory is the user's and stays as it is
    (add ``@AGENTS.md`` to it to keep GolemBot's instructions in view).
    """
    path = os.path.join(workspace, "CLAUDE.md")
    if os.path.lexists(path) and not os.path.islink(path):
        return
    if os.path.islink(path) and os.readlink(path) == "AGENTS.md":
        return
    tmp = os.path.join(workspace, f".CLAUDE.md.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    os.symlink("AGENTS.md", tmp)
    try:
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_skip_notice_shown = False


def skip_permissions_notice() -> None:
    """Once per process, on our stderr (never an event): how to turn the bypass off."""
    global _skip_notice_shown
    if _skip_notice_shown:
        return
    _skip_notice_shown = True
    text = ("[golembot] Claude Code runs with --dangerously-skip-permissions; "
            "set `skipPermissions: false` in golem.yaml to keep its permission checks.")
    if getattr(sys.stderr, "isatty", lambda: False)():
        text = f"\x1b[33m{text}\x1b[0m"
    print(text, file=sys.stderr)


class ClaudeParser(StreamParser):
    """One invocation's stdout/stderr → events, plus the close rules of engines.md §4.6."""

    def __init__(self):
        self.raw_lines = 0
        self.parsed = 0
        self.non_json: str | None = None
        self.terminal = False
        self.stderr = StderrTail(max_lines=20)

    def feed_line(self, line: str) -> list:
        if self.terminal:  # the runner stops at the first done/error; so does the parser
            return []
        obj, text = parse_json_line(line)
        if not text:
            return []
        self.raw_lines += 1
        if obj is None:
            if self.non_json is None:
                self.non_json = text
            return []
        events = self.map(obj)
        if any(e["type"] != "warning" for e in events):
            self.parsed += 1
        if any(ev.is_terminal(e) for e in events):
            self.terminal = True
        return events

    @staticmethod
    def map(obj: dict) -> list:
        kind = obj.get("type")
        if kind == "assistant":
            if obj.get("is_api_error_message") is True:
                return []  # the same words come again in the failing `result`
            out = []
            for block in as_list(as_dict(obj.get("message")).get("content")):
                block = as_dict(block)
                if block.get("type") == "text" and as_str(block.get("text")):
                    out.append(ev.text(block["text"]))
                elif block.get("type") == "tool_use":
                    name = as_str(block.get("name")) or "unknown"
                    args = block.get("input") if "input" in block and block.get("input") is not None else {}
                    out.append(ev.tool_call(name, ev.compact_json(args)))
            return out
        if kind == "user":
            out = []
            for block in as_list(as_dict(obj.get("message")).get("content")):
                block = as_dict(block)
                if block.get("type") == "tool_result":
                    out.append(ev.tool_result(_tool_result_text(block.get("content"))))
            return out
        if kind == "result":
            if obj.get("is_error"):
                return [ev.error(_result_error(obj))]
            return [ev.done(
                sessionId=as_str(obj.get("session_id")) or None,
                durationMs=obj.get("duration_ms") if is_number(obj.get("duration_ms")) else None,
                costUsd=obj.get("total_cost_usd") if is_number(obj.get("total_cost_usd")) else None,
                numTurns=obj.get("num_turns") if is_number(obj.get("num_turns")) else None,
                fullText=as_str(obj.get("result")) or None)]
        if kind == "system" and obj.get("subtype") == "api_retry":
            return [ev.warning(_retry_message(obj))]
        return []

    def finish(self, exit_code: int) -> list:
        if self.terminal:
            return []
        if exit_code != 0:
            msg = f"Claude Code process exited with code {exit_code}"
            lines = self.stderr.lines()
            if lines:
                msg += "; stderr: " + " | ".join(lines)
            return [ev.error(msg)]
        if self.raw_lines == 0:
            msg = "Claude Code exited without emitting stream-json events"
            n = len(self.stderr.lines())
            return [ev.error(msg + (f"; stderrLines={n}" if n else ""))]
        if self.parsed == 0:
            msg = "Claude Code emitted non-JSON stdout instead of stream-json"
            if self.non_json:
                msg += "; stdout: " + preview(self.non_json)
            return [ev.error(msg)]
        return []


def _tool_result_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(as_str(as_dict(c).get("text")) for c in content
                         if as_dict(c).get("type") == "text")
    return ""


def _result_error(obj: dict) -> str:
    for candidate in (obj.get("result"), obj.get("error")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate
    errors = [e for e in as_list(obj.get("errors")) if isinstance(e, str) and e.strip()]
    return " | ".join(errors) if errors else "Agent error"


def _retry_message(obj: dict) -> str:
    status = obj.get("error_status")
    what = as_str(obj.get("error")) or "error"
    if is_number(status):
        what = f"{what} (HTTP {status})"
    attempt, most = obj.get("attempt"), obj.get("max_retries")
    count = f" {attempt}/{most}" if is_number(attempt) and is_number(most) else ""
    return f"Claude Code API {what}; retrying{count}"


class ClaudeCodeEngine(Engine):
    name = "claude-code"
    binary = "claude"
    label = "Claude Code"
    local_bin = True
    install_hint = "npm install -g @anthropic-ai/claude-code"
    docs_url = "https://docs.anthropic.com/en/docs/claude-code"
    skills_folder = os.path.join(".claude", "skills")

    def prepare_workspace(self, inv: Invocation) -> None:
        inject_skills(os.path.join(inv.workspace, self.skills_folder), inv.skill_paths)
        link_claude_md(inv.workspace)
        if inv.skip_permissions:
            skip_permissions_notice()
        if inv.mcp:
            path, doc = os.path.join(inv.workspace, MCP_FILE), mcp_document(inv.mcp)
            if read_json(path) != doc:
                atomic_write_json(path, doc)

    def build_argv(self, inv: Invocation) -> list:
        argv = ["-p", safe_prompt(inv.prompt), "--output-format", "stream-json", "--verbose"]
        if inv.skip_permissions:
            argv.append("--dangerously-skip-permissions")
        if inv.session_id:
            argv += ["--resume", inv.session_id]
        if inv.provider:
            argv += ["--setting-sources", "project,local"]
        elif inv.model:
            argv += ["--model", inv.model]
        if inv.mcp:
            # Claude Code reads project MCP servers from `.mcp.json` or --mcp-config, never from
            # `.claude/mcp.json`; pointing at our own file leaves a user's `.mcp.json` alone.
            argv += ["--mcp-config", os.path.join(inv.workspace, MCP_FILE)]
        return argv

    def build_env(self, inv: Invocation, base: dict) -> dict:
        env = dict(base)
        env["PATH"] = os.path.expanduser("~/.local/bin") + os.pathsep + env.get("PATH", os.defpath)
        provider = inv.provider or {}
        if inv.provider:
            if provider.get("apiKey"):
                env["ANTHROPIC_API_KEY"] = str(provider["apiKey"])
            if provider.get("baseUrl"):
                env["ANTHROPIC_BASE_URL"] = str(provider["baseUrl"])
            if provider.get("model"):
                for var in MODEL_VARS:
                    env[var] = str(provider["model"])
            env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"
            if inv.model and not env.get("ANTHROPIC_MODEL"):
                env["ANTHROPIC_MODEL"] = inv.model
        if inv.oauth_token:
            env["CLAUDE_CODE_OAUTH_TOKEN"] = inv.oauth_token
            env.pop("ANTHROPIC_API_KEY", None)
        elif inv.api_key:
            env["ANTHROPIC_API_KEY"] = inv.api_key
        # Root (Docker) refuses --dangerously-skip-permissions unless it is told it is sandboxed.
        if inv.skip_permissions and hasattr(os, "geteuid") and os.geteuid() == 0:
            env.setdefault("IS_SANDBOX", "1")
        env.pop("CLAUDECODE", None)
        env.pop("CLAUDE_CODE_ENTRYPOINT", None)
        return env

    def new_parser(self, inv: Invocation) -> StreamParser:
        return ClaudeParser()

    def list_models(self, api_key: str | None = None, model: str | None = None,
                    workspace: str | None = None) -> list:
        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            return list(STATIC_MODELS)
        base = os.environ.get("GOLEM_ANTHROPIC_API_URL", DEFAULT_API_URL).rstrip("/")
        body = http_get_json(f"{base}/v1/models?limit=100",
                             {"anthropic-version": "2023-06-01", "x-api-key": key})
        return model_ids(body) or list(STATIC_MODELS)
