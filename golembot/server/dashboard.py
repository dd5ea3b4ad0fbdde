"""The gateway dashboard: ``GET /`` and the data behind it.

The page is public (it is the landing page), so what the server renders into it is limited to
non-secret basics: name, engine, model, version, uptime and whether auth is on. Everything else
(channels, statistics, tasks, escalations, memory, the masked configuration) comes from
``GET /api/dashboard``, which needs the token like every other API route. When no token is
configured the API is open anyway, so the page embeds that same data to save a round trip.

:func:`collect` builds that data once for ``/api/status``, ``/api/dashboard`` and the page, and
runs it through :func:`redact` last, so no code path can hand a secret to a template or to the
JSON encoder.
"""
from __future__ import annotations

import json
import os
import re
import time

from flask import Blueprint, Response, render_template, request, url_for

from .. import __version__
from .. import config as config_mod
from ..files import read_json

#: The repository's ``templates/`` and ``static/`` folders. An installed package carries them
#: as ``golembot/templates`` and ``golembot/static`` (package data); a source checkout has them
#: next to the package.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _web_folder(name: str) -> str:
    packaged = os.path.join(_PACKAGE_DIR, name)
    if os.path.isdir(packaged):
        return packaged
    return os.path.join(os.path.dirname(_PACKAGE_DIR), name)


TEMPLATE_FOLDER = _web_folder("templates")
STATIC_FOLDER = _web_folder("static")

#: Content-Security-Policy of the page: scripts only from our static files, so an injected
#: ``<script>`` could not run even if escaping ever failed.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'")

KNOWN_CHANNELS = [
    ("feishu", "Feishu (Lark)"), ("dingtalk", "DingTalk"), ("wecom", "WeCom"),
    ("slack", "Slack"), ("telegram", "Telegram"), ("discord", "Discord"), ("weixin", "WeChat"),
]
ENGINES = ["cursor", "claude-code", "opencode", "codex"]
DOCS_URL = "https://github.com/0xranx/golembot#readme"
REPO_URL = "https://github.com/0xranx/golembot"

#: One table for the configuration panel: what is shown, its default, and how it is edited.
#: ``kind`` is ``enum``/``number``/``text``/``bool`` (editable), ``secret`` (masked, never
#: editable), ``list`` (chips) or ``info`` (read-only text). ``min`` bounds number inputs.
#: ``always`` groups are shown even when their section is absent from golem.yaml.
CONFIG_GROUPS = [
    {"title": "Engine & Runtime", "open": True, "always": True, "rows": [
        {"path": "engine", "label": "Engine", "kind": "enum", "options": ENGINES},
        {"path": "model", "label": "Model", "kind": "text", "default": "default"},
        {"path": "codex.mode", "label": "Codex mode", "kind": "enum",
         "options": ["safe", "unrestricted"], "default": "unrestricted", "onlyIf": "codex"},
        {"path": "skipPermissions", "label": "Skip Permissions", "kind": "bool", "default": True},
        {"path": "timeout", "label": "Timeout", "kind": "number", "min": 0, "unit": "s",
         "default": 600},
        {"path": "maxConcurrent", "label": "Max Concurrent", "kind": "number", "min": 1,
         "default": 10},
        {"path": "maxQueuePerSession", "label": "Max Queue/Session", "kind": "number", "min": 0,
         "default": 3},
        {"path": "sessionTtlDays", "label": "Session TTL", "kind": "number", "min": 1,
         "unit": "days", "default": 30},
    ]},
    {"title": "Gateway", "open": True, "always": True, "rows": [
        {"path": "gateway.host", "label": "Host", "kind": "text", "default": "127.0.0.1"},
        {"path": "gateway.port", "label": "Port", "kind": "number", "min": 1, "max": 65535,
         "default": 3000},
        {"path": "gateway.token", "label": "Auth Token", "kind": "secret", "unset": "Disabled"},
    ]},
    {"title": "Provider", "section": "provider", "rows": [
        {"path": "provider.baseUrl", "label": "Base URL", "kind": "text"},
        {"path": "provider.apiKey", "label": "API Key", "kind": "secret"},
        {"path": "provider.model", "label": "Model Override", "kind": "text"},
        {"path": "provider.failoverThreshold", "label": "Failover Threshold", "kind": "number",
         "min": 1, "unit": "errors", "default": 3},
        {"path": "provider.fallbackRecoveryMs", "label": "Recovery Cooldown", "kind": "number",
         "min": 0, "unit": "ms", "default": 60000},
        {"path": "provider.fallback.baseUrl", "label": "Fallback URL", "kind": "info",
         "onlyIf": "provider.fallback"},
        {"path": "provider.fallback.apiKey", "label": "Fallback API Key", "kind": "secret",
         "onlyIf": "provider.fallback"},
        {"path": "provider.fallback.model", "label": "Fallback Model", "kind": "info",
         "onlyIf": "provider.fallback"},
    ]},
    {"title": "Group Chat", "always": True, "rows": [
        {"path": "groupChat.groupPolicy", "label": "Policy", "kind": "enum",
         "options": ["mention-only", "smart", "always"], "default": "mention-only"},
        {"path": "groupChat.historyLimit", "label": "History Limit", "kind": "number", "min": 0,
         "unit": "messages", "default": 20},
        {"path": "groupChat.maxTurns", "label": "Max Turns", "kind": "number", "min": 1,
         "default": 10},
    ]},
    {"title": "Streaming", "always": True, "rows": [
        {"path": "streaming.mode", "label": "Mode", "kind": "enum",
         "options": ["buffered", "streaming"], "default": "buffered"},
        {"path": "streaming.showToolCalls", "label": "Show Tool Calls", "kind": "bool",
         "default": False},
    ]},
    {"title": "Permissions", "section": "permissions", "rows": [
        {"path": "permissions.allowedPaths", "label": "Allowed Paths", "kind": "list"},
        {"path": "permissions.deniedPaths", "label": "Denied Paths", "kind": "list"},
        {"path": "permissions.allowedCommands", "label": "Allowed Commands", "kind": "list"},
        {"path": "permissions.deniedCommands", "label": "Denied Commands", "kind": "list"},
    ]},
    {"title": "Advanced", "section": "systemPrompt|mcp|inbox|historyFetch|escalation", "rows": [
        {"path": "systemPrompt", "label": "System Prompt", "kind": "prompt",
         "onlyIf": "systemPrompt"},
        {"path": "mcp", "label": "MCP Servers", "kind": "mcp", "onlyIf": "mcp"},
        {"path": "inbox", "label": "Inbox", "kind": "inbox", "onlyIf": "inbox"},
        {"path": "historyFetch", "label": "History Fetch", "kind": "historyFetch",
         "onlyIf": "historyFetch"},
        {"path": "escalation", "label": "Escalation", "kind": "escalation",
         "onlyIf": "escalation"},
    ]},
]

ESCALATION_LIMIT = 20
RECENT_TAIL_BYTES = 256 * 1024
MEMORY_FILE_LIMIT = 200
SESSION_LIMIT = 10


# -- secrets ----------------------------------------------------------------------------------
def mask(value) -> str:
    """``sk-••••ef`` for secrets of 12+ characters, ``••••`` for shorter ones (decisions.md)."""
    return config_mod.mask_secret(value)


def secret_values(config: dict, token=None) -> set:
    """Every secret string of a loaded config plus the effective token (which may come from the
    command line or the environment rather than golem.yaml), to scrub whole payloads."""
    found = set(config_mod.secret_values(config or {}))
    if token:
        found.add(token)
    # Very short values would mask innocent text everywhere; the config masks them anyway.
    return {s for s in found if len(s) >= 4}


def redact(value, secrets: set):
    """``value`` with every occurrence of a known secret string replaced by its mask."""
    if not secrets:
        return value
    if isinstance(value, str):
        for s in secrets:
            if s in value:
                value = value.replace(s, mask(s))
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    return value


def masked_config(config: dict) -> dict:
    """The config as it may be shown: secrets masked, MCP env values and secret-looking MCP
    arguments (``--token x``, ``sk-…``, long hex/base64) masked too."""
    masked = config_mod.mask_secrets(config)
    mcp = masked.get("mcp")
    if isinstance(mcp, dict):
        masked = dict(masked, mcp={name: _mask_mcp_server(srv) for name, srv in mcp.items()})
    return masked


_SECRET_FLAGS = {"--token", "--api-key", "--apikey", "--key", "-k", "--secret", "--password",
                 "--auth", "--access-token"}
_SECRET_VALUE = re.compile(r"^(sk-|xox[abprs]-|xapp-|ghp_|gho_|glpat-)|^[A-Fa-f0-9]{32,}$|"
                           r"^[A-Za-z0-9+/_=-]{40,}$")


def _mask_mcp_server(server):
    if not isinstance(server, dict):
        return server
    out = dict(server)
    if isinstance(out.get("env"), dict):
        out["env"] = {k: mask(v) for k, v in out["env"].items()}
    args = out.get("args")
    if isinstance(args, list):
        masked, hide_next = [], False
        for arg in args:
            text = str(arg)
            flag, eq, value = text.partition("=")
            if hide_next or _SECRET_VALUE.search(text):
                masked.append(mask(text))
            elif eq and flag.lower() in _SECRET_FLAGS:
                masked.append(f"{flag}={mask(value)}")
            else:
                masked.append(arg)
            hide_next = text.lower() in _SECRET_FLAGS
        out["args"] = masked
    return out


# -- files the dashboard reads -----------------------------------------------------------------
def _tail_lines(path: str, max_bytes: int = RECENT_TAIL_BYTES) -> list:
    """The last complete lines of a file, reading at most ``max_bytes`` (never megabytes)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first one is probably cut
    return lines


def _json_lines(path: str) -> list:
    out = []
    for line in _tail_lines(path):
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def read_escalations(dir: str, limit: int = ESCALATION_LIMIT) -> list:
    """Last ``limit`` valid lines of ``.golem/escalations.jsonl``, newest first."""
    rows = []
    for item in _json_lines(os.path.join(dir, ".golem", "escalations.jsonl"))[-limit:]:
        rows.append({"ts": _text(item.get("ts")), "sessionKey": _text(item.get("sessionKey")),
                     "reason": _text(item.get("reason")), "context": _text(item.get("context")),
                     "status": "resolved" if item.get("status") == "resolved" else "open"})
    rows.reverse()
    return rows


def active_sessions(assistant) -> dict:
    """The 10 most recently used session keys (never their engine session ids)."""
    data = read_json(os.path.join(assistant.dir, ".golem", "sessions.json"), {})
    if not isinstance(data, dict):
        data = {}
    entries = []
    for key, value in data.items():
        last = value.get("lastUsed") if isinstance(value, dict) else None
        entries.append({"key": str(key), "lastUsed": last if isinstance(last, (int, float)) else 0,
                        "running": bool(assistant.is_running(key))})
    entries.sort(key=lambda e: e["lastUsed"], reverse=True)
    return {"total": len(entries), "sessions": entries[:SESSION_LIMIT]}


def memory_overview(dir: str) -> dict:
    """``notes.md`` preview plus the files under ``memory/`` (names, sizes, times — no content)."""
    notes = ""
    try:
        with open(os.path.join(dir, "notes.md"), encoding="utf-8", errors="replace") as fh:
            notes = fh.read(301)
    except OSError:
        pass
    files = []
    if os.path.isfile(os.path.join(dir, "notes.md")):
        files.append(_file_entry(dir, "notes.md"))
    root = os.path.join(dir, "memory")
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            if len(files) >= MEMORY_FILE_LIMIT:
                break
            rel = os.path.relpath(os.path.join(folder, name), dir)
            files.append(_file_entry(dir, rel))
    groups = [f["path"].rsplit("/", 1)[-1] for f in files
              if f["path"].startswith("memory/groups/") and f["path"].count("/") == 2
              and f["path"].endswith((".md", ".json"))]
    summaries = sorted(f["path"].rsplit("/", 1)[-1] for f in files
                       if f["path"].startswith("memory/summaries/") and f["path"].count("/") == 2
                       and f["path"].endswith((".md", ".json")))[-5:]
    preview = notes[:300] + ("…" if len(notes) > 300 else "")
    return {"notesPreview": preview, "groupFiles": groups, "recentSummaries": summaries,
            "files": files, "truncated": len(files) >= MEMORY_FILE_LIMIT}


def _file_entry(dir: str, rel: str) -> dict:
    try:
        st = os.lstat(os.path.join(dir, rel))
        size, mtime = st.st_size, int(st.st_mtime * 1000)
    except OSError:
        size, mtime = 0, 0
    return {"path": rel.replace(os.sep, "/"), "size": size, "mtime": mtime}


def task_overview(gateway, dir: str) -> tuple:
    """``(tasks, {taskId: last 5 runs, newest first})`` from the scheduler, or from the task
    store when no scheduler runs in this process. Prompts are cut to 200 characters."""
    from ..scheduler import history as task_history
    from ..scheduler.store import TaskStore
    scheduler = getattr(gateway, "scheduler", None)
    try:
        tasks = scheduler.list_tasks() if scheduler is not None else TaskStore(dir).load()
    except Exception:  # noqa: BLE001 - a broken store must not break the dashboard
        tasks = []
    tasks = [t for t in (tasks or []) if isinstance(t, dict)]
    runs = {}
    for task in tasks:
        tid = str(task.get("id", ""))
        try:
            runs[tid] = (scheduler.history(tid, limit=5) if scheduler is not None
                         else task_history.read(dir, tid, 5))
        except Exception:  # noqa: BLE001
            runs[tid] = []
    shown = [dict(t, prompt=_text(t.get("prompt"))[:200]) for t in tasks]
    return shown, runs


def _text(value) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


# -- the data object -----------------------------------------------------------------------------
class Context:
    """What the dashboard and ``/api/*`` need to know beyond the assistant and the gateway."""

    def __init__(self, assistant, gateway, token=None, host=None, port=None, started_at=None):
        self.assistant = assistant
        self.gateway = gateway
        self.token = token or None
        self.host = host
        self.port = port
        self.started_at = (started_at or getattr(gateway, "started_at", None) or time.time())

    def uptime_ms(self) -> int:
        started = self.started_at
        return max(0, int((time.time() - started) * 1000))

    def _status(self):
        """``(config, skills, engine, model, error)`` — a broken golem.yaml is reported, not raised."""
        try:
            status = self.assistant.get_status()
        except Exception as exc:  # noqa: BLE001 - ConfigError and friends
            return {}, [], "", None, str(exc)
        return (status.get("config") or {}, status.get("skills") or [], status.get("engine"),
                status.get("model"), None)

    def effective_host_port(self, config: dict) -> tuple:
        gw = config.get("gateway") or {}
        host = self.host or gw.get("host") or "127.0.0.1"
        port = self.port or gw.get("port") or 3000
        return host, port

    def basics(self) -> dict:
        """The public part of the page: nothing here needs auth or is a secret."""
        config, skills, engine, model, error = self._status()
        secrets = secret_values(config, self.token)
        host, port = self.effective_host_port(config)
        data = {"name": _text(config.get("name")) or "golembot", "engine": _text(engine),
                "model": _text(model), "version": __version__, "uptime": self.uptime_ms(),
                "authEnabled": bool(self.token), "host": host, "port": port}
        return redact(data, secrets)

    def collect(self) -> dict:
        """The ``/api/status`` body (gateway.md §17.2), secrets masked."""
        config, skills, engine, model, error = self._status()
        secrets = secret_values(config, self.token)
        gateway = self.gateway
        metrics, recent = {}, []
        if gateway is not None:
            snapshot = dict(gateway.metrics.snapshot())
            recent = snapshot.pop("recentMessages", [])
            metrics = snapshot
        host, port = self.effective_host_port(config)
        tasks, history = task_overview(gateway, self.assistant.dir)
        data = {
            "name": _text(config.get("name")), "engine": _text(engine), "model": model,
            "version": __version__, "uptime": self.uptime_ms(),
            "channels": list(gateway.channel_status()) if gateway is not None else [],
            "skills": [{k: v for k, v in s.items() if k != "path"} for s in skills],
            "metrics": metrics, "recentMessages": recent,
            "authEnabled": bool(self.token), "host": host, "port": port,
            "tasks": tasks, "taskHistory": history,
            "escalations": read_escalations(self.assistant.dir),
            "persona": config.get("persona") or {},
            "activeSessions": active_sessions(self.assistant),
            "memoryOverview": memory_overview(self.assistant.dir),
            "config": masked_config(config) if config else {},
            "fleetPeers": self._peers(),
        }
        if error:
            data["configError"] = error
        return redact(data, secrets)

    def _peers(self) -> list:
        peers = (getattr(self.gateway, "fleet_peers", None)
                 or getattr(self.gateway, "peers", None))
        if not callable(peers):
            return []
        try:
            return [p for p in peers() if isinstance(p, dict)]
        except Exception:  # noqa: BLE001 - the fleet is informational
            return []


# -- the page --------------------------------------------------------------------------------
def create_blueprint(assistant, gateway, token=None, *, host=None, port=None, started_at=None,
                     name="golem_dashboard"):
    """Blueprint serving ``GET /`` and the page's static files (``/golem-static/...``).

    The blueprint carries its own template and static folders, so a host application needs no
    configuration; mounted under a prefix (``url_prefix="/bot"``) the page finds its API at
    ``/bot/api/...`` and ``/bot/chat``.
    """
    ctx = Context(assistant, gateway, token, host, port, started_at)
    bp = Blueprint(name, __name__, template_folder=TEMPLATE_FOLDER, static_folder=STATIC_FOLDER,
                   static_url_path="/golem-static")
    bp.golem_context = ctx

    @bp.get("/")
    def index():
        basics = ctx.basics()
        boot = {"basics": basics, "configGroups": CONFIG_GROUPS,
                "knownChannels": [{"key": k, "label": v} for k, v in KNOWN_CHANNELS],
                "engines": ENGINES,
                # With no token the API is open: embed its data instead of a second request.
                "data": None if ctx.token else ctx.collect()}
        base_url = _base_url(basics, url_for(f"{name}.index").rstrip("/"))
        html = render_template("dashboard.html", boot=boot, basics=basics, base_url=base_url,
                               samples=code_samples(base_url, basics["authEnabled"]),
                               docs_url=DOCS_URL, repo_url=REPO_URL,
                               static_endpoint=f"{name}.static")
        resp = Response(html, mimetype="text/html")
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    return bp


def code_samples(base_url: str, auth: bool) -> dict:
    """Plain-text versions of the page's code examples (what Copy puts on the clipboard).

    The token is never written into them: with auth on they carry the literal ``<token>``."""
    auth_line = '  -H "Authorization: Bearer <token>" \\\n' if auth else ""
    curl = (f"curl -N -X POST {base_url}/chat \\\n"
            '  -H "Content-Type: application/json" \\\n'
            f"{auth_line}"
            """  -d '{"message": "Hello!", "sessionKey": "my-session"}'""")
    python = ('from golembot import create_assistant\n\n'
              'assistant = create_assistant("./my-bot")\n'
              'for event in assistant.chat("Hello!", session_key="my-session"):\n'
              '    if event["type"] == "text":\n'
              '        print(event["content"], end="", flush=True)\n')
    return {"curl": curl, "python": python}


def _base_url(basics: dict, prefix: str) -> str:
    """Base URL for the code samples: the effective bind address (the browser's own for
    ``0.0.0.0``) plus the path the app is mounted at."""
    host = basics.get("host") or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        return request.host_url.rstrip("/") + prefix
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{basics.get('port') or 3000}" + prefix
