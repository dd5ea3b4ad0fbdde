"""Run history: one JSON line per run in ``.golem/tasks/history/<safe id>.jsonl``.

One file per task (decisions.md), appended with a single ``write`` so concurrent writers never
interleave, never rewritten. Reading takes the newest lines from the end of the file, so
``/cron history`` stays fast however long a task has been running.
"""
from __future__ import annotations

import json
import os

from ..events import to_json
from ..files import append_line, confined_path, safe_key

BLOCK = 64 * 1024


def history_dir(dir) -> str:
    return os.path.join(os.path.abspath(os.fspath(dir)), ".golem", "tasks", "history")


def history_path(dir, task_id: str) -> str:
    return confined_path(history_dir(dir), safe_key(str(task_id)) + ".jsonl")


def append(dir, entry: dict) -> None:
    append_line(history_path(dir, entry["taskId"]), to_json(entry))


def read(dir, task_id: str, limit: int = 20) -> list:
    """The ``limit`` most recent runs of a task, newest first; malformed lines are skipped."""
    if limit <= 0:
        return []
    try:
        path = history_path(dir, task_id)
        fh = open(path, "rb")
    except (OSError, ValueError):
        return []
    out: list = []
    with fh:
        for line in _lines_backwards(fh):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("taskId") == task_id:
                out.append(entry)
                if len(out) >= limit:
                    break
    return out


def _lines_backwards(fh):
    """Complete lines from the end of a file towards its start (bytes, without newlines)."""
    fh.seek(0, os.SEEK_END)
    pos = fh.tell()
    tail = b""
    while pos > 0:
        size = min(BLOCK, pos)
        pos -= size
        fh.seek(pos)
        chunk = fh.read(size) + tail
        lines = chunk.split(b"\n")
        tail = lines.pop(0)  # may be the end of a line that starts in the previous block
        for line in reversed(lines):
            if line.strip():
                yield line
    if tail.strip():
        yield tail
