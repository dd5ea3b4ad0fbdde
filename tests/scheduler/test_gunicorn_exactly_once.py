"""Exactly once under ``gunicorn -w 4 -c gunicorn.conf.py wsgi:app`` (the shipped files, gateway
mode): real gevent workers, a task due every second (``every 1s``, test-only), the fake engine answering ``FAKE_SAY:tick``.

Every tick writes one history line carrying its own fire time (``scheduledFor``). One scheduler
produces fire times exactly whole seconds apart; a second scheduler would add lines out of that
phase (or the same times twice). The elected worker is then SIGKILLed mid-test and another must
take over within a few seconds. Marked ``gunicorn_exactly_once``; about 15 s.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from golembot.scheduler import history

pytestmark = pytest.mark.gunicorn_exactly_once

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")
TAKEOVER_BOUND_S = 8.0


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
        time.sleep(0.05)  # the test's bounded poll interval, not a wait-to-pass


def lines(d, task_id="tick"):
    path = history.history_path(d, task_id)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def leader_pid(d):
    try:
        text = open(os.path.join(d, ".golem", "gateway.lock")).read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def children(pid):
    """Live child pids of ``pid`` (from /proc: no ``ps`` needed)."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(pid) and fields[0] != "Z":
            out.add(int(entry))
    return out


def fire_times(entries):
    return sorted(dt.datetime.fromisoformat(e["scheduledFor"].replace("Z", "+00:00"))
                  for e in entries)


def off_phase_gaps(times):
    """Gaps between consecutive fire times that are not a whole number of seconds (≥ 1)."""
    out = []
    for a, b in zip(times, times[1:]):
        gap = (b - a).total_seconds()
        if gap < 0.999 or abs(gap - round(gap)) > 0.02:
            out.append(gap)
    return out


def test_every_tick_runs_once_across_four_workers_and_survives_the_leader(make_bot, tmp_path):
    d = make_bot(tasks=[{"id": "tick", "name": "tick", "schedule": "every 1s",
                         "prompt": "FAKE_SAY:tick"}])
    port = free_port()
    env = {**os.environ, "GOLEM_DIR": d, "GOLEM_PORT": str(port), "GOLEM_HOST": "127.0.0.1",
           "GOLEM_WORKERS": "4", "GOLEM_ALLOW_SECOND_SCHEDULES": "1", "PYTHONPATH": ROOT}
    env.pop("GOLEM_TOKEN", None)
    log = open(tmp_path / "gunicorn.log", "w")
    env.pop("GOLEM_MODE", None)
    master = subprocess.Popen([GUNICORN, "-w", "4", "-c", "gunicorn.conf.py", "wsgi:app"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        workers = wait_until(lambda: len(children(master.pid)) == 4 and children(master.pid),
                             20, "4 workers")
        wait_until(lambda: len(lines(d)) >= 3, 20, "3 ticks")
        first = leader_pid(d)
        assert first in workers and first != master.pid  # elected after fork, in a worker
        # a task created through the API (on whichever worker answers) reaches the leader
        resp = requests.post(f"http://127.0.0.1:{port}/api/tasks", timeout=10, json={
            "id": "tock", "name": "tock", "schedule": "every 1s", "prompt": "FAKE_SAY:tock"})
        assert resp.status_code == 201, resp.text
        wait_until(lambda: len(lines(d, "tock")) >= 2, 15, "2 ticks of the API task")

        before = len(lines(d))
        os.kill(first, signal.SIGKILL)
        killed_at = time.monotonic()
        second = wait_until(lambda: (leader_pid(d) not in (None, first)) and leader_pid(d),
                            TAKEOVER_BOUND_S, "another worker to take over")
        assert second in children(master.pid)  # a surviving worker, or gunicorn's replacement
        wait_until(lambda: len(lines(d)) >= before + 1, TAKEOVER_BOUND_S, "a tick after the kill")
        took_over_in = time.monotonic() - killed_at
        wait_until(lambda: len(lines(d)) >= before + 3, 15, "3 ticks from the new leader")
        tocks = len(lines(d, "tock"))
        wait_until(lambda: len(lines(d, "tock")) >= tocks + 1, 10, "the API task re-armed")
    finally:
        os.killpg(master.pid, signal.SIGTERM)
        try:
            master.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(master.pid, signal.SIGKILL)
            master.wait()
        log.close()

    output = (tmp_path / "gunicorn.log").read_text()
    for task_id in ("tick", "tock"):
        entries = lines(d, task_id)
        assert all(e["trigger"] == "schedule" for e in entries), output
        assert all(e["status"] in ("success", "skipped") for e in entries), entries
        assert [e for e in entries if e["status"] == "success"][0]["reply"] == task_id
        times = fire_times(entries)
        assert len(set(times)) == len(times), f"a tick of {task_id} ran twice"
        # one phase per leader: at most one off-phase gap, at the take-over
        assert len(off_phase_gaps(times)) <= 1, (task_id, off_phase_gaps(times), output[-3000:])
    assert took_over_in < TAKEOVER_BOUND_S
