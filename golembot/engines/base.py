"""The engine protocol and the one process runner shared by all four CLIs.

An :class:`Engine` knows its CLI: binary name, argv, environment, workspace files and a
:class:`StreamParser` that maps stdout lines to events. :func:`run_engine` does everything
that is the same for all of them: spawn with ``stdin=/dev/null`` in a new process group, read
stdout and stderr cooperatively under gevent, decode UTF-8 incrementally, stop at the first
``done``/``error``, and kill the whole group on terminal event, abort, timeout or shutdown.
"""
from __future__ import annotations

import codecs
import errno
import json
import os
import re
import shutil
import signal
import weakref
from dataclasses import dataclass, field

import gevent
import gevent.os
from gevent import subprocess
from gevent.queue import Queue

from .. import events as ev

ANSI_RE = re.compile(r"\x1b\[[^A-Za-z]*[A-Za-z]")
READ_SIZE = 65536
KILL_GRACE_S = 2.0
EXIT_DRAIN_S = 1.0  # after the child exits, how long grandchildren may hold stdout open


def strip_ansi(s: str) -> str:
    return ANSI_RE.sub("", s)


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


BOM = "\ufeff"


def parse_json_line(line: str, ansi: bool = False):
    """``(obj, text)`` for one stdout line: ``obj`` is the JSON object or ``None``.

    ``text`` is the trimmed line (ANSI-stripped when ``ansi``), ``""`` for a blank line. A BOM
    is stripped before the ``{`` test (``str.strip`` keeps it).
    """
    if ansi:
        line = strip_ansi(line)
    text = line.strip().lstrip(BOM).strip()
    if not text.startswith("{"):
        return None, text
    try:
        obj = json.loads(text)
    except ValueError:
        return None, text
    return (obj if isinstance(obj, dict) else None), text


def as_dict(x) -> dict:
    """``x`` if it is a dict, else ``{}`` — defensive access to CLI output."""
    return x if isinstance(x, dict) else {}


def as_list(x) -> list:
    return x if isinstance(x, list) else []


def as_str(x) -> str:
    return x if isinstance(x, str) else ""


def preview(text: str, limit: int = 120) -> str:
    """A one-line, bounded excerpt of unexpected output for error messages."""
    return " ".join(strip_ansi(text).split())[:limit]


def safe_prompt(prompt: str) -> str:
    """The prompt as a positional argument no CLI mistakes for an option.

    A message such as ``--help`` would be parsed as a flag by every CLI's option parser; one
    leading space keeps it an operand without changing what the model reads.
    """
    return " " + prompt if prompt.startswith("-") else prompt


class StderrTail:
    """Bounded memory of a child's stderr: the last ``max_lines`` non-blank lines."""

    def __init__(self, max_lines: int = 20, max_chars: int = 2000):
        self.max_lines, self.max_chars = max_lines, max_chars
        self._lines: list = []
        self._partial = ""

    def feed(self, chunk: str) -> None:
        data = self._partial + chunk
        parts = data.split("\n")
        self._partial = parts.pop()[-self.max_chars:]
        for part in parts:
            self._add(part)

    def _add(self, line: str) -> None:
        line = strip_ansi(line).strip()
        if line:
            self._lines.append(line[:self.max_chars])
            del self._lines[:-self.max_lines]

    def lines(self) -> list:
        extra = strip_ansi(self._partial).strip()
        if not extra:
            return list(self._lines)
        return (self._lines + [extra[:self.max_chars]])[-self.max_lines:]

    def text(self, sep: str = "\n", limit: int | None = None) -> str:
        out = sep.join(self.lines())
        return out[:limit] if limit is not None else out


class EngineNotFoundError(RuntimeError):
    """The CLI binary is not installed; the message names it and how to install it."""


class UnsupportedEngineError(ValueError):
    pass


@dataclass
class Invocation:
    """Everything one engine run needs (the original's ``InvokeOpts``)."""
    workspace: str
    prompt: str
    skill_paths: list = field(default_factory=list)
    session_id: str | None = None
    model: str | None = None
    api_key: str | None = None
    skip_permissions: bool = True
    codex: dict | None = None
    image_paths: list = field(default_factory=list)
    permissions: dict | None = None  # presence matters to Cursor (`--trust`)
    provider: dict | None = None
    oauth_token: str | None = None
    mcp: dict | None = None
    extra_env: dict = field(default_factory=dict)  # GOLEM_URL, GOLEM_TOKEN, GOLEM_SESSION_KEY

    @property
    def has_permissions(self) -> bool:
        return self.permissions is not None


class AbortSignal:
    """A one-shot abort flag with listeners; ``reason`` is ``"user"`` or ``"timeout"``."""

    def __init__(self):
        self.reason: str | None = None
        self._listeners = []

    @property
    def fired(self) -> bool:
        return self.reason is not None

    def fire(self, reason: str) -> bool:
        if self.reason is not None:
            return False
        self.reason = reason
        for fn in list(self._listeners):
            fn(reason)
        return True

    def listen(self, fn) -> None:
        self._listeners.append(fn)
        if self.reason is not None:
            fn(self.reason)

    def unlisten(self, fn) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)


class StreamParser:
    """Maps one invocation's output to events. Subclasses override what they need."""

    stderr = None  # a StderrTail when the engine quotes stderr in its close errors

    def feed_line(self, line: str) -> list:
        return []

    def feed_stderr(self, chunk: str) -> list:
        """Keep a bounded tail for error messages; stderr maps to no events by default."""
        if self.stderr is not None:
            self.stderr.feed(chunk)
        return []

    def finish(self, exit_code: int) -> list:
        return []


class Engine:
    """One CLI. Subclasses set the class attributes and implement argv/env/parser."""

    name = ""          # engine id in golem.yaml
    binary = ""        # executable name
    label = ""         # human name used in messages
    local_bin = False  # also look in ~/.local/bin (Cursor, Claude Code)
    install_hint = ""
    docs_url = ""
    skills_folder = ""  # relative to the workspace

    # -- binary -----------------------------------------------------------------------------
    def not_found_message(self) -> str:
        where = f"not found in PATH or at {os.path.expanduser('~/.local/bin/' + self.binary)}" \
            if self.local_bin else "not found in PATH"
        return (f'{self.label} CLI ("{self.binary}") {where}\n'
                f"Install it with: {self.install_hint}\nSee: {self.docs_url}")

    def find_binary(self, env: dict | None = None) -> str:
        if self.local_bin:
            local = os.path.expanduser(f"~/.local/bin/{self.binary}")
            if os.path.isfile(local) and os.access(local, os.X_OK):
                return local
        path = (env or os.environ).get("PATH", os.defpath)
        found = shutil.which(self.binary, path=path)
        if not found:
            raise EngineNotFoundError(self.not_found_message())
        return found

    # -- per invocation ---------------------------------------------------------------------
    def prepare_workspace(self, inv: Invocation) -> None:
        """Skill symlinks and engine config files; runs before the binary check."""
        if self.skills_folder:
            inject_skills(os.path.join(inv.workspace, self.skills_folder), inv.skill_paths)

    def build_argv(self, inv: Invocation) -> list:
        raise NotImplementedError

    def build_env(self, inv: Invocation, base: dict) -> dict:
        return dict(base)

    def new_parser(self, inv: Invocation) -> StreamParser:
        raise NotImplementedError

    def list_models(self, api_key: str | None = None, model: str | None = None,
                    workspace: str | None = None) -> list:
        return []

    def invoke(self, inv: Invocation, abort: AbortSignal):
        """Run one turn of the CLI; yields events, ending at the first ``done``/``error``."""
        self.prepare_workspace(inv)
        env = self.build_env(inv, {**os.environ, **inv.extra_env})
        binary = self.find_binary(env)
        argv = [binary] + self.build_argv(inv)
        yield from run_engine(argv, inv.workspace, env, self.new_parser(inv), abort, self.label)


def inject_skills(folder: str, skill_paths) -> None:
    """Recreate ``folder/<name>`` symlinks to each skill's absolute path (engines.md §1.6).

    Real files and directories in the folder are left alone; concurrent turns may race, so an
    existing link is tolerated.
    """
    os.makedirs(folder, exist_ok=True)
    wanted = {os.path.basename(os.path.normpath(p)): os.path.abspath(p) for p in skill_paths}
    for entry in os.listdir(folder):
        path = os.path.join(folder, entry)
        if os.path.islink(path) and os.readlink(path) != wanted.get(entry):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    for name, target in wanted.items():
        link = os.path.join(folder, name)
        if os.path.lexists(link):
            continue
        try:
            os.symlink(target, link)
        except FileExistsError:
            pass


# -- process registry, for shutdown ----------------------------------------------------------
_live_processes: "weakref.WeakSet" = weakref.WeakSet()


def kill_group(proc, sig=signal.SIGTERM) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def terminate_group(proc, grace: float = KILL_GRACE_S) -> None:
    """SIGTERM the whole group now, SIGKILL it after ``grace`` if the child still runs.

    The KILL is sent to the group even when the direct child has gone, so grandchildren that
    ignore SIGTERM die too.
    """
    kill_group(proc, signal.SIGTERM)

    def _finish():
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        gevent.sleep(0)
        kill_group(proc, signal.SIGKILL)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        _live_processes.discard(proc)

    gevent.spawn(_finish)


def shutdown_all(grace: float = KILL_GRACE_S) -> int:
    """Kill every engine process group still running (server shutdown, atexit)."""
    procs = list(_live_processes)
    for proc in procs:
        kill_group(proc, signal.SIGTERM)
    deadline_greenlets = [gevent.spawn(proc.wait) for proc in procs]
    gevent.joinall(deadline_greenlets, timeout=grace)
    for proc in procs:
        kill_group(proc, signal.SIGKILL)
    return len(procs)


def _spawn_error(label: str, exc: OSError) -> str:
    if exc.errno == errno.E2BIG:
        return (f"Failed to start {label}: the prompt is too long for one command-line argument "
                f"(Linux limits an argument to 128 KiB)")
    return f"Failed to start {label}: {exc.strerror or exc}"


def _reader(fd: int, queue: Queue, kind: str) -> None:
    """Read raw bytes cooperatively until EOF, then queue ``(kind, None)``."""
    try:
        while True:
            try:
                chunk = gevent.os.nb_read(fd, READ_SIZE)
            except OSError:
                chunk = b""
            if not chunk:
                break
            queue.put((kind, chunk))
    finally:
        queue.put((kind, None))


class _LineSplitter:
    """Incremental UTF-8 decoding + newline splitting without quadratic re-scans."""

    def __init__(self):
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending: list = []

    def feed(self, data: bytes, final: bool = False) -> list:
        text = self._decoder.decode(data, final)
        if "\n" not in text:
            if text:
                self._pending.append(text)
            if final and self._pending:
                rest, self._pending = "".join(self._pending), []
                return [rest]
            return []
        parts = text.split("\n")
        parts[0] = "".join(self._pending) + parts[0]
        tail = parts.pop()
        self._pending = [tail] if tail else []
        if final and self._pending:
            parts.append("".join(self._pending))
            self._pending = []
        return parts


def run_engine(argv, cwd, env, parser: StreamParser, abort: AbortSignal, label: str):
    """Spawn ``argv`` and yield the parser's events; see the module docstring for the rules."""
    queue: Queue = Queue()
    if cwd and env is not None:
        # OpenCode takes its project directory from $PWD, not from the real cwd: an inherited
        # PWD (the server's directory) made it ignore the workspace's opencode.json and fail.
        env = {**env, "PWD": os.path.abspath(cwd)}
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError as exc:
        yield ev.error(_spawn_error(label, exc))
        return
    _live_processes.add(proc)
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    gevent.os.make_nonblocking(out_fd)
    gevent.os.make_nonblocking(err_fd)
    readers = [gevent.spawn(_reader, out_fd, queue, "out"), gevent.spawn(_reader, err_fd, queue, "err")]
    gevent.spawn(lambda: queue.put(("exit", proc.wait())))  # reports the exit code
    on_abort = lambda reason: queue.put(("abort", reason))  # noqa: E731
    abort.listen(on_abort)
    out_lines, err_text = _LineSplitter(), codecs.getincrementaldecoder("utf-8")("replace")
    open_streams, exit_code, drain_timer = 2, None, None
    finished = False
    try:
        while not finished:
            kind, data = queue.get()
            batch = []
            if kind == "abort":
                yield ev.error("Agent invocation stopped by user" if data == "user"
                               else "Agent invocation timed out")
                return
            if kind == "out":
                lines = out_lines.feed(data or b"", final=data is None)
                for line in lines:
                    batch.extend(parser.feed_line(line))
            elif kind == "err":
                chunk = err_text.decode(data or b"", data is None)
                if chunk:
                    batch.extend(parser.feed_stderr(chunk))
            elif kind == "exit":
                exit_code = data
                # Grandchildren may keep the pipes open after the child exits: give them a moment.
                drain_timer = gevent.spawn_later(EXIT_DRAIN_S, kill_group, proc, signal.SIGKILL)
            elif kind == "drained":
                pass
            if data is None and kind in ("out", "err"):
                open_streams -= 1
            if open_streams == 0 and exit_code is not None:
                code = exit_code if exit_code >= 0 else 1
                batch.extend(parser.finish(code))
                finished = True
            for event in batch:
                yield event
                if ev.is_terminal(event):
                    return
    finally:
        abort.unlisten(on_abort)
        if drain_timer is not None:
            drain_timer.kill(block=False)
        if proc.poll() is None or not finished:
            terminate_group(proc)
        else:
            kill_group(proc, signal.SIGKILL)  # stray grandchildren of a finished child
            _live_processes.discard(proc)
        for g in readers:
            g.kill(block=False)
        gevent.spawn(_close_pipes, proc, readers)


def _close_pipes(proc, readers) -> None:
    """Close our ends of the pipes once the reader greenlets are gone (no fd leaks)."""
    gevent.joinall(readers)
    for pipe in (proc.stdout, proc.stderr):
        try:
            pipe.close()
        except Exception:  # noqa: BLE001 - already closed or mid-teardown
            pass


# -- auxiliary calls for /model list ------------------------------------------------------------
CLI_LIST_TIMEOUT_S = 15.0
HTTP_LIST_TIMEOUT_S = 10.0


def run_cli_capture(argv, env: dict | None = None, timeout: float | None = None, cwd=None):
    """``(exit_code, stdout_text)`` of a short CLI call; the whole group dies on timeout.

    Raises ``OSError`` when the binary cannot be started and ``gevent.Timeout`` on expiry
    (after killing the group), so callers can decide what a failure means.
    """
    timeout = CLI_LIST_TIMEOUT_S if timeout is None else timeout
    if cwd:  # the workspace's own config (e.g. opencode.json providers) must be seen
        env = {**(env if env is not None else os.environ), "PWD": os.path.abspath(cwd)}
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    _live_processes.add(proc)
    try:
        with gevent.Timeout(timeout):
            out, _ = proc.communicate()
        return proc.returncode, out.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            kill_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        else:
            kill_group(proc, signal.SIGKILL)  # grandchildren still holding on
        _live_processes.discard(proc)
        for pipe in (proc.stdout,):
            try:
                pipe.close()
            except Exception:  # noqa: BLE001
                pass


def http_get_json(url: str, headers: dict | None = None, timeout: float = HTTP_LIST_TIMEOUT_S):
    """GET ``url`` and parse JSON; any failure (network, status, body, timeout) → ``None``."""
    import urllib.request

    def fetch():
        req = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - fixed/env URL
            return json.loads(resp.read().decode("utf-8", "replace"))

    # A worker thread keeps the hub free whether or not the process is monkey-patched.
    try:
        return gevent.get_hub().threadpool.spawn(fetch).get(timeout=timeout + 1)
    except (gevent.Timeout, OSError, ValueError):
        return None


def model_ids(body) -> list:
    """Sorted ``id`` strings of an OpenAI/Anthropic-style ``{"data": [...]}`` listing."""
    data = as_list(as_dict(body).get("data"))
    return sorted({d["id"] for d in data if isinstance(d, dict) and isinstance(d.get("id"), str)})
