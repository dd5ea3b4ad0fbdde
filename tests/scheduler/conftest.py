"""Fixtures for the scheduler tests: a bot directory with tasks, its assistant, a recording
channel, and a task API served on a real socket (gevent's WSGIServer on 127.0.0.1:0).

Everything runs on this process's gevent loop; blocking ``requests`` calls go through gevent's
thread pool (as ``tests/server`` does), so the loop keeps serving while a client waits.
"""
from __future__ import annotations

import time

import gevent
import pytest

import golembot


class Channel:
    """A fake IM channel: records what a task delivers; ``fail`` makes ``send`` raise."""

    def __init__(self, chats=None):
        self.sent: list = []
        self.fail: str | None = None
        self.chats = chats

    def send(self, channel, chat_id, text):
        if self.fail:
            raise RuntimeError(self.fail)
        self.sent.append((channel, chat_id, text))

    def list_chats(self, channel):
        return self.chats


def wait_for(condition, timeout=10.0, interval=0.02, message="condition"):
    """Bounded cooperative poll: returns the first truthy value of ``condition()``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        gevent.sleep(interval)


def in_thread(fn, *args, **kwargs):
    return gevent.get_hub().threadpool.apply(fn, args, kwargs)


@pytest.fixture
def bot(make_bot):
    """``bot(tasks=[...], **yaml)`` → (dir, assistant)."""
    def _make(**fields):
        d = make_bot(**fields)
        return d, golembot.create_assistant(d)
    return _make


@pytest.fixture
def channel():
    return Channel()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gunicorn_exactly_once: real gunicorn workers, a task every second, the "
        "elected worker killed mid-test (about 15 s)")
