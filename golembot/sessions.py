"""Per-key memory of an assistant: engine session ids and conversation history.

* ``.golem/sessions.json`` maps a session key to the engine's session id, so the next turn
  resumes the CLI's own conversation. Read-modify-write happens under a lock (greenlets of this
  process and other processes alike) and the file is replaced atomically.
* ``.golem/history/<safe-key>.jsonl`` keeps what was said, one line per message, so a lost
  engine session can be recovered by letting the agent read it.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import time

import gevent
from gevent.lock import RLock

from . import events
from .files import append_line, atomic_write_text, confined_path, read_json, safe_key

_locks: dict = {}


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_now() -> str:
    """UTC ISO-8601 with milliseconds and ``Z`` (``2026-03-05T10:00:03.500Z``)."""
    t = _dt.datetime.now(_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _write(path: str, data: dict) -> None:
    """One entry per line: readable, and fast (the C encoder; ``indent=`` would force the slow
    pure-Python one, milliseconds per turn once there are hundreds of sessions)."""
    body = ",\n".join(f"  {json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}"
                       for k, v in data.items())
    atomic_write_text(path, "{\n" + body + "\n}\n" if body else "{}\n")


def _key_or_default(key) -> str:
    return key or "default"


class SessionStore:
    """``.golem/sessions.json``: ``{key: {engineSessionId, lastUsed, engineType}}``.

    Writes happen in a worker thread, so the event loop keeps serving other turns while the
    file is replaced (a rename costs milliseconds on ext4), and updates that arrive while a
    write is in flight are coalesced into the next one: 200 turns ending together cost a few
    writes, not 200. :meth:`save` and :meth:`clear` still return only once their change is on
    disk, so the next turn of a key always sees it.
    """

    def __init__(self, golem_dir: str):
        self.golem_dir = golem_dir
        self.path = os.path.join(golem_dir, "sessions.json")
        self._lock = _locks.setdefault(self.path, RLock())
        self._pending: dict = {}  # key -> entry dict, or a marker object for "remove"

    @contextlib.contextmanager
    def _file_locked(self):
        """An advisory file lock for other processes (gunicorn workers)."""
        os.makedirs(self.golem_dir, exist_ok=True)
        with open(os.path.join(self.golem_dir, "sessions.lock"), "a") as lockfile:
            fcntl.flock(lockfile, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lockfile, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _locked(self):
        with self._lock, self._file_locked():
            yield

    def read_all(self) -> dict:
        data = read_json(self.path, {})
        if not isinstance(data, dict):
            return {}
        if isinstance(data.get("engineSessionId"), str):  # legacy single-session layout
            sid = data["engineSessionId"]
            return {"default": {"engineSessionId": sid, "lastUsed": now_ms()}} if sid else {}
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def load(self, key, engine: str) -> str | None:
        entry = self.read_all().get(_key_or_default(key))
        if not entry:
            return None
        if entry.get("engineType") and entry.get("engineType") != engine:
            return None
        sid = entry.get("engineSessionId")
        return sid if isinstance(sid, str) and sid else None

    def save(self, key, session_id: str, engine: str | None) -> None:
        """Record the id; an unchanged id is rewritten only to refresh a ``lastUsed`` older than
        an hour (TTLs are counted in days), so resumed turns rarely touch the file."""
        key = _key_or_default(key)
        old = self.read_all().get(key) or {}
        if (old.get("engineSessionId") == session_id and old.get("engineType") == engine
                and _is_number(old.get("lastUsed")) and now_ms() - old["lastUsed"] < 3_600_000):
            return
        entry = {"engineSessionId": session_id, "lastUsed": now_ms()}
        if engine:
            entry["engineType"] = engine
        self._commit(key, entry)

    def clear(self, key) -> None:
        self._commit(_key_or_default(key), None)

    def _commit(self, key: str, entry) -> None:
        marker = object() if entry is None else entry
        self._pending[key] = marker
        with self._lock:  # the greenlet before us may already have written our change
            if self._pending.get(key) is not marker:
                return
            batch, self._pending = self._pending, {}
            gevent.get_hub().threadpool.apply(self._write_batch, (batch,))

    def _write_batch(self, batch: dict) -> None:
        with self._file_locked():
            data = self.read_all()
            for key, entry in batch.items():
                if isinstance(entry, dict):
                    data[key] = entry
                else:
                    data.pop(key, None)
            _write(self.path, data)

    def prune(self, ttl_days: float) -> int:
        """Drop entries unused for ``ttl_days``; rewrite only when something went."""
        cutoff = now_ms() - ttl_days * 86_400_000
        with self._locked():
            data = self.read_all()
            keep = {k: v for k, v in data.items()
                    if not _is_number(v.get("lastUsed")) or v["lastUsed"] >= cutoff}
            removed = len(data) - len(keep)
            if removed:
                _write(self.path, keep)
            return removed


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class History:
    """``.golem/history/<safe-key>.jsonl``: one compact JSON object per message."""

    def __init__(self, golem_dir: str):
        self.folder = os.path.join(golem_dir, "history")

    def path(self, key) -> str:
        return confined_path(self.folder, safe_key(_key_or_default(key)) + ".jsonl")

    def exists(self, key) -> bool:
        return os.path.isfile(self.path(key))

    def append(self, key, role: str, content: str, durationMs=None, costUsd=None) -> None:
        line = {"ts": iso_now(), "sessionKey": _key_or_default(key), "role": role,
                "content": content, "durationMs": durationMs, "costUsd": costUsd}
        os.makedirs(self.folder, exist_ok=True)
        append_line(self.path(key), events.to_json({k: v for k, v in line.items() if v is not None}))

    def read(self, key, limit: int | None = None) -> list:
        try:
            with open(self.path(key), encoding="utf-8") as fh:
                lines = fh.readlines()
        except OSError:
            return []
        out = []
        for line in lines[-limit:] if limit else lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def delete(self, key) -> None:
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            pass
