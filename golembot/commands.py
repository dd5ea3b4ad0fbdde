"""Slash commands (``/help``, ``/status``, ``/engine`` …), written once for every front-end.

The REPL prints ``result["text"]``, IM channels send it as a reply, and ``POST /chat`` answers the
whole dict as JSON. So every command is a plain function returning data plus a text, and
:func:`execute` never raises: a failure is a result with an ``"error"`` field, because a broken
config or a missing scheduler must not turn a chat message into a 500 or a dead REPL.

A message is a command only when its first word is one of :data:`COMMANDS`; anything else that
starts with ``/`` (``/path/to/file is broken``) is an ordinary message for the agent.
"""
from __future__ import annotations

ENGINES = ["cursor", "claude-code", "opencode", "codex"]

# Order and wording are the ones /help prints.
COMMANDS = {
    "/help": "Show available commands",
    "/status": "Show current engine, model, and skills",
    "/engine": "Show or switch engine — /engine [name]",
    "/model": "Show, switch, or list models — /model [list|name]",
    "/skill": "List installed skills",
    "/reset": "Clear the current session and history",
    "/stop": "Stop the current running task",
    "/cron": "Manage scheduled tasks — /cron [list|run|enable|disable|del|history] [id]",
}

CRON_UNAVAILABLE = "Scheduled tasks are not available: golembot.scheduler.cron_command is missing."


def parse(message) -> tuple[str, list[str], str] | None:
    """``(name, args, rest)`` for a known command, else ``None``.

    The name is lower-cased, the arguments keep their case; ``rest`` is the raw text after the
    name (``/cron`` needs it: task names may contain spaces).
    """
    if not isinstance(message, str):
        return None
    text = message.strip()
    if not text.startswith("/"):
        return None
    parts = text.split(maxsplit=1)
    name = parts[0].lower()
    if name not in COMMANDS:
        return None
    rest = parts[1].strip() if len(parts) > 1 else ""
    return name, rest.split(), rest


def is_command(message) -> bool:
    """True when the first word of ``message`` is a known slash command."""
    return parse(message) is not None


def result(text: str, **data) -> dict:
    """The one shape of a command answer: data keys first, ``text`` last."""
    return {"type": "command", **data, "text": text}


def failure(message: str, text: str | None = None, **data) -> dict:
    return {"type": "command", **data, "error": message, "text": text or f"Error: {message}"}


def execute(assistant, message: str, session_key: str = "default", context=None) -> dict:
    """Run one slash command for ``assistant``; always returns a dict, never raises.

    ``context`` may carry ``{"scheduler": TaskScheduler | None, "channel": name | None}``.
    """
    parsed = parse(message)
    if parsed is None:
        return failure("not_a_command", f"Not a command: {str(message).strip()[:80]}")
    name, args, rest = parsed
    handler = _HANDLERS[name]
    try:
        return handler(assistant, args, rest, session_key or "default", context or {})
    except Exception as exc:  # a broken golem.yaml, a failing models API …
        msg = str(exc) or exc.__class__.__name__
        return failure(msg)


# -- handlers ---------------------------------------------------------------------------------

def _help(assistant, args, rest, key, context) -> dict:
    lines = ["Available commands:"]
    lines += [f"  {cmd:<12} {desc}" for cmd, desc in COMMANDS.items()]
    return result("\n".join(lines), commands=dict(COMMANDS))


def _skills_data(skills) -> list:
    return [{"name": s.get("name", ""), "description": s.get("description", "")} for s in skills]


def _channels(config) -> list:
    channels = config.get("channels")
    if not isinstance(channels, dict):
        return []
    return [name for name, value in channels.items() if value]


def _status(assistant, args, rest, key, context) -> dict:
    status = assistant.get_status()
    config = status.get("config") or {}
    skills = _skills_data(status.get("skills") or [])
    engine, model = status.get("engine"), status.get("model") or None
    channels = _channels(config)
    running = bool(assistant.is_running(key))
    lines = [f"{'Name:':<11}{config.get('name', '')}", f"{'Engine:':<11}{engine}"]
    if model:
        lines.append(f"{'Model:':<11}{model}")
    names = ", ".join(s["name"] for s in skills) or "(none)"
    lines.append(f"{'Skills:':<11}{names}")
    if channels:
        lines.append(f"{'Channels:':<11}{', '.join(channels)}")
    lines.append(f"{'Session:':<11}{key} ({'running' if running else 'idle'})")
    return result("\n".join(lines), name=config.get("name"), engine=engine, model=model,
                  skills=skills, channels=channels, session=key, running=running)


def _engine(assistant, args, rest, key, context) -> dict:
    status = assistant.get_status()
    current = status.get("engine")
    if not args:
        text = (f"Current engine: {current}\nAvailable: {', '.join(ENGINES)}\n"
                "Switch: /engine <name>")
        return result(text, current=current, available=list(ENGINES))
    wanted = args[0].lower()
    if wanted not in ENGINES:
        return failure("unknown_engine",
                       f"Unknown engine: {wanted}\nAvailable: {', '.join(ENGINES)}",
                       available=list(ENGINES))
    # A model id of one engine means nothing to another, so switching drops it.
    model_reset = bool(status.get("model"))
    assistant.set_engine(wanted, clear_model=model_reset)
    text = f"Engine switched to: {wanted} (takes effect on next message)"
    if model_reset:
        text += "\nModel reset to engine default (formats differ between engines)"
    return result(text, engine=wanted, modelReset=model_reset)


def _model(assistant, args, rest, key, context) -> dict:
    if args and len(args) == 1 and args[0].lower() == "list":
        engine = assistant.get_status().get("engine")
        models = list(assistant.list_models() or [])
        if models:
            text = f"Available models for {engine} ({len(models)}):\n" + "\n".join(
                f"  {m}" for m in models)
        else:
            text = f"No models found for engine: {engine}"
        return result(text, engine=engine, models=models)
    if args:
        model = " ".join(args)
        assistant.set_model(model)
        return result(f"Model switched to: {model} (takes effect on next message)", model=model)
    status = assistant.get_status()
    engine, model = status.get("engine"), status.get("model") or None
    hint = "Switch: /model <name>\nList available: /model list"
    if model:
        text = f"Current model: {model} (engine: {engine})\n{hint}"
    else:
        text = f"No model override (using {engine} default)\n{hint}"
    return result(text, current=model, engine=engine)


def _skill(assistant, args, rest, key, context) -> dict:
    skills = _skills_data(assistant.get_status().get("skills") or [])
    if not skills:
        return result("No skills installed.", skills=[])
    lines = [f"Installed skills ({len(skills)}):"]
    lines += [f"  {s['name']:<20} {s['description']}".rstrip() for s in skills]
    return result("\n".join(lines), skills=skills)


def _reset(assistant, args, rest, key, context) -> dict:
    assistant.reset_session(key)
    return result("Session and history reset.", ok=True, reset=True)


def _stop(assistant, args, rest, key, context) -> dict:
    stopped = bool(assistant.cancel(key))
    text = "Stopped the current task." if stopped else "No running task to stop."
    return result(text, ok=True, stopped=stopped)


def _cron(assistant, args, rest, key, context) -> dict:
    try:
        from .scheduler.cron_command import run_cron
    except ModuleNotFoundError as exc:
        if exc.name not in ("golembot.scheduler", "golembot.scheduler.cron_command"):
            raise
        return failure("cron_unavailable", CRON_UNAVAILABLE)
    answer = run_cron(rest, assistant, scheduler=context.get("scheduler"))
    if not isinstance(answer, dict):
        return result(str(answer))
    answer = {k: v for k, v in answer.items() if k not in ("type", "text")} | {
        "text": str(answer.get("text", ""))}
    return {"type": "command", **answer}


_HANDLERS = {
    "/help": _help, "/status": _status, "/engine": _engine, "/model": _model,
    "/skill": _skill, "/reset": _reset, "/stop": _stop, "/cron": _cron,
}
