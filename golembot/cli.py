"""The ``golembot`` command: each sub-command is a few lines that call into the library.

Errors a user can cause (a bad golem.yaml, an existing assistant, a missing engine binary, a
wrong option) print one ``❌`` line on stderr and exit 1 — never a traceback. Usage errors exit 1
too, like the original, instead of click's 2.

Layering: this module may import everything; nothing imports it. Server, gateway and the REPL are
imported lazily so ``golembot status`` stays fast and never loads Flask.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys

import click

from . import __version__

ENGINES = ["cursor", "claude-code", "opencode", "codex"]
ENGINE_LABELS = {"cursor": "Cursor", "claude-code": "Claude Code", "opencode": "OpenCode",
                 "codex": "Codex"}
ENGINE_BINARIES = {"cursor": "agent", "claude-code": "claude", "opencode": "opencode",
                   "codex": "codex"}
DEFAULT_PORT = 3000
DEFAULT_HOST = "127.0.0.1"
STATUS_HINT = ("   Make sure the current directory contains golem.yaml, "
               "or use -d to specify the assistant directory.")


# -- output helpers -----------------------------------------------------------------------------

def use_color(stream=None) -> bool:
    """ANSI colours only on a terminal and without ``NO_COLOR``, so piped output is plain text."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def paint(text: str, code: str, stream=None) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if use_color(stream) else text


def dim(text, stream=None):
    return paint(text, "2", stream)


def bold(text, stream=None):
    return paint(text, "1", stream)


class Failure(click.ClickException):
    """A user-facing error: ``❌ <message>`` on stderr, exit 1."""

    exit_code = 1

    def show(self, file=None):
        click.echo(f"❌ {self.format_message()}", err=True)


class GolemGroup(click.Group):
    """Exit 1 on usage errors and turn unexpected exceptions into one ``❌`` line.

    Set ``GOLEMBOT_DEBUG=1`` to get the traceback instead.
    """

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            exc.exit_code = 1
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = 1
            raise
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get("GOLEMBOT_DEBUG"):
                raise
            raise Failure(str(exc) or exc.__class__.__name__) from exc


def load_env(dir: str | None) -> None:
    """``.env`` from the assistant directory, then from the cwd; set variables always win."""
    from .config import load_env_files
    load_env_files(dir or ".")


def load_config_or_fail(dir: str) -> dict:
    from .config import load_config
    if not os.path.isfile(os.path.join(dir, "golem.yaml")):
        raise Failure(f"No golem.yaml in {os.path.abspath(dir)} — run golembot init, "
                      "or use -d to point at the assistant directory")
    return load_config(dir)


def resolve_listen(config: dict, port=None, token=None, host=None) -> tuple[int, str | None, str]:
    """Port: flag > GOLEM_PORT > gateway.port > 3000; token: flag > GOLEM_TOKEN > gateway.token;
    host: flag > gateway.host > 127.0.0.1 (decisions.md)."""
    gateway = config.get("gateway") if isinstance(config.get("gateway"), dict) else {}
    if port is None:
        env_port = os.environ.get("GOLEM_PORT", "").strip()
        if env_port:
            if not env_port.isdigit() or not 0 <= int(env_port) <= 65535:
                raise Failure(f"GOLEM_PORT must be a port number, got {env_port!r}")
            port = int(env_port)
        else:
            port = gateway.get("port") or DEFAULT_PORT
    token = token or os.environ.get("GOLEM_TOKEN") or gateway.get("token") or None
    host = host or gateway.get("host") or DEFAULT_HOST
    return int(port), token, host


def assistant_from_config(dir: str, config: dict, api_key=None):
    """An assistant with the limits golem.yaml asks for (the timeout it reads per turn itself)."""
    from . import create_assistant
    kwargs = {}
    for key, arg in (("maxConcurrent", "max_concurrent"),
                     ("maxQueuePerSession", "max_queue_per_session")):
        value = config.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            kwargs[arg] = value
    return create_assistant(dir, api_key=api_key, **kwargs)


def engine_warning(engine_name) -> str | None:
    """A one-line warning when the engine's CLI is not installed (the server still starts)."""
    from .engines import get_engine
    try:
        engine = get_engine(engine_name)
        engine.find_binary()
    except Exception as exc:
        first = (str(exc) or exc.__class__.__name__).splitlines()[0]
        hint = f" — install it: {engine.install_hint}" if getattr(engine, "install_hint", "") else ""
        return f"⚠ {first}{hint}"
    return None


def welcome_box() -> str:
    """The 52-column box printed by a bare ``golembot``."""
    width = 52
    inner = width - 2

    def row(text="", right=""):
        visible = len(text) + len(right)
        return "│" + text + " " * max(0, inner - visible) + right + "│"

    hints = [("golembot onboard", "Setup wizard"), ("golembot run", "Start chatting"),
             ("golembot gateway", "IM + HTTP service"), ("golembot fleet ls", "List running bots"),
             ("golembot doctor", "Check system setup"), ("golembot --help", "All commands")]
    lines = ["╭" + "─" * inner + "╮", row(),
             row("     ▄█████▄"), row("     █ ● ● █    ◈ GolemBot", f"v{__version__}  "),
             row("     █ ▀▀▀ █    Your Coding Agent, Everywhere"), row("      ▀▀ ▀▀"), row()]
    for cmd, desc in hints:
        lines.append(row(f"  {cmd:<20} {desc}"))
    lines += [row(), "╰" + "─" * inner + "╯"]
    return "\n".join(lines)


# -- the group ----------------------------------------------------------------------------------

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=GolemGroup, invoke_without_command=True, context_settings=CONTEXT,
             epilog="""\b
Examples:
  golembot init -e claude-code -n my-bot
  golembot run
  golembot serve -p 3000 -t my-secret
  golembot doctor
""")
@click.version_option(__version__, "-V", "--version", message="%(version)s")
@click.pass_context
def main(ctx):
    """Local-first AI assistant powered by Coding Agent engines."""
    if ctx.invoked_subcommand is None:
        click.echo(welcome_box())


PORT = click.IntRange(0, 65535)
DIR_OPTION = click.option("-d", "--dir", "dir", default=".", show_default=True,
                          type=click.Path(file_okay=False), help="Assistant directory.")


# -- init ---------------------------------------------------------------------------------------

@main.command(epilog="""\b
Examples:
  golembot init -e claude-code -n my-bot
  golembot init -d ./support -e codex -n helpdesk -r "customer support agent"
  golembot init            # asks for engine and name
""")
@DIR_OPTION
@click.option("-e", "--engine", type=click.Choice(ENGINES, case_sensitive=False), default=None,
              help="Engine CLI to drive (default: cursor).")
@click.option("-n", "--name", help="Assistant name. Without it, you are asked interactively.")
@click.option("-r", "--role", help="Persona role (persona.role in golem.yaml).")
def init(dir, engine, name, role):
    """Create a new assistant: golem.yaml, skills/, AGENTS.md, .golem/, .gitignore."""
    load_env(dir if os.path.isdir(dir) else None)
    engine = (engine or "").lower() or None
    if name is None:
        if not sys.stdin.isatty():
            raise Failure("Missing option -n/--name (no terminal to ask on). "
                          "Example: golembot init -e claude-code -n my-bot")
        engine, name = _ask_engine_and_name(engine or "cursor")
    engine = engine or "cursor"
    if not name.strip():
        raise Failure("Initialization failed: the name must not be empty")
    from .workspace import init_assistant
    try:
        os.makedirs(dir, exist_ok=True)
        init_assistant(dir, engine, name, role)
    except Exception as exc:
        if os.environ.get("GOLEMBOT_DEBUG"):
            raise
        raise Failure(f"Initialization failed: {exc}") from exc
    click.echo()
    click.echo("✅ GolemBot assistant created!")
    click.echo(f"   Directory: {os.path.abspath(dir)}")
    click.echo(f"   Engine: {engine}")
    click.echo(f"   Name: {name}")
    if role:
        click.echo(f"   Role: {role}")
    click.echo()
    run_hint = "golembot run" if os.path.abspath(dir) == os.getcwd() else f"golembot run -d {dir}"
    click.echo(f"Run {run_hint} to start chatting.")


def _ask_engine_and_name(default_engine: str) -> tuple[str, str]:
    click.echo("Select AI engine:")
    for i, engine in enumerate(ENGINES, 1):
        click.echo(f"  {i}) {ENGINE_LABELS[engine]}")
    choices = [str(i) for i in range(1, len(ENGINES) + 1)] + ENGINES
    picked = click.prompt("Engine", type=click.Choice(choices, case_sensitive=False),
                          default=str(ENGINES.index(default_engine) + 1), show_choices=False)
    engine = ENGINES[int(picked) - 1] if picked.isdigit() else picked.lower()
    name = click.prompt("Name your assistant", default="my-assistant")
    return engine, name


# -- run ----------------------------------------------------------------------------------------

@main.command(epilog="""\b
Examples:
  golembot run
  golembot run -d ./my-bot --api-key sk-ant-...
\b
In the REPL: type a message, or /help for commands; \"\"\" starts and ends a
multi-line message; Ctrl-C stops the running turn; /quit, /exit or Ctrl-D leaves.
""")
@DIR_OPTION
@click.option("--api-key", help="API key for the engine (overrides the provider key).")
def run(dir, api_key):
    """Chat with the assistant in the terminal (interactive REPL)."""
    load_env(dir)
    from . import create_assistant
    from .repl import Repl
    warning = None
    try:
        config = load_config_or_fail(dir)
        assistant = assistant_from_config(dir, config, api_key)
        warning = engine_warning(config["engine"])
    except Failure:
        raise
    except Exception:
        # The REPL still starts (its banner says so) and each turn reports the problem.
        assistant = create_assistant(dir, api_key=api_key)
    if warning:
        click.echo(warning, err=True)
    code = Repl(assistant).run()
    sys.exit(code)


# -- serve / gateway ----------------------------------------------------------------------------

@main.command(epilog="""\b
Examples:
  golembot serve
  golembot serve -d ./my-bot -p 8080 -t my-secret
  GOLEM_TOKEN=my-secret golembot serve --host 127.0.0.1
\b
Then:
  curl -N -X POST http://127.0.0.1:3000/chat -H 'Content-Type: application/json' \\
       -H 'Authorization: Bearer my-secret' -d '{"message":"hello"}'
\b
Precedence: port  --port > GOLEM_PORT > gateway.port > 3000
            token --token > GOLEM_TOKEN > gateway.token (none: open to local use only)
            host  --host > gateway.host > 127.0.0.1
""")
@DIR_OPTION
@click.option("-p", "--port", type=PORT, default=None, help="Port to listen on.")
@click.option("-t", "--token", default=None, help="Bearer token required by the API.")
@click.option("--host", default=None, help="Address to bind.")
@click.option("--api-key", default=None, help="API key for the engine.")
def serve(dir, port, token, host, api_key):
    """HTTP API only (POST /chat as SSE, /reset, /abort, /health): no IM, no scheduler."""
    load_env(dir)
    config = load_config_or_fail(dir)
    port, token, host = resolve_listen(config, port, token, host)
    assistant = assistant_from_config(dir, config, api_key)
    warning = engine_warning(config["engine"])
    if warning:
        click.echo(warning, err=True)
    from .server import start_server
    try:
        start_server(assistant, port=port, token=token, hostname=host)
    except OSError as exc:
        raise Failure(listen_error(exc, host, port)) from exc


def listen_error(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"Cannot listen on {host}:{port}: the port is already in use "
                "(choose another with -p)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"Cannot listen on {host}:{port}: no such address on this machine (check --host)"
    if exc.errno == errno.EACCES:
        return f"Cannot listen on {host}:{port}: permission denied (ports below 1024 need root)"
    return f"Cannot listen on {host}:{port}: {exc.strerror or exc}"


@main.command(epilog="""\b
Examples:
  golembot gateway
  golembot gateway -d ./my-bot -p 3000 -t my-secret --verbose
\b
Serves the HTTP API and the dashboard (http://127.0.0.1:3000/), connects the IM
channels of golem.yaml and runs its scheduled tasks. SIGINT/SIGTERM shut it down.
Precedence of port, token and host as for `golembot serve`.
""")
@DIR_OPTION
@click.option("-p", "--port", type=PORT, default=None, help="Port to listen on.")
@click.option("-t", "--token", default=None, help="Bearer token required by the API.")
@click.option("--host", default=None, help="Address to bind.")
@click.option("--api-key", default=None, help="API key for the engine.")
@click.option("--verbose", is_flag=True, help="Log channel traffic and scheduler events.")
def gateway(dir, port, token, host, api_key, verbose):
    """HTTP API + dashboard + IM channels + scheduled tasks."""
    load_env(dir)
    config = load_config_or_fail(dir)
    port, token, host = resolve_listen(config, port, token, host)
    try:
        from .gateway import run_gateway
    except ImportError as exc:
        raise Failure(f"The gateway is not available in this installation ({exc})") from exc
    warning = engine_warning(config["engine"])
    if warning:
        click.echo(warning, err=True)
    try:
        code = run_gateway(dir, port=port, token=token, host=host, api_key=api_key,
                           verbose=verbose)
    except OSError as exc:
        raise Failure(listen_error(exc, host, port)) from exc
    sys.exit(code or 0)


# -- status -------------------------------------------------------------------------------------

@main.command(epilog="""\b
Examples:
  golembot status
  golembot status -d ./my-bot --json
""")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="One line of JSON (for scripts and agents).")
def status(dir, as_json):
    """Show the assistant's configuration (read from golem.yaml, not from a running process)."""
    load_env(dir)
    try:
        info = status_info(dir)
    except Exception as exc:
        if os.environ.get("GOLEMBOT_DEBUG"):
            raise
        message = str(exc) or exc.__class__.__name__
        if as_json:
            click.echo(json.dumps({"error": message}, ensure_ascii=False))
        else:
            click.echo(f"❌ Failed to read assistant status: {message}", err=True)
            click.echo(STATUS_HINT, err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False))
        return
    gw = info["gateway"]
    rows = [("Name:", info["name"]), ("Engine:", info["engine"])]
    if info["model"]:
        rows.append(("Model:", info["model"]))
    rows += [("Skills:", ", ".join(s["name"] for s in info["skills"]) or "(none)"),
             ("Sessions:", str(info["sessions"])),
             ("Channels:", ", ".join(info["channels"]) or "(none)")]
    if gw:
        auth = ", auth enabled" if gw["authEnabled"] else ""
        rows.append(("Gateway:", f"port {gw['port']}{auth}"))
    rows.append(("Directory:", info["directory"]))
    click.echo()
    click.echo("🤖 GolemBot Assistant Status")
    click.echo()
    for label, value in rows:
        click.echo(f"   {label:<12}{value}")
    click.echo()


def status_info(dir: str) -> dict:
    from .files import read_json
    from .workspace import scan_skills
    if not os.path.isfile(os.path.join(dir, "golem.yaml")):
        raise FileNotFoundError(f"golem.yaml not found in {os.path.abspath(dir)}")
    config = load_config_or_fail(dir)
    sessions = read_json(os.path.join(dir, ".golem", "sessions.json"), {})
    channels = config.get("channels") if isinstance(config.get("channels"), dict) else {}
    gw = config.get("gateway")
    gateway_info = None
    if isinstance(gw, dict):
        gateway_info = {"port": int(gw.get("port") or DEFAULT_PORT),
                        "authEnabled": bool(gw.get("token"))}
    return {"name": config["name"], "engine": config["engine"],
            "model": config.get("model") or None,
            "skills": [{"name": s["name"], "description": s.get("description", "")}
                       for s in scan_skills(dir)],
            "sessions": len(sessions) if isinstance(sessions, dict) else 0,
            "channels": [name for name, value in channels.items() if value],
            "gateway": gateway_info, "directory": os.path.abspath(dir)}


# -- doctor -------------------------------------------------------------------------------------

@main.command(epilog="""\b
Examples:
  golembot doctor
  golembot doctor -d ./my-bot
\b
Exit code 0 when every check passes, 1 otherwise. Keys are never printed,
only the names of the variables that hold them.
""")
@DIR_OPTION
def doctor(dir):
    """Check Python, golem.yaml, the engine CLI, API keys and skills."""
    load_env(dir)
    checks = doctor_checks(dir)
    click.echo()
    click.echo(bold("GolemBot Doctor"))
    click.echo()
    for ok, name, detail in checks:
        mark = paint("✓", "32") if ok else paint("✗", "31")
        click.echo(f"  {mark} {name}: {detail}")
    click.echo()
    if not all(ok for ok, _, _ in checks):
        sys.exit(1)


GENERIC_KEYS = ["ANTHROPIC_API_KEY", "CURSOR_API_KEY", "OPENROUTER_API_KEY", "OPENAI_API_KEY"]
AUTH_FILES = {
    "codex": ("~/.codex/auth.json", "ChatGPT OAuth (~/.codex/auth.json)"),
    "claude-code": ("~/.claude/.credentials.json", "Claude login (~/.claude/.credentials.json)"),
    "opencode": ("~/.local/share/opencode/auth.json",
                 "OpenCode auth (~/.local/share/opencode/auth.json)"),
}
ENGINE_KEYS = {
    "codex": ["CODEX_API_KEY", "OPENAI_API_KEY"],
    "claude-code": ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"],
    "cursor": ["CURSOR_API_KEY"],
    "opencode": ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENROUTER_API_KEY"],
}
AUTH_FIXES = {
    "codex": "none — run `codex login` or set CODEX_API_KEY",
    "claude-code": "none — run `claude auth login` or set ANTHROPIC_API_KEY",
    "cursor": "none — run `agent login` or set CURSOR_API_KEY",
    "opencode": "none — run `opencode auth login` or set OPENROUTER_API_KEY",
}


def doctor_checks(dir: str) -> list[tuple[bool, str, str]]:
    """``(ok, name, detail)`` per check; a failed detail says how to fix it. Never shows a key."""
    checks = []
    version = ".".join(str(p) for p in sys.version_info[:3])
    checks.append((sys.version_info >= (3, 11), "Python >= 3.11", f"v{version}"))

    config = None
    try:
        from .config import load_config
        if not os.path.isfile(os.path.join(dir, "golem.yaml")):
            checks.append((False, "golem.yaml", "not found — run golembot init"))
        else:
            config = load_config(dir)
            checks.append((True, "golem.yaml", f"engine={config['engine']}, name={config['name']}"))
    except Exception as exc:
        checks.append((False, "golem.yaml", f"invalid — {exc}"))
        config = _raw_config(dir)  # still check what can be checked
    engine = config.get("engine") if config else None

    if engine in ENGINE_BINARIES:
        checks.append(_engine_binary_check(engine))
    checks.append(_auth_check(engine, config))
    checks.append(_skills_check(dir))
    if config:
        checks += _provider_checks(engine, config)
    return checks


def _raw_config(dir: str) -> dict | None:
    """golem.yaml as written (placeholders unresolved), when it is at least a YAML mapping."""
    try:
        import yaml
        with open(os.path.join(dir, "golem.yaml"), encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except Exception:
        return None
    return data if isinstance(data, dict) else None


def _engine_binary_check(engine: str) -> tuple[bool, str, str]:
    from .engines import get_engine
    impl = get_engine(engine)
    name = f"Engine CLI ({impl.binary})"
    try:
        path = impl.find_binary()
    except Exception:
        hint = f" ({impl.install_hint})" if impl.install_hint else ""
        return False, name, f"not found — install {impl.binary}{hint}"
    on_path = shutil.which(impl.binary) == path
    return True, name, "found on PATH" if on_path else f"found at {path}"


def _auth_check(engine, config) -> tuple[bool, str, str]:
    name = "API key / auth"
    keys = ENGINE_KEYS.get(engine, GENERIC_KEYS)
    found = [k for k in keys if os.environ.get(k)]
    if found:
        return True, name, ", ".join(found)
    if engine in AUTH_FILES:
        path, label = AUTH_FILES[engine]
        if os.path.isfile(os.path.expanduser(path)):
            return True, name, label
    provider = (config or {}).get("provider")
    key = provider.get("apiKey") if isinstance(provider, dict) else None
    if key and "${" not in str(key):
        return True, name, "provider apiKey in golem.yaml"
    if engine == "claude-code" and (config or {}).get("oauthToken"):
        return True, name, "oauthToken in golem.yaml"
    return False, name, AUTH_FIXES.get(
        engine, "none set (set ANTHROPIC_API_KEY, CURSOR_API_KEY, or OPENROUTER_API_KEY)")


def _skills_check(dir: str) -> tuple[bool, str, str]:
    try:
        from .workspace import scan_skills, validate_skill
        names = sorted(s["name"] for s in scan_skills(dir))
        skills_dir = os.path.join(dir, "skills")
        problems = []
        if os.path.isdir(skills_dir):
            for entry in sorted(os.listdir(skills_dir)):
                path = os.path.join(skills_dir, entry)
                if not entry.startswith(".") and os.path.isdir(path):
                    problems += [(entry, p) for p in validate_skill(path)]
    except Exception:
        return False, "Skills", "could not scan skills directory"
    if problems:
        first = problems[0][0]
        return False, "Skills", ("; ".join(p for _, p in problems)
                                 + f" — fix it, or run golembot skill remove {first}")
    if not names:
        return False, "Skills", "none — run golembot init or add skills"
    return True, "Skills", ", ".join(names)


def _provider_checks(engine, config: dict) -> list:
    checks = []
    provider = config.get("provider")
    if isinstance(provider, dict):
        checks.append(_key_check("Provider apiKey", provider.get("apiKey"), "provider"))
        fallback = provider.get("fallback")
        if isinstance(fallback, dict):
            checks.append(_key_check("Provider fallback apiKey", fallback.get("apiKey"),
                                     "provider.fallback"))
        if engine == "codex" and any(provider.get(k) for k in
                                     ("baseUrl", "codexProfile", "codexProviderId")):
            base = str(provider.get("baseUrl") or "")
            bad = any(p in base for p in ("/chat/completions", "/messages", "api.anthropic.com"))
            detail = ("Codex needs an OpenAI Responses API endpoint — point baseUrl at one"
                      if bad else "Responses API" + (" (codexWireApi=responses)"
                                                     if provider.get("codexWireApi") == "responses"
                                                     else ""))
            checks.append((not bad, "Codex provider compatibility", detail))
    token = config.get("oauthToken")
    if engine == "claude-code" and token:
        ok = "${" not in str(token)
        checks.append((ok, "Claude Max OAuth token", "set" if ok else
                       f"unresolved placeholder — set the env var ({_placeholders(token)})"))
    return checks


def _placeholders(value) -> str:
    """Only the ``${VAR}`` parts of a value: they name the variable and reveal no secret."""
    return ", ".join(re.findall(r"\$\{[^}]*\}", str(value))) or "${…}"


def _key_check(name: str, value, where: str) -> tuple[bool, str, str]:
    if value and "${" in str(value):
        return False, name, f"unresolved placeholder — set the env var ({_placeholders(value)})"
    if not value:
        return False, name, f"not set — add apiKey to the {where} block in golem.yaml"
    return True, name, "set"


# -- skill --------------------------------------------------------------------------------------

@main.group(cls=GolemGroup, epilog="""\b
Examples:
  golembot skill list
  golembot skill add ./my-skills/report-writer
  golembot skill add builtin:task-manager
  golembot skill remove report-writer
""")
def skill():
    """List, add and remove the assistant's skills (folders under skills/ with a SKILL.md)."""


@skill.command("list", epilog="""\b
Examples:
  golembot skill list
  golembot skill list -d ./my-bot --json
""")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="A JSON array of {name, description, type}.")
def skill_list(dir, as_json):
    """List installed skills."""
    from .workspace import scan_skills
    skills = sorted(scan_skills(dir), key=lambda s: s["name"])
    if as_json:
        out = []
        for s in skills:
            item = {"name": s["name"], "description": s.get("description", "")}
            if s.get("type"):
                item["type"] = s["type"]
            out.append(item)
        click.echo(json.dumps(out, ensure_ascii=False))
        return
    if not skills:
        click.echo("(no skills installed)")
        return
    click.echo()
    click.echo(f"Installed skills ({len(skills)}):")
    click.echo()
    if not any(s.get("type") for s in skills):
        for s in skills:
            click.echo(f"  {s['name']:<20} {dim(s.get('description', ''))}".rstrip())
    else:
        groups: dict = {}
        for s in skills:
            groups.setdefault(s.get("type") or "other", []).append(s)
        for kind, members in groups.items():
            click.echo(f"  {kind}:")
            for s in members:
                click.echo(f"    {s['name']:<18} {dim(s.get('description', ''))}".rstrip())
    click.echo()


@skill.command("add", epilog="""\b
Examples:
  golembot skill add ./report-writer          # a folder containing SKILL.md
  golembot skill add builtin:escalation       # a skill shipped with golembot
  golembot skill add builtin:kb-guide -d ./my-bot --json
""")
@DIR_OPTION
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help='Print {"ok":true,"name":...}.')
def skill_add(dir, source, as_json):
    """Install a skill from a local folder or builtin:<name>."""
    from .workspace import install_skill
    try:
        installed = install_skill(dir, source)
    except Exception as exc:
        if os.environ.get("GOLEMBOT_DEBUG"):
            raise
        message = str(exc) or exc.__class__.__name__
        if as_json:
            click.echo(json.dumps({"ok": False, "error": message}, ensure_ascii=False))
            sys.exit(1)
        raise Failure(message) from exc
    name = _installed_name(installed, source)
    if as_json:
        click.echo(json.dumps({"ok": True, "name": name}, ensure_ascii=False))
    else:
        click.echo(f"✅ Skill added: {name}")


def _installed_name(installed, source: str) -> str:
    if isinstance(installed, dict) and installed.get("name"):
        return installed["name"]
    if isinstance(installed, str) and installed:
        return os.path.basename(installed.rstrip("/\\")) if os.sep in installed else installed
    return os.path.basename(source.split(":", 1)[-1].rstrip("/\\"))


@skill.command("remove", epilog="""\b
Examples:
  golembot skill remove report-writer
  golembot skill remove kb-guide -d ./my-bot
""")
@DIR_OPTION
@click.argument("name")
def skill_remove(dir, name):
    """Delete skills/<name> and regenerate AGENTS.md."""
    from .workspace import remove_skill
    try:
        remove_skill(dir, name)
    except Exception as exc:
        if os.environ.get("GOLEMBOT_DEBUG"):
            raise
        raise Failure(str(exc) or exc.__class__.__name__) from exc
    click.echo(f"✅ Skill removed: {name}")


if __name__ == "__main__":  # python -m golembot.cli
    main(prog_name="golembot")
