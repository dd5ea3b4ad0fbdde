"""``/cron list|run|enable|disable|del|history`` — the same answers in the REPL, IM and HTTP.

It works in every mode (decisions.md): list, enable, disable, del and history read and write the
task store; ``run`` runs the task's prompt at once in this process (delivered only when this
process runs channels). With a running scheduler, changes re-arm its jobs at once; a scheduler
in another process picks them up from the store.
"""
from __future__ import annotations

USAGE = "Usage: /cron [list|run|enable|disable|del|history] [id]"
HISTORY_LIMIT = 10


def _answer(text: str, **data) -> dict:
    return {"type": "command", **data, "text": text}


def _failure(text: str, **data) -> dict:
    return {"type": "command", **data, "error": text, "text": text}


def run_cron(args_str: str, assistant, scheduler=None) -> dict:
    """Execute ``/cron <args_str>``; always a command dict, never raises."""
    if scheduler is None:
        from .service import TaskScheduler
        scheduler = TaskScheduler(assistant, assistant.dir)  # not started: store only
    parts = (args_str or "").split()
    sub = parts[0].lower() if parts else "list"
    target = " ".join(parts[1:])
    handler = _SUBCOMMANDS.get(sub)
    if handler is None:
        return _failure(f"Unknown subcommand: {sub}\n{USAGE}")
    try:
        return handler(scheduler, target, sub)
    except Exception as exc:  # noqa: BLE001 - a locked or broken store is an answer, not a crash
        return _failure(f"Error: {exc or exc.__class__.__name__}")


# -- sub-commands -------------------------------------------------------------------------------
def _list(scheduler, target, sub) -> dict:
    tasks = scheduler.list_tasks()
    data = [{"id": t["id"], "name": t.get("name", ""), "schedule": t.get("schedule", ""),
             "enabled": t.get("enabled", True) is not False, "lastRun": t.get("lastRun"),
             "lastStatus": t.get("lastStatus")} for t in tasks]
    if not data:
        return _answer("No scheduled tasks.", tasks=[])
    lines = [f"Scheduled tasks ({len(data)}):"] + [list_row(t) for t in data]
    return _answer("\n".join(lines), tasks=data)


def list_row(task: dict) -> str:
    if task.get("lastRun"):
        last = f"{task.get('lastStatus') or '?'} @ {_shown_time(task['lastRun'])}"
    else:
        last = "never"
    state = "ON " if task.get("enabled", True) is not False else "OFF"
    return (f"  {task['id']}  {state}  {task.get('schedule', ''):<18}  "
            f"{task.get('name', ''):<20}  last: {last}")


def _run(scheduler, target, sub) -> dict:
    if not target:
        return _failure("Usage: /cron run <id>")
    record = scheduler.resolve(target)
    if record is None:
        return _failure(f"Task not found: {target}")
    entry = scheduler.run_now(record["id"])
    if entry.get("status") == "error":
        return _failure(f"Task {record['id']} failed: {entry.get('error')}", taskId=record["id"])
    reply = entry.get("reply", "")
    return _answer(reply, taskId=record["id"], reply=reply)


def _set_enabled(scheduler, target, sub) -> dict:
    if not target:
        return _failure(f"Usage: /cron {sub} <id>")
    record = scheduler.resolve(target)
    if record is None:
        return _failure(f"Task not found: {target}")
    enabled = sub == "enable"
    scheduler.set_enabled(record["id"], enabled)
    return _answer(f"Task {record['id']} {sub}d.", taskId=record["id"], enabled=enabled)


def _delete(scheduler, target, sub) -> dict:
    if not target:
        return _failure("Usage: /cron del <id>")
    record = scheduler.resolve(target)
    if record is None:
        return _failure(f"Task not found: {target}")
    scheduler.remove(record["id"])
    return _answer(f"Task {record['id']} deleted.", taskId=record["id"], deleted=True)


def _history(scheduler, target, sub) -> dict:
    if not target:
        return _failure("Usage: /cron history <id>")
    record = scheduler.resolve(target)
    task_id = record["id"] if record else target  # history outlives a deleted task
    runs = scheduler.history(task_id, limit=HISTORY_LIMIT)
    data = [{"startedAt": r.get("startedAt"), "status": r.get("status"),
             "durationMs": r.get("durationMs"), "reply": r.get("reply", "")} for r in runs]
    if not runs:
        return _answer(f"No history for task {task_id}.", taskId=task_id, history=[])
    lines = [f"History for task {task_id} (last {len(runs)}):"] + [history_row(r) for r in runs]
    return _answer("\n".join(lines), taskId=task_id, history=data)


def history_row(run: dict) -> str:
    preview = run.get("reply") or ""
    if run.get("status") != "success" and run.get("error"):
        preview = f"error: {run['error']}"  # the original hid why a run failed
    if len(preview) > 80:
        preview = preview[:80] + "…"
    return (f"  {_shown_time(run.get('startedAt') or '')}  {run.get('status', ''):<7}  "
            f"{duration(run.get('durationMs')):<8}  {preview}").rstrip()


def duration(ms) -> str:
    if not isinstance(ms, (int, float)):
        return "?"
    return f"{int(ms)}ms" if ms < 1000 else f"{ms / 1000:.1f}s"


def _shown_time(iso: str) -> str:
    """UTC as stored, ``T`` → space, to the second."""
    return str(iso).replace("T", " ")[:19]


_SUBCOMMANDS = {
    "list": _list, "run": _run, "enable": _set_enabled, "disable": _set_enabled,
    "del": _delete, "delete": _delete, "rm": _delete, "history": _history,
}
