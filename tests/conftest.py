"""How to start each part in a test.

* ``fake_path``: puts ``tests/fake_bin`` (fake ``claude``, ``codex``, ``agent``, ``opencode``
  that replay ``../shared/fixtures/engines``) first on PATH.
* ``make_bot(engine=..., **yaml_fields)``: a fresh assistant directory with a golem.yaml.
"""
from __future__ import annotations

import os
import sys

import pytest
import yaml

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
FAKE_BIN = os.path.join(TESTS, "fake_bin")
FIXTURES = os.path.abspath(os.path.join(ROOT, "..", "shared", "fixtures", "engines"))
if not os.path.isdir(FIXTURES):  # CI may place shared/ elsewhere
    FIXTURES = os.environ.get("GOLEM_FIXTURES", FIXTURES)


@pytest.fixture
def fake_path(monkeypatch, tmp_path):
    """PATH with the fake CLIs first; HOME isolated so ~/.local/bin is never consulted."""
    monkeypatch.setenv("PATH", FAKE_BIN + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("GOLEM_FIXTURES", FIXTURES)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    log = tmp_path / "fake_calls.jsonl"
    monkeypatch.setenv("GOLEM_FAKE_LOG", str(log))
    return log


@pytest.fixture
def make_bot(tmp_path, fake_path):
    """Factory: ``make_bot(engine="claude-code", name="bot", **fields)`` → directory path."""
    counter = [0]

    def _make(engine="claude-code", name="bot", **fields):
        counter[0] += 1
        d = tmp_path / f"bot{counter[0]}"
        d.mkdir()
        (d / "golem.yaml").write_text(yaml.safe_dump({"name": name, "engine": engine, **fields}))
        return str(d)

    return _make
