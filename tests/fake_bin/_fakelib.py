"""Shared machinery of the fake agent CLIs (``claude``, ``codex``, ``agent``, ``opencode``).

Each fake parses its argv the way the real CLI does, logs the call, then picks a scenario from
keywords in the prompt and prints lines in that CLI's real output format (recorded fixtures from
``$GOLEM_FIXTURES``, or lines built from the fixtures' shapes). See README.md next to this file.
Stdlib only and no work before it is needed: the fakes start in a few milliseconds.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
FIXTURES = os.environ.get("GOLEM_FIXTURES") or os.path.normpath(
    os.path.join(HERE, "..", "..", "..", "shared", "fixtures", "engines"))
LOG_ENV_PREFIXES = ("GOLEM_URL", "GOLEM_TOKEN", "GOLEM_SESSION_KEY", "ANTHROPIC_", "OPENAI_",
                    "CODEX_API_KEY", "CURSOR_", "IS_SANDBOX", "CLAUDE_CODE_", "OPENROUTER_")
KEYWORDS = ("FAKE_CRASH", "FAKE_HANG", "FAKE_GRANDCHILD", "FAKE_ERROR", "FAKE_TOOL",
            "FAKE_GARBAGE", "FAKE_BIGLINE", "FAKE_BADUTF8", "FAKE_LINES", "FAKE_ECHO", "FAKE_SAY")
BIG_LINE_BYTES = 10 * 1024 * 1024


# -- output ----------------------------------------------------------------------------------
def out(data) -> None:
    """Write text or bytes to stdout at once (no Python buffering surprises)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd = sys.stdout.fileno()
    while data:
        n = os.write(fd, data)
        data = data[n:]


def line(obj) -> None:
    out(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")


def err(text: str) -> None:
    os.write(sys.stderr.fileno(), text.encode("utf-8"))


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# -- fixtures --------------------------------------------------------------------------------
def fixture_path(engine: str, name: str, ext: str) -> str:
    return os.path.join(FIXTURES, engine, f"{name}.{ext}")


def fixture_lines(engine: str, name: str) -> list:
    with open(fixture_path(engine, name, "ndjson"), encoding="utf-8") as fh:
        return [ln for ln in fh.read().split("\n") if ln.strip()]


def fixture_meta(engine: str, name: str) -> dict:
    try:
        with open(fixture_path(engine, name, "meta.json"), encoding="utf-8") as fh:
            return json.load(fh)
    except OSError:
        return {}


def replay(engine: str, name: str, session_from: str | None = None, session_to: str | None = None,
           exit_code: int | None = None):
    """Print a recorded fixture (stdout, stderr, exit code); never returns."""
    with open(fixture_path(engine, name, "ndjson"), "rb") as fh:
        data = fh.read()
    if session_from and session_to and session_from != session_to:
        data = data.replace(session_from.encode(), session_to.encode())
    for chunk in data.splitlines(keepends=True):
        out(chunk)
    try:
        with open(fixture_path(engine, name, "stderr.txt"), "rb") as fh:
            stderr = fh.read()
        if session_from and session_to:
            stderr = stderr.replace(session_from.encode(), session_to.encode())
        if stderr:
            os.write(sys.stderr.fileno(), stderr)
    except OSError:
        pass
    if exit_code is None:
        code = fixture_meta(engine, name).get("exit_code")
        exit_code = code if isinstance(code, int) and code >= 0 else 1
    sys.exit(exit_code)


# -- call log and session state ----------------------------------------------------------------
def stdin_facts() -> dict:
    facts = {"stdin_isatty": False, "stdin_is_devnull": False}
    try:
        facts["stdin_isatty"] = os.isatty(0)
        st, null = os.fstat(0), os.stat(os.devnull)
        facts["stdin_is_devnull"] = (st.st_rdev == null.st_rdev and st.st_ino == null.st_ino)
    except OSError:
        facts["stdin_closed"] = True
    return facts


def log_call(engine: str, argv: list) -> None:
    path = os.environ.get("GOLEM_FAKE_LOG")
    if not path:
        return
    env = {k: v for k, v in os.environ.items()
           if k.startswith(LOG_ENV_PREFIXES) or k.endswith("_API_KEY")}
    entry = {"engine": engine, "argv": argv, "cwd": os.getcwd(), "env": env, "pid": os.getpid(),
             **stdin_facts()}
    data = (dumps(entry) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class Sessions:
    """Ids this fake issued, kept in ``<GOLEM_FAKE_LOG>.sessions`` (one per line, flock'ed).

    Without a log file ids are still distinct (time based) and recognised by their shape.
    """

    def __init__(self, engine: str, make_id, id_shape):
        self.engine, self.make_id, self.id_shape = engine, make_id, id_shape
        log = os.environ.get("GOLEM_FAKE_LOG")
        self.path = log + ".sessions" if log else None

    def issue(self) -> str:
        if not self.path:
            return self.make_id(int(time.time() * 1e6) % 10**12)
        import fcntl
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(self.path, encoding="utf-8") as fh:
                n = sum(1 for _ in fh) + 1
            sid = self.make_id(n)
            os.write(fd, f"{self.engine} {sid}\n".encode())
            return sid
        finally:
            os.close(fd)

    def known(self, sid: str) -> bool:
        if not self.path:
            return bool(self.id_shape.fullmatch(sid))
        try:
            with open(self.path, encoding="utf-8") as fh:
                return any(ln.split(" ", 1)[-1].strip() == sid for ln in fh)
        except OSError:
            return False


# -- scenarios -------------------------------------------------------------------------------
def pick(prompt: str):
    """``(keyword, argument, slow_seconds)`` for a prompt; keyword ``None`` → default reply."""
    slow = None
    m = re.search(r"FAKE_SLOW:([0-9.]+)", prompt)
    if m:
        try:
            slow = float(m.group(1).rstrip("."))
        except ValueError:
            slow = None
    for kw in KEYWORDS:
        idx = prompt.find(kw)
        if idx < 0:
            continue
        arg = None
        if kw == "FAKE_SAY":
            rest = prompt[idx + len(kw):]
            if not rest.startswith(":"):
                continue
            arg = rest[1:].split("\n", 1)[0].replace("\\n", "\n")
        elif kw == "FAKE_LINES":
            m = re.match(r":(\d+)", prompt[idx + len(kw):])
            arg = int(m.group(1)) if m else 1000
        return kw, arg, slow
    return None, None, slow


def hang_forever():
    while True:
        time.sleep(3600)


def spawn_grandchild() -> int:
    """A grandchild in our process group that ignores SIGTERM (only SIGKILL of the group works)."""
    import subprocess
    code = ("import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "while True: time.sleep(1)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
    pidfile = os.environ.get("GOLEM_FAKE_PIDFILE")
    if pidfile:
        tmp = pidfile + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{child.pid}\n")
        os.replace(tmp, pidfile)
    return child.pid


def write_bytewise(data: bytes) -> None:
    """One ``write`` per byte, so multi-byte characters straddle read boundaries."""
    fd = sys.stdout.fileno()
    for i in range(len(data)):
        os.write(fd, data[i:i + 1])


GARBAGE_TEXT = "Survived the garbage."
GARBAGE_LINES = ["this is not json at all", "{broken json", "\x1b[31mred ansi noise\x1b[0m",
                 "[1, 2, 3]", "   "]


class Dialect:
    """One CLI: how it reads argv, and the shape of its lines. Subclasses fill it in."""

    engine = ""
    fixture_dir = ""

    def __init__(self, argv: list):
        self.argv = argv
        self.prompt = None
        self.resume = None
        self.model = None
        self.parse(argv)

    # to implement
    def parse(self, argv):  # sets prompt/resume/model; may exit with a usage error
        raise NotImplementedError

    def make_id(self, n: int) -> str:
        raise NotImplementedError

    id_shape = re.compile(r".*")

    def init_lines(self, sid):  # printed before hanging
        return []

    def say_lines(self, text, sid):
        raise NotImplementedError

    def error_turn(self, sid):
        raise NotImplementedError

    def tool_turn(self, sid):
        raise NotImplementedError

    def default_turn(self, sid):
        raise NotImplementedError

    def big_tool_lines(self, sid, payload):
        raise NotImplementedError

    def resume_missing(self):
        raise NotImplementedError

    def known_fixture_ids(self) -> set:
        return set()

    def no_prompt(self):
        err(f"{self.engine}: no prompt given\n")
        sys.exit(1)

    # shared driver
    def run(self):
        log_call(self.engine, self.argv)
        if self.prompt is None:
            self.no_prompt()
        sessions = Sessions(self.engine, self.make_id, self.id_shape)
        fixture_ids = self.known_fixture_ids()
        if self.resume is not None:
            if self.resume not in fixture_ids and not sessions.known(self.resume):
                self.resume_missing()
        kw, arg, slow = pick(self.prompt)
        if slow:
            time.sleep(slow)
        sid = self.resume or None
        if kw == "FAKE_CRASH":
            err(f"fake {self.engine}: simulated crash (segmentation fault in the agent runtime)\n")
            sys.exit(3)
        if kw == "FAKE_HANG":
            self.emit(self.init_lines(sid or sessions.issue()))
            hang_forever()
        if kw == "FAKE_GRANDCHILD":
            spawn_grandchild()
            self.emit(self.init_lines(sid or sessions.issue()))
            hang_forever()
        if kw == "FAKE_ERROR":
            self.error_turn(sid)
        if kw == "FAKE_TOOL":
            self.tool_turn(sid)
        if kw is None:
            self.default_turn(sid)
        sid = sid or sessions.issue()
        if kw == "FAKE_GARBAGE":
            lines = self.say_lines(GARBAGE_TEXT, sid)
            mixed = []
            for i, ln in enumerate(lines):
                mixed.append(ln)
                if i < len(GARBAGE_LINES):
                    mixed.append(GARBAGE_LINES[i])
            mixed.append(GARBAGE_LINES[-1])
            self.emit(mixed)
        elif kw == "FAKE_BIGLINE":
            self.emit(self.big_tool_lines(sid, "x" * BIG_LINE_BYTES) + self.say_lines("Big line done.", sid))
        elif kw == "FAKE_BADUTF8":
            lines = self.say_lines("@@BAD@@", sid)
            for ln in lines:
                if "@@BAD@@" in ln:
                    head, tail = ln.split("@@BAD@@", 1)
                    write_bytewise(head.encode() + b"bad:\xff\xfe ok: " + "héllo 世界 🎉".encode()
                                   + tail.encode() + b"\n")
                else:
                    out(ln + "\n")
        elif kw == "FAKE_LINES":
            self.emit_many(arg, sid)
        elif kw == "FAKE_ECHO":
            self.emit(self.say_lines(self.prompt, sid))
        else:  # FAKE_SAY
            self.emit(self.say_lines(arg, sid))
        sys.exit(0)

    def emit(self, lines):
        for ln in lines:
            out(ln + "\n")

    def emit_many(self, n: int, sid: str):
        """``n`` text lines as fast as possible (relay benchmark), then a normal end."""
        lines = self.say_lines("@@LINE@@", sid)
        idx = next(i for i, ln in enumerate(lines) if "@@LINE@@" in ln)
        head, tail = lines[idx].split("@@LINE@@", 1)
        before, after = lines[:idx], lines[idx + 1:]
        after = [ln.replace("@@LINE@@", "") for ln in after]  # e.g. claude's result text
        self.emit(before)
        buf = []
        for i in range(n):
            buf.append(f"{head}line {i}\\n{tail}\n")
            if len(buf) >= 512:
                out("".join(buf))
                buf = []
        if buf:
            out("".join(buf))
        self.emit(after)


def main(dialect_cls):
    try:
        dialect_cls(sys.argv[1:]).run()
    except BrokenPipeError:
        os._exit(141)
