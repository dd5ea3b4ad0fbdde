"""OpenCode (``opencode run --format json``): argv, ``opencode.json`` upkeep and the parser.

OpenCode has no final line: the turn ends when the process exits, so the single ``done`` is
made in :meth:`OpenCodeParser.finish` from the last ``step_finish`` seen.
"""
from __future__ import annotations

import json
import os
import time

import gevent
import gevent.lock

from .. import events as ev
from ..files import atomic_write_json, atomic_write_text
from .base import (Engine, Invocation, StreamParser, as_dict, as_str, http_get_json, is_number,
                   model_ids, parse_json_line, run_cli_capture, safe_prompt, strip_ansi)

KNOWN_KEY_VARS = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "google": "GOOGLE_GENERATIVE_AI_API_KEY",
    "amazon-bedrock": "AWS_ACCESS_KEY_ID",
    "mistral": "MISTRAL_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "groq": "GROQ_API_KEY",
}
DEFAULT_OPENROUTER_URL = "https://openrouter.ai/api"
STDERR_LIMIT = 500
_workspace_locks: dict = {}


def model_prefix(model: str | None) -> str:
    prefix = (model or "").split("/", 1)[0]
    return prefix or "openrouter"


def key_var(model: str | None) -> str:
    """The environment variable OpenCode reads the API key from, for a ``provider/model``."""
    prefix = model_prefix(model)
    return KNOWN_KEY_VARS.get(prefix) or prefix.upper().replace("-", "_") + "_API_KEY"


def _lock_for(workspace: str):
    key = os.path.realpath(workspace)
    lock = _workspace_locks.get(key)
    if lock is None:
        lock = _workspace_locks[key] = gevent.lock.BoundedSemaphore()
    return lock


def update_opencode_json(workspace: str, model: str | None, mcp: dict | None) -> None:
    """Keep ``opencode.json`` as engines.md §5.4 says, without ever losing the user's file.

    An unparsable file is copied to ``opencode.json.invalid-<timestamp>`` before it is replaced.
    Writes are atomic and serialised per workspace; an unchanged document is not rewritten.
    """
    path = os.path.join(workspace, "opencode.json")
    with _lock_for(workspace):
        raw = None
        try:
            with open(path, encoding="utf-8") as fh:
                raw = fh.read()
        except FileNotFoundError:
            pass
        doc = None
        if raw is not None:
            try:
                doc = json.loads(raw)
            except ValueError:
                doc = None
            if not isinstance(doc, dict):
                stamp = time.strftime("%Y%m%d-%H%M%S")
                atomic_write_text(f"{path}.invalid-{stamp}", raw)
                doc = None
        original = json.dumps(doc, sort_keys=True) if doc is not None else None
        doc = doc if doc is not None else {}
        if "permission" not in doc:
            doc["permission"] = {"*": "allow"}
        if model and "model" not in doc:
            doc["model"] = model
        if model and "/" in model:
            prefix, model_id = model.split("/", 1)
            if prefix in KNOWN_KEY_VARS and model_id:
                providers = doc.get("provider") if isinstance(doc.get("provider"), dict) else {}
                block = providers.get(prefix) if isinstance(providers.get(prefix), dict) else {}
                options = block.get("options") if isinstance(block.get("options"), dict) else {}
                models = block.get("models") if isinstance(block.get("models"), dict) else {}
                options.setdefault("apiKey", f"{{env:{KNOWN_KEY_VARS[prefix]}}}")
                models.setdefault(model_id, {})
                block["options"], block["models"] = options, models
                providers[prefix] = block
                doc["provider"] = providers
        if mcp:
            servers = doc.get("mcp") if isinstance(doc.get("mcp"), dict) else {}
            for name, spec in mcp.items():
                if name not in servers:
                    spec = as_dict(spec)
                    servers[name] = {k: spec[k] for k in ("command", "args", "env")
                                     if spec.get(k) is not None}
            doc["mcp"] = servers
        if original is None or json.dumps(doc, sort_keys=True) != original:
            atomic_write_json(path, doc)


def _unwrap(message: str) -> str:
    """``UnknownError`` messages may be a JSON document in a string; show its ``message``."""
    if message.startswith("{"):
        try:
            inner = json.loads(message)
        except ValueError:
            return message
        if isinstance(inner, dict) and as_str(inner.get("message")):
            return inner["message"]
    return message


class OpenCodeParser(StreamParser):
    def __init__(self):
        self.session_id: str | None = None
        self.cost = 0.0
        self.steps = 0
        self.error_seen = False
        self.stderr_text = ""
        self._stderr_partial = ""

    def feed_line(self, line: str) -> list:
        if self.error_seen:  # terminal: the runner stops here, and so does the parser
            return []
        obj, _ = parse_json_line(line)
        return self.map(obj) if obj is not None else []

    def map(self, obj: dict) -> list:
        kind = obj.get("type")
        part = obj.get("part")
        if kind == "error":
            self.error_seen = True
            err = as_dict(obj.get("error"))
            message = _unwrap(as_str(as_dict(err.get("data")).get("message"))) or as_str(err.get("name"))
            return [ev.error(message or "OpenCode error")]
        if not isinstance(part, dict):
            return []
        if kind == "text":
            text = as_str(part.get("text"))
            return [ev.text(text)] if text else []
        if kind == "tool_use":
            name = as_str(part.get("tool")) or "unknown"
            state = part.get("state")
            if not isinstance(state, dict):
                return [ev.tool_call(name, "{}")]
            args = state.get("input") if state.get("input") is not None else {}
            out = [ev.tool_call(name, ev.compact_json(args))]
            if state.get("status") == "completed":
                output = state.get("output")
                out.append(ev.tool_result(output if isinstance(output, str) else ev.compact_json(output if output is not None else "")))
            return out
        if kind == "step_finish":
            self.steps += 1
            sid = as_str(obj.get("sessionID")) or as_str(part.get("sessionID"))
            if sid:
                self.session_id = sid
            if is_number(part.get("cost")) and part["cost"]:
                self.cost += part["cost"]
        return []

    def feed_stderr(self, chunk: str) -> list:
        if len(self.stderr_text) < STDERR_LIMIT * 4:
            self.stderr_text += chunk[:STDERR_LIMIT * 4]
        data = self._stderr_partial + chunk
        lines = data.split("\n")
        self._stderr_partial = lines.pop()[-65536:]
        out = []
        for line in lines:
            obj, _ = parse_json_line(line, ansi=True)
            if obj is not None and obj.get("type") == "error" and not self.error_seen:
                out += self.map(obj)
        return out

    def finish(self, exit_code: int) -> list:
        if self.error_seen:
            return []
        if exit_code != 0 and not self.session_id:
            msg = f"OpenCode process exited with code {exit_code}"
            detail = strip_ansi(self.stderr_text).strip()[:STDERR_LIMIT]
            return [ev.error(msg + (f": {detail}" if detail else ""))]
        return [ev.done(sessionId=self.session_id, costUsd=self.cost if self.cost > 0 else None,
                        numTurns=self.steps or None)]


class OpenCodeEngine(Engine):
    name = "opencode"
    binary = "opencode"
    label = "OpenCode"
    install_hint = "npm install -g opencode-ai"
    docs_url = "https://opencode.ai/docs"
    skills_folder = os.path.join(".opencode", "skills")

    def prepare_workspace(self, inv: Invocation) -> None:
        super().prepare_workspace(inv)
        update_opencode_json(inv.workspace, inv.model, inv.mcp)

    def build_argv(self, inv: Invocation) -> list:
        argv = ["run", safe_prompt(inv.prompt), "--format", "json"]
        if inv.session_id:
            argv += ["--session", inv.session_id]
        if inv.model:
            argv += ["--model", inv.model]
        return argv

    def build_env(self, inv: Invocation, base: dict) -> dict:
        env = dict(base)
        var = key_var(inv.model)
        provider = inv.provider or {}
        if inv.provider:
            if provider.get("apiKey"):
                env[var] = str(provider["apiKey"])
            if provider.get("baseUrl"):
                env["OPENAI_BASE_URL"] = str(provider["baseUrl"])
        if inv.api_key:
            env[var] = inv.api_key
        return env

    def new_parser(self, inv: Invocation) -> StreamParser:
        return OpenCodeParser()

    def list_models(self, api_key: str | None = None, model: str | None = None,
                    workspace: str | None = None) -> list:
        if model_prefix(model) == "openrouter" and model:
            base = os.environ.get("GOLEM_OPENROUTER_API_URL", DEFAULT_OPENROUTER_URL).rstrip("/")
            ids = model_ids(http_get_json(f"{base}/v1/models"))
            if ids:
                return ids
        try:
            binary = self.find_binary()
            _, out = run_cli_capture([binary, "models"], cwd=workspace)
        except (Exception, gevent.Timeout):  # noqa: BLE001 - missing binary, spawn failure, timeout
            return []
        return [ln for ln in out.strip().split("\n") if ln.strip()]
