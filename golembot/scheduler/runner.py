"""One run of a task: prompt the agent, deliver the reply, record the run.

A run uses the persistent session ``task:<id>``, so the agent keeps its context from run to run.
A task never overlaps itself, even across gunicorn workers: every run holds an exclusive
``flock`` on ``.golem/locks/task-<id>.lock``. A scheduled tick that finds the task still running
is skipped and the skip is written to the history (so a slow task shows up, instead of silently
running less often). A manual run ("Run now", ``/cron run``) waits for the running one instead.

The reply goes to ``target.channel`` through ``deliver(channel, chat_id, text)``; without a
``chatId`` to every chat the channel knows. A delivery failure makes the run an error — it is
recorded, never silent. Silent replies (``[PASS]``, ``[SKIP]``) and empty ones are not sent.
"""
from __future__ import annotations

import logging
import os
import time

from .. import events as ev
from ..files import safe_key
from ..sessions import iso_now
from . import history
from .store import wait_for_flock

log = logging.getLogger("golembot.scheduler")

SKIPPED_MESSAGE = "Skipped: the previous run of this task was still in progress"
NO_CHANNELS = "not delivered: no channel is running in this process"
DEFAULT_WAIT_S = 600.0


def session_key(task_id: str) -> str:
    return f"task:{task_id}"


class TaskRunner:
    """Runs tasks of one assistant directory. ``deliver``/``list_chats`` may be ``None``
    (``/cron run`` outside the gateway: the run happens, nothing is sent)."""

    def __init__(self, assistant, store, deliver=None, list_chats=None):
        self.assistant = assistant
        self.store = store
        self.dir = store.dir
        self.deliver = deliver
        self.list_chats = list_chats
        self.locks_dir = os.path.join(store.golem_dir, "locks")

    # -- entry points -----------------------------------------------------------------------------
    def run(self, task: dict, scheduled_for=None) -> dict:
        """Run ``task`` and return its history entry (``status`` success, error or skipped).

        ``scheduled_for`` (a datetime) marks a scheduled tick: it is skipped when the task is
        running. A manual run waits for the running one (bounded by the assistant's timeout).
        """
        tid = task["id"]
        fd = self._open_lock(tid)
        try:
            wait = 0 if scheduled_for is not None else self._wait_s()
            try:
                got = wait_for_flock(fd, wait, f"Task {tid} is still running; try again later")
            except TimeoutError as exc:
                return self._finish(task, self._entry(task, scheduled_for), str(exc), record=False)
            if not got:
                return self.record_skip(task, scheduled_for)
            return self._run_locked(task, scheduled_for)
        finally:
            os.close(fd)

    def record_skip(self, task: dict, scheduled_for=None) -> dict:
        """History line for a tick that found the task still running."""
        entry = self._entry(task, scheduled_for)
        entry.update(completedAt=entry["startedAt"], status="skipped", reply="", durationMs=0,
                     error=SKIPPED_MESSAGE)
        self._append(entry)
        log.info("[task:%s] %s SKIPPED: still running", task["id"], task.get("name", ""))
        return entry

    # -- the run ------------------------------------------------------------------------------------
    def _run_locked(self, task: dict, scheduled_for) -> dict:
        entry = self._entry(task, scheduled_for)
        started = time.monotonic()
        reply, error, done = self._ask(task)
        duration = done.get("durationMs")
        if not isinstance(duration, int):
            duration = int((time.monotonic() - started) * 1000)
        entry["durationMs"] = duration
        if isinstance(done.get("costUsd"), (int, float)):
            entry["costUsd"] = done["costUsd"]
        entry["reply"] = reply.strip()
        delivery_error, note = self._deliver(task, reply.strip())
        if note:
            entry["delivery"] = note
        return self._finish(task, entry, error or delivery_error)

    def _ask(self, task: dict) -> tuple[str, str | None, dict]:
        """``(reply, error, metrics)`` of one agent turn on the task's own session."""
        reply, partial, error, metrics = "", None, None, {}
        try:
            for event in self.assistant.chat(task.get("prompt") or "",
                                              session_key=session_key(task["id"])):
                kind = event.get("type")
                if kind == "text":
                    reply += event.get("content", "")
                elif kind == "done":
                    metrics.update({k: event[k] for k in ("durationMs", "costUsd") if k in event})
                elif kind == "completion":
                    metrics.update({k: event[k] for k in ("durationMs", "costUsd") if k in event})
                    status = event.get("status")
                    if status == "completed" and not reply.strip():
                        reply = event.get("finalText") or ""
                    elif status == "failed":
                        error = event.get("message") or "Agent error"
                    elif status == "aborted":
                        error = ("Task stopped by user" if event.get("reason") == "user"
                                 else "Task timed out")
                    if status in ("failed", "aborted"):
                        partial = event.get("partialText")
        except Exception as exc:  # noqa: BLE001 - a run failure is recorded, never raised
            error = str(exc) or exc.__class__.__name__
        if error and not reply.strip() and partial:
            reply = partial
        return reply, error, metrics

    def _finish(self, task: dict, entry: dict, error: str | None, record: bool = True) -> dict:
        entry["completedAt"] = iso_now()
        entry["status"] = "error" if error else "success"
        entry.setdefault("durationMs", 0)
        if error:
            entry["reply"] = ""  # as the original: the reply field is empty for failed runs
            entry["error"] = error
        else:
            entry.setdefault("reply", "")
        entry = _ordered(entry)
        if record:
            self._append(entry)
            try:
                self.store.record_run(task["id"], entry["completedAt"], error)
            except (OSError, TimeoutError) as exc:
                log.warning("[task:%s] could not update the task store: %s", task["id"], exc)
        if error:
            log.info("[task:%s] %s FAILED (%sms): %s", task["id"], task.get("name", ""),
                     entry["durationMs"], error)
        else:
            cost = f" ${entry['costUsd']:.4f}" if "costUsd" in entry else ""
            log.info("[task:%s] %s OK (%sms%s) %s chars", task["id"], task.get("name", ""),
                     entry["durationMs"], cost, len(entry["reply"]))
        return entry

    # -- delivery -------------------------------------------------------------------------------
    def _deliver(self, task: dict, text: str) -> tuple[str | None, str | None]:
        """``(error, note)``. Error: the send failed; note: why nothing was sent."""
        target = task.get("target")
        if not isinstance(target, dict) or not target.get("channel"):
            return None, None
        if not text or text in ev.SILENT_MARKERS:
            return None, "not delivered: nothing to send"
        channel = target["channel"]
        if self.deliver is None:
            return None, NO_CHANNELS
        chat = target.get("chatId")
        if chat:
            chats = [str(chat)]
        else:
            chats = self._known_chats(channel)
            if chats is None:
                return None, f'not delivered: channel "{channel}" cannot list its chats'
            if not chats:
                return None, f'not delivered: channel "{channel}" knows no chats yet'
        for chat_id in chats:  # in order; the first failure stops the broadcast
            try:
                self.deliver(channel, chat_id, text)
            except Exception as exc:  # noqa: BLE001 - recorded as the run's error
                reason = str(exc) or exc.__class__.__name__
                return f'Delivery to {channel}:{chat_id} failed: {reason}', None
        return None, None

    def _known_chats(self, channel: str):
        """Chat ids of ``channel`` (``list_chats``), or ``None`` when it cannot list them."""
        lister = self.list_chats
        if lister is None:
            owner = getattr(self.deliver, "__self__", None)  # e.g. Gateway.send
            adapter = (getattr(owner, "adapters", None) or {}).get(channel)
            fn = getattr(adapter, "list_chats", None)
            if not callable(fn):
                return None
            found = fn()
        else:
            found = lister(channel)
        if found is None:
            return None
        out = []
        for chat in found:
            chat_id = chat.get("chatId") if isinstance(chat, dict) else chat
            if chat_id not in (None, ""):
                out.append(str(chat_id))
        return out

    # -- helpers --------------------------------------------------------------------------------
    def _entry(self, task: dict, scheduled_for) -> dict:
        entry = {"taskId": task["id"], "taskName": task.get("name", ""), "startedAt": iso_now(),
                 "trigger": "schedule" if scheduled_for is not None else "manual"}
        if scheduled_for is not None:
            entry["scheduledFor"] = _iso(scheduled_for)
        return entry

    def _append(self, entry: dict) -> None:
        try:
            history.append(self.dir, entry)
        except OSError as exc:
            log.warning("[task:%s] could not write the history: %s", entry["taskId"], exc)

    def _open_lock(self, task_id: str) -> int:
        os.makedirs(self.locks_dir, exist_ok=True)
        path = os.path.join(self.locks_dir, f"task-{safe_key(task_id)}.lock")
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def _wait_s(self) -> float:
        timeout = getattr(self.assistant, "timeout_s", None)
        if isinstance(timeout, (int, float)) and timeout > 0:
            return float(timeout) + 30
        return DEFAULT_WAIT_S + 30


_ORDER = ("taskId", "taskName", "startedAt", "completedAt", "status", "reply", "durationMs",
          "costUsd", "error", "trigger", "scheduledFor", "delivery")


def _ordered(entry: dict) -> dict:
    return {k: entry[k] for k in _ORDER if k in entry} | {
        k: v for k, v in entry.items() if k not in _ORDER}


def _iso(when) -> str:
    """A datetime as ISO UTC with milliseconds and ``Z`` (like every other time we store)."""
    import datetime as _dt
    if isinstance(when, str):
        return when
    t = when.astimezone(_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
