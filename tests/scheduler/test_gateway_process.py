"""``golembot gateway`` as a real process: a golem.yaml task fires on time; a second gateway
on the same directory does not run it again, and takes over when the first one stops."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time

from golembot.scheduler import history

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, message):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.05)  # bounded poll interval


def runs(d):
    path = history.history_path(d, "tick")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def start(d, tmp_path, n):
    env = {**os.environ, "PYTHONPATH": ROOT, "NO_COLOR": "1", "GOLEM_ALLOW_SECOND_SCHEDULES": "1"}
    env.pop("GOLEM_TOKEN", None)
    env.pop("GOLEM_PORT", None)
    out = open(tmp_path / f"gateway{n}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "golembot.cli", "gateway", "-d", d,
                             "--port", str(free_port())], env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, out


def stop(proc, out):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out.close()


def test_yaml_task_fires_in_golembot_gateway_once(make_bot, tmp_path):
    d = make_bot(tasks=[{"id": "tick", "name": "tick", "schedule": "every 1s",
                         "prompt": "FAKE_SAY:tick"}])
    first = start(d, tmp_path, 1)
    second = None
    try:
        wait_until(lambda: len(runs(d)) >= 2, 20, "two ticks")
        second = start(d, tmp_path, 2)
        wait_until(lambda: "gateway.lock" in (tmp_path / "gateway2.log").read_text(), 20,
                   "the second gateway to stand by")
        n = len(runs(d))
        wait_until(lambda: len(runs(d)) >= n + 2, 15, "two more ticks")
        stop(*first)
        m = len(runs(d))
        wait_until(lambda: len(runs(d)) >= m + 2, 15, "ticks from the second gateway")
    finally:
        stop(*first)
        if second:
            stop(*second)
    entries = runs(d)
    assert all(e["status"] in ("success", "skipped") and e["trigger"] == "schedule"
               for e in entries)
    times = sorted(dt.datetime.fromisoformat(e["scheduledFor"].replace("Z", "+00:00"))
                   for e in entries)
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    off_phase = [g for g in gaps if g < 0.999 or abs(g - round(g)) > 0.02]
    assert len(off_phase) <= 1, gaps  # one phase per process: two gateways never both ran it
