"""``golembot run``: chat with an assistant in the terminal.

The REPL reads a line (or a ``\"\"\"`` block), answers slash commands itself through
:mod:`golembot.commands`, and otherwise runs one turn of :meth:`Assistant.chat`, printing events
as they arrive: text as-is, one dim line per tool call, warnings and errors, then the turn's
duration and cost.

Ctrl-C during a turn cancels *that turn* (the engine's process group is killed and the completion
says so) and the prompt comes back; at an idle prompt, a second Ctrl-C or Ctrl-D leaves. To get
that, a turn runs with its own SIGINT handler: the interrupt cannot be allowed to land as a
``KeyboardInterrupt`` somewhere inside gevent's hub or the engine reader.

Streams are injectable (``Repl(assistant, stdin=..., stdout=..., stderr=...)``) so tests can drive
it through pipes or a pseudo-terminal.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import gevent

from . import commands

PROMPT = "> "
CONTINUATION = "... "
FENCE = '"""'
EXIT_WORDS = ("/quit", "/exit")
COMPLETIONS = ["/help", "/status", "/engine", "/model", "/skill", "/cron", "/reset", "/stop",
               "/quit", "/exit"]
SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
SPINNER_INTERVAL = 0.08
HISTORY_LENGTH = 200
BOX_WIDTH = 52
SUMMARY_KEYS = (("file_path", "path", "filename"), ("command",), ("query", "pattern", "search"))


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def cut(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def tool_summary(name: str, args) -> str:
    """``name`` plus the most telling argument: a path, else a command, else a query.

    Arguments with none of those keys are shown as compact JSON; unparseable ones not at all.
    """
    name = name or "tool"
    try:
        data = json.loads(args) if isinstance(args, str) else args
    except ValueError:
        return name
    if not isinstance(data, dict) or not data:
        return name
    for keys in SUMMARY_KEYS:
        for key in keys:
            if data.get(key) not in (None, ""):
                return f"{name} {cut(data[key])}"
    return f"{name} {cut(json.dumps(data, ensure_ascii=False, separators=(',', ':')))}"


def stats_line(duration_ms, cost_usd) -> str:
    """``(8.5s | $0.0123)``; a part is left out when unknown (a zero duration counts as unknown)."""
    parts = []
    if isinstance(duration_ms, (int, float)) and duration_ms:
        parts.append(f"{duration_ms / 1000:.1f}s")
    if isinstance(cost_usd, (int, float)) and not isinstance(cost_usd, bool):
        parts.append(f"${cost_usd:.4f}")
    return f"({' | '.join(parts)})" if parts else ""


class Spinner:
    """``⠋ Thinking`` on a terminal while the agent says nothing; a greenlet redraws it."""

    def __init__(self, stream, enabled: bool, style):
        self.stream = stream
        self.enabled = enabled
        self.style = style
        self._greenlet = None

    def start(self) -> None:
        if self.enabled and self._greenlet is None:
            self._greenlet = gevent.spawn(self._spin)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def _spin(self) -> None:
        i = 0
        while True:
            frame = SPINNER_FRAMES[i % len(SPINNER_FRAMES)]
            self.stream.write("\r" + self.style(f"{frame} Thinking  ", "2"))
            self.stream.flush()
            i += 1
            gevent.sleep(SPINNER_INTERVAL)


class Repl:
    """One interactive session on the ``default`` session key (``session_key`` to change it)."""

    def __init__(self, assistant, stdin=None, stdout=None, stderr=None,
                 session_key: str = "default", context=None):
        self.assistant = assistant
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.session_key = session_key
        self.context = context or {"scheduler": None, "channel": None}
        self.color = _isatty(self.stdout) and not os.environ.get("NO_COLOR")
        # Piped input is not echoed, so prompts would only clutter the transcript.
        self.show_prompts = _isatty(self.stdin)
        self.use_readline = (self.stdin is sys.stdin and self.stdout is sys.stdout
                             and self.show_prompts)
        self.spinner = Spinner(self.stderr, _isatty(self.stdout) and _isatty(self.stderr),
                               self.style)
        self._at_line_start = True
        self._interrupts = 0
        self._reading = False
        self._turn_active = False
        self._pending_interrupt = False
        if self.use_readline:
            self._setup_readline()

    # -- output -------------------------------------------------------------------------------
    def style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def write(self, text: str, err: bool = False) -> None:
        if not text:
            return
        stream = self.stderr if err else self.stdout
        stream.write(text)
        stream.flush()
        self._at_line_start = text.endswith("\n")

    def line(self, text: str = "", err: bool = False) -> None:
        """``text`` on a line of its own, starting a new line first if needed."""
        self.write(("" if self._at_line_start else "\n") + text + "\n", err)

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> int:
        """Loop until /quit, /exit, Ctrl-D or a second Ctrl-C at the prompt; returns 0."""
        restore = self._install_sigint()
        try:
            self.banner()
            return self._loop()
        finally:
            restore()

    def _loop(self) -> int:
        while True:
            try:
                message = self.read_message()
            except EOFError:
                self.line()
                return 0
            except KeyboardInterrupt:
                self._interrupts += 1
                self.line()
                if self._interrupts >= 2:
                    return 0
                self.line(self.style("(Ctrl-C again or Ctrl-D to exit, or type /quit)", "2"))
                continue
            self._interrupts = 0
            if message is None:
                continue
            if message.strip() in EXIT_WORDS:
                self.line("Bye!")
                return 0
            if commands.is_command(message):
                result = commands.execute(self.assistant, message, self.session_key,
                                          self.context)
                self.write("\n" + result.get("text", "") + "\n\n")
                continue
            self.run_turn(message)

    def read_line(self, prompt: str) -> str:
        self._reading = True
        try:
            if self._pending_interrupt:  # Ctrl-C between two prompts counts at the next one
                self._pending_interrupt = False
                raise KeyboardInterrupt
            return self._read_line(prompt)
        finally:
            self._reading = False

    def _read_line(self, prompt: str) -> str:
        if self.use_readline:
            return input(prompt)
        if self.show_prompts:
            self.write(prompt)
        line = self.stdin.readline()
        if not line:
            raise EOFError
        self._at_line_start = True  # the user's Enter ended the line
        return line.rstrip("\r\n")

    def read_message(self) -> str | None:
        """The next message to handle, or ``None`` for a blank line / empty block."""
        line = self.read_line(PROMPT)
        if not line.strip():
            return None
        if line.strip() != FENCE:
            return line.strip()
        collected = []
        while True:
            more = self.read_line(CONTINUATION)
            if more.strip() == FENCE:
                break
            collected.append(more)
        text = "\n".join(collected)
        return text if text.strip() else None

    # -- one turn -----------------------------------------------------------------------------
    def run_turn(self, message: str) -> None:
        view = TurnView(self)
        started = time.monotonic()
        self._turn_active = True
        self.spinner.start()
        try:
            for event in self.assistant.chat(message, self.session_key):
                view.show(event)
        except Exception as exc:  # the assistant promises not to raise; show it if it does
            self.spinner.stop()
            self.line(f"❌ Error: {exc}", err=True)
        finally:
            self._turn_active = False
            self.spinner.stop()
        view.finish((time.monotonic() - started) * 1000)
        self.line()

    def _on_sigint(self, signum, frame) -> None:
        """Ctrl-C: cancel the running turn; at the prompt, interrupt the read; else remember it.

        It never raises while a turn runs, so the interrupt cannot land inside gevent's hub or
        the engine reader; cancelling kills the engine's process group and the turn ends with
        its ``aborted`` completion as usual.
        """
        if self._turn_active:
            gevent.spawn(self.assistant.cancel, self.session_key)
        elif self._reading:
            raise KeyboardInterrupt
        else:
            self._pending_interrupt = True

    def _install_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        return lambda: signal.signal(signal.SIGINT, previous)

    # -- banner and readline --------------------------------------------------------------------
    def banner(self) -> None:
        try:
            status = self.assistant.get_status()
        except Exception:
            self.line("GolemBot assistant started (type /help for commands)")
            return
        from . import __version__
        config = status.get("config") or {}
        inner = BOX_WIDTH - 2

        def row(text="", right=""):
            return "│" + text + " " * max(0, inner - len(text) - len(right)) + right + "│"

        engine = status.get("engine") or ""
        model = status.get("model")
        name = str(config.get("name", ""))
        rows = [("Name", self.style(name, "1"), len(name)),
                ("Engine", engine + (self.style(f" ({model})", "2") if model else ""),
                 len(engine) + (len(f" ({model})") if model else 0))]
        skills = ", ".join(s.get("name", "") for s in status.get("skills") or [])
        room = inner - 3 - 12
        if skills:
            skills = skills if len(skills) <= room else skills[:room - 1] + "…"
            rows.append(("Skills", skills, len(skills)))
        cwd = self.assistant.dir
        home = os.path.expanduser("~")
        if home and home != "/" and (cwd == home or cwd.startswith(home + os.sep)):
            cwd = "~" + cwd[len(home):]
        if len(cwd) > room:
            cwd = "…" + cwd[-(room - 1):]
        rows.append(("cwd", cwd, len(cwd)))
        out = ["╭" + "─" * inner + "╮",
               row("  ▄█████▄"), row("  █ ● ● █  ◈ GolemBot", f"v{__version__}  "),
               row("  ▀▀▀ ▀▀▀"), "├" + "─" * inner + "┤"]
        for label, value, visible in rows:
            out.append("│  " + f"{label:<12}" + value + " " * max(0, room + 1 - visible) + "│")
        out.append("╰" + "─" * inner + "╯")
        self.write("\n".join(out) + "\n")
        self.line(self.style("/help for commands", "2"))
        self.line()

    def _setup_readline(self) -> None:
        try:
            import readline
        except ImportError:
            return
        readline.set_history_length(HISTORY_LENGTH)

        def complete(text, state):
            matches = [c for c in COMPLETIONS if c.startswith(text)] or COMPLETIONS
            return matches[state] if state < len(matches) else None

        readline.set_completer(complete)
        readline.set_completer_delims(" \t\n")
        readline.parse_and_bind("tab: complete")


class TurnView:
    """Prints one turn's events and remembers what was shown, so nothing appears twice."""

    def __init__(self, repl: Repl):
        self.repl = repl
        self.printed_text = False
        self.printed_error = False
        self.duration_ms = None
        self.cost_usd = None

    def show(self, event: dict) -> None:
        repl, kind = self.repl, event.get("type")
        if kind == "text":
            repl.spinner.stop()
            content = event.get("content", "")
            if content:
                repl.write(content)
                self.printed_text = True
        elif kind == "tool_call":
            repl.spinner.stop()
            repl.line(repl.style("🔧 " + tool_summary(event.get("name"), event.get("args")), "2"))
            repl.spinner.start()
        elif kind == "tool_result":
            repl.spinner.stop()
            repl.line(repl.style("  ✓ done", "2"))
            repl.spinner.start()
        elif kind == "warning":
            repl.spinner.stop()
            repl.line(repl.style(f"⚠ {event.get('message', '')}", "33"))
            repl.spinner.start()
        elif kind == "error":
            repl.spinner.stop()
            if not self.printed_error:
                repl.line(f"❌ {event.get('message', '')}", err=True)
                self.printed_error = True
        elif kind == "done":
            self._remember_stats(event)
            if not self.printed_text and event.get("fullText"):
                repl.spinner.stop()
                repl.write(event["fullText"])
                self.printed_text = True
        elif kind == "completion":
            repl.spinner.stop()
            self._remember_stats(event)
            self._show_completion(event)

    def _remember_stats(self, event: dict) -> None:
        if event.get("durationMs") is not None:
            self.duration_ms = event["durationMs"]
        if event.get("costUsd") is not None:
            self.cost_usd = event["costUsd"]

    def _show_completion(self, event: dict) -> None:
        repl, status = self.repl, event.get("status")
        if status == "completed" and not self.printed_text and event.get("finalText"):
            repl.write(event["finalText"])
            self.printed_text = True
        elif status == "failed" and not self.printed_error:
            repl.line(f"❌ {event.get('message', 'Agent error')}", err=True)
            self.printed_error = True
        elif status == "aborted" and not self.printed_error:
            timeout = event.get("reason") == "timeout"
            repl.line("❌ Task timed out." if timeout else "❌ Task stopped by user.", err=True)
            self.printed_error = True

    def finish(self, wall_ms: float) -> None:
        """The stats line: the engine's duration and cost, else the time we waited."""
        line = stats_line(self.duration_ms or wall_ms, self.cost_usd)
        if line:
            self.repl.line(self.repl.style(line, "2"))
