"""The task store ``.golem/tasks.json``: one JSON array of task records, the single source of truth.

Tasks come from golem.yaml ``tasks:`` (``createdBy: "config"``) and from the task API
(``createdBy: "api"``). Both live in this one file, which every gunicorn worker and the CLI may
read and write. So every read-modify-write holds an exclusive ``flock`` on ``.golem/tasks.lock``
and replaces the file atomically; readers never need the lock (they see the old or the new file).
``.golem/`` must be on a local filesystem (``flock`` is not reliable over NFS).
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import time

from ..files import atomic_write_json, read_json
from ..sessions import iso_now
from .schedules import ScheduleError, validate_schedule

log = logging.getLogger("golembot.scheduler")

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Fields a client may set (POST) or change (PATCH).
EDITABLE = ("name", "schedule", "prompt", "enabled", "target")
RUN_STATE = ("lastRun", "lastStatus", "lastError")
LOCK_TIMEOUT_S = 10.0


class TaskError(ValueError):
    """Bad task input; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class TaskNotFound(TaskError):
    def __init__(self, task_id: str):
        super().__init__(f"Task not found: {task_id}", 404)
        self.task_id = task_id


def new_id() -> str:
    """8 lowercase hex characters, as the original generates."""
    return secrets.token_hex(4)


# -- validation -------------------------------------------------------------------------------------
def validate_fields(fields: dict, *, partial: bool) -> dict:
    """The editable fields of ``fields``, checked; :class:`TaskError` on the first problem.

    ``partial`` (PATCH): only the given fields, unknown ones rejected; otherwise ``name``,
    ``schedule`` and ``prompt`` are required and unknown fields are ignored (POST).
    """
    if not isinstance(fields, dict):
        raise TaskError("Body must be a JSON object")
    if not partial:
        missing = [k for k in ("name", "schedule", "prompt") if not fields.get(k)]
        if missing:
            raise TaskError("Missing required fields: name, schedule, prompt")
    else:
        unknown = [k for k in fields if k not in EDITABLE and k != "id"]
        if unknown:
            raise TaskError(f"Unknown field: {unknown[0]} (allowed: {', '.join(EDITABLE)})")
    out = {}
    for key in ("name", "prompt"):
        if key in fields:
            value = fields[key]
            if not isinstance(value, str) or not value.strip():
                raise TaskError(f'"{key}" must be a non-empty string')
            out[key] = value
    if "name" in out and len(out["name"]) > 200:
        raise TaskError('"name" must be at most 200 characters')
    if "schedule" in fields:
        schedule = fields["schedule"]
        if not isinstance(schedule, str):
            raise TaskError('"schedule" must be a string')
        try:
            validate_schedule(schedule, out.get("name") or fields.get("name"))
        except ScheduleError as exc:
            raise TaskError(str(exc)) from None
        out["schedule"] = schedule.strip()
    if "enabled" in fields:
        if not isinstance(fields["enabled"], bool):
            raise TaskError('"enabled" must be true or false')
        out["enabled"] = fields["enabled"]
    if "target" in fields:
        out["target"] = _target(fields["target"], partial)
    return out


def _target(target, partial: bool):
    if target is None and partial:
        return None  # PATCH {"target": null} removes it
    if not isinstance(target, dict) or not isinstance(target.get("channel"), str) \
            or not target["channel"].strip():
        raise TaskError('"target" must be an object with a string "channel" and an optional '
                        'string "chatId"')
    out = {"channel": target["channel"]}
    chat = target.get("chatId")
    if chat is not None:
        if isinstance(chat, int) and not isinstance(chat, bool):
            chat = str(chat)
        if not isinstance(chat, str) or not chat:
            raise TaskError('"target.chatId" must be a non-empty string')
        out["chatId"] = chat
    extra = [k for k in target if k not in ("channel", "chatId")]
    if extra:
        raise TaskError(f'"target" has an unknown field: {extra[0]}')
    return out


def check_client_id(task_id) -> str:
    if not isinstance(task_id, str) or not ID_PATTERN.fullmatch(task_id):
        raise TaskError('"id" must match [A-Za-z0-9_-]{1,64}')
    return task_id


# -- the store ------------------------------------------------------------------------------------
class TaskStore:
    """Read and change ``<dir>/.golem/tasks.json``; every method re-reads the file."""

    def __init__(self, dir):
        self.dir = os.path.abspath(os.fspath(dir))
        self.golem_dir = os.path.join(self.dir, ".golem")
        self.path = os.path.join(self.golem_dir, "tasks.json")
        self.lock_path = os.path.join(self.golem_dir, "tasks.lock")

    # reading
    def load(self) -> list:
        """The records in store order; a missing, unreadable or non-array file reads as empty."""
        data = read_json(self.path, [])
        if not isinstance(data, list):
            return []
        return [r for r in data if isinstance(r, dict) and isinstance(r.get("id"), str)]

    def get(self, task_id: str) -> dict | None:
        return next((r for r in self.load() if r["id"] == task_id), None)

    def resolve(self, text: str) -> dict | None:
        """By exact id, else by exact name (``/cron run daily-standup``)."""
        records = self.load()
        return next((r for r in records if r["id"] == text), None) or next(
            (r for r in records if r.get("name") == text), None)

    def signature(self):
        """Changes when the file is replaced (mtime, size, inode): cheap change detection."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    # writing
    @contextlib.contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT_S):
        """Exclusive across processes and greenlets (each holder opens its own descriptor)."""
        os.makedirs(self.golem_dir, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            wait_for_flock(fd, timeout, "the task store is locked by another process")
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def mutate(self, change):
        """``change(records)`` edits the list in place under the lock; the result is saved."""
        with self.locked():
            records = self.load()
            result = change(records)
            atomic_write_json(self.path, records)
            return result

    def add(self, fields: dict, *, task_id=None, created_by="api") -> dict:
        """A new record from validated ``fields``; 409 on a duplicate id or name."""
        def change(records):
            tid = task_id or _unused_id(records)
            if any(r["id"] == tid for r in records):
                raise TaskError(f"Task id already exists: {tid}", 409)
            if any(r.get("name") == fields["name"] for r in records):
                raise TaskError(f"Task name already exists: {fields['name']}", 409)
            record = {"id": tid, "name": fields["name"], "schedule": fields["schedule"],
                      "prompt": fields["prompt"], "enabled": fields.get("enabled", True)}
            if fields.get("target"):
                record["target"] = fields["target"]
            record.update(createdAt=iso_now(), createdBy=created_by)
            records.append(record)
            return dict(record)
        return self.mutate(change)

    def update(self, task_id: str, fields: dict) -> dict:
        """Apply validated ``fields`` (``target: None`` removes the target)."""
        def change(records):
            record = _find(records, task_id)
            name = fields.get("name")
            if name is not None and any(r.get("name") == name and r is not record
                                        for r in records):
                raise TaskError(f"Task name already exists: {name}", 409)
            for key, value in fields.items():
                if key == "id":
                    continue
                if value is None:
                    record.pop(key, None)
                else:
                    record[key] = value
            return dict(record)
        return self.mutate(change)

    def remove(self, task_id: str) -> dict:
        def change(records):
            record = _find(records, task_id)
            records.remove(record)
            return record
        return self.mutate(change)

    def record_run(self, task_id: str, completed_at: str, error: str | None) -> None:
        """``lastRun``/``lastStatus``/``lastError`` after a run; a deleted task stays deleted."""
        def change(records):
            record = next((r for r in records if r["id"] == task_id), None)
            if record is None:
                return
            record["lastRun"] = completed_at
            record["lastStatus"] = "error" if error else "success"
            if error:
                record["lastError"] = error
            else:
                record.pop("lastError", None)
        self.mutate(change)

    def merge_config(self, tasks: list) -> list:
        """Merge golem.yaml ``tasks`` (scheduler.md §6.2); returns the merged store.

        Config records are matched by name: a match keeps its id, creation and run state and
        takes schedule, prompt, target and enabled from the yaml; config records no longer in
        the yaml are dropped; API-created records are kept as they are, after the config ones.
        """
        def change(records):
            owned = {r.get("name"): r for r in records if r.get("createdBy") == "config"}
            others = [r for r in records if r.get("createdBy") != "config"]
            taken = {r["id"] for r in others}
            merged = []
            for i, task in enumerate(tasks or []):
                if not isinstance(task, dict):
                    continue
                name = task.get("name") or f"task-{i}"
                record = owned.pop(name, None)
                if record is None:
                    tid = task.get("id") or ""
                    if not tid or tid in taken or not ID_PATTERN.fullmatch(tid):
                        if tid:
                            log.warning('[scheduler] Task "%s": id "%s" is invalid or taken, '
                                        'using a new one', name, tid)
                        tid = _unused_id(records, taken)
                    record = {"id": tid, "name": name, "createdAt": iso_now(),
                              "createdBy": "config"}
                record.update(name=name, schedule=str(task.get("schedule") or ""),
                              prompt=str(task.get("prompt") or ""),
                              enabled=task.get("enabled", True) is not False)
                record.pop("target", None)
                if isinstance(task.get("target"), dict):
                    record["target"] = dict(task["target"])
                taken.add(record["id"])
                merged.append(_ordered(record))
            records[:] = merged + others
            return list(records)
        return self.mutate(change)


def _ordered(record: dict) -> dict:
    order = ("id", "name", "schedule", "prompt", "enabled", "target", "createdAt", "createdBy",
             *RUN_STATE)
    return {k: record[k] for k in order if k in record} | {
        k: v for k, v in record.items() if k not in order}


def _find(records: list, task_id: str) -> dict:
    record = next((r for r in records if r["id"] == task_id), None)
    if record is None:
        raise TaskNotFound(task_id)
    return record


def _unused_id(records: list, taken=()) -> str:
    used = {r["id"] for r in records} | set(taken)
    while True:
        tid = new_id()
        if tid not in used:
            return tid


def wait_for_flock(fd: int, timeout: float | None, busy_message: str) -> bool:
    """Take an exclusive ``flock`` on ``fd``, polling (gevent-friendly) up to ``timeout`` s.

    ``timeout=0`` tries once and returns ``False`` when the lock is held; otherwise a lock still
    held at the deadline raises :class:`TimeoutError` with ``busy_message``.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if timeout == 0:
                return False
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(busy_message) from None
        _pause(delay)
        delay = min(delay * 2, 0.1)


def _pause(seconds: float) -> None:
    """Yield to other greenlets while waiting for a lock held elsewhere (never blocks the hub)."""
    import gevent
    gevent.sleep(seconds)
