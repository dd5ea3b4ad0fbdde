"""The one place that turns user input into file names, and the one atomic writer.

Session keys, image names, skill and task names come from HTTP clients and IM platforms.
Every path built from them goes through :func:`safe_name` / :func:`confined_path`, so ``..``,
separators, NUL and over-long names can never leave their folder. Every state file is written
through :func:`atomic_write_text`, so a crash leaves either the old or the new file.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile

MAX_NAME = 120
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_:\-]")
_UNSAFE_FILE = re.compile(r"[^A-Za-z0-9_.\-]")


class UnsafePathError(ValueError):
    """A name would resolve outside its folder."""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def safe_key(key: str) -> str:
    """File stem for a session/task key: ``[A-Za-z0-9_:-]`` only.

    Keys that are already safe map to themselves (``user:alice`` → ``user:alice``); any key that
    had to be changed or shortened gets a hash suffix, so ``a.b`` and ``a/b`` never collide.
    """
    key = key or "default"
    cleaned = _UNSAFE_KEY.sub("-", key)
    if cleaned == key and len(key) <= MAX_NAME:
        return key
    return f"{cleaned[:MAX_NAME - 11]}~{_digest(key)}"


def safe_file_name(name: str | None, fallback: str) -> str:
    """A plain file name from a client-supplied one: basename only, no leading dot, bounded."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")
    base = _UNSAFE_FILE.sub("_", base).lstrip(".")
    if not base:
        return fallback
    if len(base) > MAX_NAME:
        stem, dot, ext = base.rpartition(".")
        ext = ext[:16] if dot else ""
        base = f"{(stem or base)[:MAX_NAME - 28]}~{_digest(base)}" + (f".{ext}" if ext else "")
    return base


def confined_path(folder: str, name: str) -> str:
    """``folder/name``, refusing anything that resolves outside ``folder``."""
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.dirname(path) != root:
        raise UnsafePathError(f"unsafe file name: {name!r}")
    return path


def atomic_write_text(path: str, content: str, durable: bool = False) -> None:
    """Write via a temporary file in the same folder and ``os.replace``.

    Readers and crashed processes see the old or the new file, never a torn one. ``durable``
    adds an fsync for files that must survive power loss; state files that are rewritten on
    every turn skip it (it costs milliseconds per turn and ext4 orders the rename anyway).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(content)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_json(path: str, obj, trailing_newline: bool = True) -> None:
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    atomic_write_text(path, text + ("\n" if trailing_newline else ""))


def read_json(path: str, default=None):
    """Parsed JSON, or ``default`` when the file is missing or unparsable."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def append_line(path: str, line: str) -> None:
    """Append one whole line with a single ``write`` (safe against concurrent appenders)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
