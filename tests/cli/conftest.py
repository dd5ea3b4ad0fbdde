"""Helpers for driving ``golembot`` as a user does: CliRunner for arguments, real processes
(pipes or a pseudo-terminal) for the REPL and ``serve``."""
from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli_argv(*args) -> list:
    return [sys.executable, "-m", "golembot.cli", *args]


def cli_env(**extra) -> dict:
    """The test's environment (fake_bin first on PATH via ``fake_path``), plain output, and this
    tree importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    env.pop("GOLEM_TOKEN", None)
    env.pop("GOLEM_PORT", None)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PtyProcess:
    """A child on a pseudo-terminal that is its controlling terminal, so ^C means SIGINT."""

    def __init__(self, argv, cwd=None, env=None):
        import fcntl
        import termios
        master, slave = os.openpty()

        def make_controlling_tty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                                     env=env, start_new_session=True,
                                     preexec_fn=make_controlling_tty)
        os.close(slave)
        self.master = master
        self.output = b""

    def send(self, data: str) -> None:
        os.write(self.master, data.encode())

    def expect(self, needle: str, timeout: float = 20.0, start: int = 0) -> int:
        """Read until ``needle`` appears after offset ``start``; returns the offset after it."""
        deadline = time.monotonic() + timeout
        target = needle.encode()
        while True:
            idx = self.output.find(target, start)
            if idx >= 0:
                return idx + len(target)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen; output so far:\n"
                                     + self.output.decode(errors="replace"))
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"process exited before {needle!r}:\n"
                                         + self.output.decode(errors="replace"))
                self.output += chunk

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master)


@pytest.fixture
def pty_process():
    made = []

    def start(argv, **kw):
        p = PtyProcess(argv, **kw)
        made.append(p)
        return p

    yield start
    for p in made:
        p.close()
