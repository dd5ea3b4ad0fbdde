"""Codex (``codex exec --json``): argv, environment and the JSONL parser.

Today's CLI (0.171, see the fixtures README) differs from what the original was written for, and
this adapter follows the CLI:

* ``--full-auto`` is gone: ``codex.mode: safe`` becomes ``--sandbox workspace-write`` plus
  ``--ask-for-approval on-request`` (what ``--full-auto`` stood for).
* ``exec resume`` rejects ``--sandbox``, ``--add-dir`` and ``--profile``; a resumed turn carries
  the same settings as ``-c`` overrides (``sandbox_mode``, ``sandbox_workspace_write.writable_roots``,
  ``profile``).
* ``OPENAI_BASE_URL`` is ignored: a provider ``baseUrl`` is routed through a custom
  ``model_providers.<id>`` declared with ``-c`` (Responses wire API, key from ``CODEX_API_KEY``).
* Command output is in ``aggregated_output``; ``item.started`` announces the command
  (``tool_call``) and ``item.completed`` carries its output (``tool_result``).
* ``Reconnecting... N/M`` and ``Reconnecting... waiting for network`` are retry notices, not
  failures; warning items (``item.type == "error"``) become ``warning`` events.
"""
from __future__ import annotations

import json
import os
import re

from .. import events as ev
from .base import (Engine, Invocation, StderrTail, StreamParser, as_dict, as_list, as_str,
                   http_get_json, model_ids, parse_json_line, safe_prompt)

STATIC_MODELS = ["gpt-5.4", "gpt-5.3-codex", "gpt-5.2-codex", "gpt-5.1-codex-max", "codex-mini-latest"]
DEFAULT_API_URL = "https://api.openai.com"
GOLEM_PROVIDER_ID = "golem"
RECONNECTING = re.compile(r"^Reconnecting\.\.\.")
STDERR_NOISE = ("Reading additional input from stdin",
                "WARNING: proceeding, even though we could not create PATH aliases")
CUSTOM_PROVIDER_HINT = " Codex custom providers must support the OpenAI Responses API (/responses)."
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
STDERR_LIMIT = 500


def toml_str(value: str) -> str:
    """A TOML basic string (JSON string syntax is valid TOML for these values)."""
    return json.dumps(str(value), ensure_ascii=False)


def toml_key(key: str) -> str:
    return key if BARE_KEY.fullmatch(key) else toml_str(key)


def is_custom_provider(provider: dict | None) -> bool:
    p = provider or {}
    return bool(p.get("codexProfile") or p.get("codexProviderId") or p.get("baseUrl"))


def mcp_prompt_prefix(mcp: dict) -> str:
    lines = []
    for name, spec in mcp.items():
        spec = as_dict(spec)
        line = f'- {name}: command="{as_str(spec.get("command"))}"'
        args = spec.get("args")
        if isinstance(args, list) and args:
            line += " args=" + ev.compact_json(args)
        lines.append(line)
    return ("[Available MCP servers — these are configured but not directly accessible in this "
            "engine:\n" + "\n".join(lines) + "]\n\n")


def _tail_lines(lines: list, limit: int) -> str:
    """The last whole lines that fit in ``limit`` characters (the fatal error comes last)."""
    picked, size = [], 0
    for line in reversed(lines):
        if picked and size + len(line) + 1 > limit:
            break
        picked.append(line[-limit:])
        size += len(line) + 1
    return "\n".join(reversed(picked))


class CodexParser(StreamParser):
    def __init__(self, custom_provider: bool = False):
        self.custom_provider = custom_provider
        self.thread_id: str | None = None
        self.terminal = False
        self.started: set = set()
        self.stderr = StderrTail(max_lines=20, max_chars=500)
        self.last_notice = ""

    def feed_line(self, line: str) -> list:
        if self.terminal:  # the runner stops at the first done/error; so does the parser
            return []
        obj, _ = parse_json_line(line, ansi=True)
        if obj is None:
            return []
        events = self.map(obj)
        if any(ev.is_terminal(e) for e in events):
            self.terminal = True
        return events

    def map(self, obj: dict) -> list:
        kind = obj.get("type")
        if kind == "thread.started":
            self.thread_id = as_str(obj.get("thread_id")) or self.thread_id
            return []
        if kind in ("item.started", "item.completed"):
            return self._item(kind, as_dict(obj.get("item")))
        if kind == "turn.completed":
            return [ev.done(sessionId=self.thread_id)]
        if kind == "turn.failed":
            return [ev.error(as_str(as_dict(obj.get("error")).get("message")) or "Codex turn failed")]
        if kind == "error":
            message = as_str(obj.get("message"))
            if RECONNECTING.match(message):
                self.last_notice = message[:500]
                return []
            return [ev.error(message or "Codex error")]
        return []

    def _item(self, kind: str, item: dict) -> list:
        itype = item.get("type")
        item_id = as_str(item.get("id"))
        if itype == "command_execution":
            call = ev.tool_call(as_str(item.get("command")) or "shell", "")
            if kind == "item.started":
                if item_id:
                    self.started.add(item_id)
                return [call]
            out = [] if item_id and item_id in self.started else [call]
            self.started.discard(item_id)
            output = item.get("aggregated_output")
            if not isinstance(output, str):
                output = as_str(item.get("output"))
            return out + [ev.tool_result(output)]
        if kind != "item.completed":
            return []
        if itype == "agent_message":
            text = as_str(item.get("text"))
            if not text:
                text = "".join(as_str(as_dict(c).get("text")) for c in as_list(item.get("content"))
                               if as_dict(c).get("type") == "output_text")
            return [ev.text(text)] if text else []
        if itype == "error":
            message = as_str(item.get("message"))
            return [ev.warning(message)] if message else []
        return []

    def finish(self, exit_code: int) -> list:
        if self.terminal:
            return []
        if exit_code == 0:
            return [ev.done(sessionId=self.thread_id)]
        msg = f"Codex process exited with code {exit_code}"
        detail = _tail_lines([ln for ln in self.stderr.lines() if not ln.startswith(STDERR_NOISE)],
                             STDERR_LIMIT) or self.last_notice
        if detail:
            msg += ": " + detail
        if self.custom_provider:
            msg += CUSTOM_PROVIDER_HINT
        return [ev.error(msg)]


class CodexEngine(Engine):
    name = "codex"
    binary = "codex"
    label = "Codex"
    install_hint = "npm install -g @openai/codex"
    docs_url = "https://github.com/openai/codex"
    skills_folder = os.path.join(".agents", "skills")

    # -- argv -------------------------------------------------------------------------------
    def build_argv(self, inv: Invocation) -> list:
        codex = as_dict(inv.codex)
        provider = inv.provider or {}
        resume = bool(inv.session_id)
        sandbox, approval = codex.get("sandbox"), codex.get("approval")
        explicit = bool(sandbox or approval)
        safe = not explicit and codex.get("mode") == "safe"

        global_flags = []
        if explicit:
            global_flags += ["--ask-for-approval", approval or "on-request"]
        elif safe:
            global_flags += ["--ask-for-approval", "on-request"]
        if codex.get("search") is True:
            global_flags.append("--search")

        exec_flags = ["--json"]
        overrides = []
        if explicit or safe:
            mode = (sandbox or "workspace-write") if explicit else "workspace-write"
            if resume:
                overrides.append(f"sandbox_mode={toml_str(mode)}")
            else:
                exec_flags += ["--sandbox", mode]
        else:
            exec_flags.append("--dangerously-bypass-approvals-and-sandbox")
        exec_flags.append("--skip-git-repo-check")
        dirs = [os.path.join(inv.workspace, d) if not os.path.isabs(d) else d
                for d in as_list(codex.get("addDirs")) if isinstance(d, str) and d]
        dirs = [os.path.normpath(d) for d in dirs]
        if dirs:
            if resume:
                overrides.append("sandbox_workspace_write.writable_roots="
                                 + "[" + ",".join(toml_str(d) for d in dirs) + "]")
            else:
                for d in dirs:
                    exec_flags += ["--add-dir", d]
        profile = as_str(provider.get("codexProfile"))
        if profile:
            if resume:
                overrides.append(f"profile={toml_str(profile)}")
            else:
                exec_flags += ["--profile", profile]
        overrides += self._provider_overrides(provider)
        for o in overrides:
            exec_flags += ["-c", o]

        model_flags = ["--model", inv.model] if inv.model else []
        prompt = inv.prompt
        if inv.mcp:
            prompt = mcp_prompt_prefix(inv.mcp) + prompt
        trailing = [safe_prompt(prompt)]
        for image in inv.image_paths or []:
            trailing += ["--image", image]
        if resume:
            return global_flags + ["exec", "resume"] + exec_flags + model_flags + [inv.session_id] + trailing
        return global_flags + ["exec"] + exec_flags + model_flags + trailing

    @staticmethod
    def _provider_overrides(provider: dict) -> list:
        """``-c`` overrides that route Codex to the provider (OPENAI_BASE_URL no longer does)."""
        provider_id = as_str(provider.get("codexProviderId"))
        base_url = as_str(provider.get("baseUrl"))
        out = []
        if base_url and not provider.get("codexProfile"):
            pid = provider_id or GOLEM_PROVIDER_ID
            key = f"model_providers.{toml_key(pid)}"
            out += [f"model_provider={toml_str(pid)}",
                    f"{key}.name={toml_str(pid)}",
                    f"{key}.base_url={toml_str(base_url)}",
                    f"{key}.env_key={toml_str('CODEX_API_KEY')}",
                    f"{key}.wire_api={toml_str('responses')}"]
            return out
        if provider_id:
            out.append(f"model_provider={toml_str(provider_id)}")
            if provider.get("codexWireApi") == "responses":
                out.append(f"model_providers.{toml_key(provider_id)}.wire_api={toml_str('responses')}")
        return out

    # -- environment ------------------------------------------------------------------------
    def build_env(self, inv: Invocation, base: dict) -> dict:
        env = dict(base)
        provider = inv.provider or {}
        if inv.provider and not provider.get("codexProfile"):
            if provider.get("apiKey"):
                env["CODEX_API_KEY"] = env["OPENAI_API_KEY"] = str(provider["apiKey"])
            if provider.get("baseUrl"):
                env["OPENAI_BASE_URL"] = str(provider["baseUrl"])
        if provider.get("apiKey") and as_str(provider.get("codexEnvKey")):
            env[provider["codexEnvKey"]] = str(provider["apiKey"])
        if inv.api_key:
            env["CODEX_API_KEY"] = env["OPENAI_API_KEY"] = inv.api_key
        return env

    def new_parser(self, inv: Invocation) -> StreamParser:
        return CodexParser(custom_provider=is_custom_provider(inv.provider))

    def list_models(self, api_key: str | None = None, model: str | None = None,
                    workspace: str | None = None) -> list:
        key = api_key or os.environ.get("CODEX_API_KEY") or os.environ.get("OPENAI_API_KEY")
        if not key:
            return list(STATIC_MODELS)
        base = os.environ.get("GOLEM_OPENAI_API_URL", DEFAULT_API_URL).rstrip("/")
        return model_ids(http_get_json(f"{base}/v1/models", {"Authorization": f"Bearer {key}"})) \
            or list(STATIC_MODELS)
