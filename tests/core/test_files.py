"""Names built from user input stay in their folder; state writes are atomic."""
import json
import os

import gevent
import pytest

from golembot.files import (UnsafePathError, append_line, atomic_write_json, confined_path,
                            safe_file_name, safe_key)


@pytest.mark.parametrize("key", ["../../x", "a/b", "..", ".", "a\x00b", "x" * 5000,
                                 "用户:张三", "slack:D1:U1:thread:1742811111.000100", "", "/etc/passwd"])
def test_safe_key_never_escapes(tmp_path, key):
    name = safe_key(key) + ".jsonl"
    assert "/" not in name and "\x00" not in name and not name.startswith(".")
    assert len(name) <= 140
    path = confined_path(str(tmp_path), name)
    assert os.path.dirname(path) == os.path.realpath(tmp_path)


def test_safe_key_keeps_clean_keys_and_separates_collisions():
    assert safe_key("default") == "default"
    assert safe_key("user:alice") == "user:alice"
    assert safe_key("a.b") != safe_key("a/b")
    assert safe_key("x" * 5000) != safe_key("x" * 5001)


@pytest.mark.parametrize("name,expected_start", [("../../golem.yaml", "golem.yaml"), ("a/b.png", "b.png"),
                                                 ("..\\..\\x.png", "x.png"), (".hidden", "hidden"),
                                                 ("", "fallback"), ("..", "fallback")])
def test_safe_file_name(name, expected_start):
    assert safe_file_name(name, "fallback").startswith(expected_start)


def test_safe_file_name_bounds_length_and_keeps_extension():
    name = safe_file_name("y" * 1000 + ".png", "f")
    assert len(name) <= 120 and name.endswith(".png")


def test_confined_path_refuses_escape(tmp_path):
    with pytest.raises(UnsafePathError):
        confined_path(str(tmp_path), "../x")
    with pytest.raises(UnsafePathError):
        confined_path(str(tmp_path), "sub/x")


def test_atomic_json_survives_concurrent_writers(tmp_path):
    path = str(tmp_path / "state.json")

    def writer(i):
        for j in range(20):
            atomic_write_json(path, {"writer": i, "n": j, "pad": "z" * 10000})
            gevent.sleep(0)

    gevent.joinall([gevent.spawn(writer, i) for i in range(5)])
    data = json.load(open(path))
    assert data["n"] == 19
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")] == []


def test_append_line_whole_lines(tmp_path):
    path = str(tmp_path / "h" / "x.jsonl")
    for i in range(50):
        append_line(path, json.dumps({"i": i}))
    lines = open(path).read().splitlines()
    assert [json.loads(l)["i"] for l in lines] == list(range(50))


def test_concurrent_session_saves_all_land_and_clear_wins(tmp_path):
    from golembot.sessions import SessionStore
    store = SessionStore(str(tmp_path / ".golem"))
    gevent.joinall([gevent.spawn(store.save, f"k{i}", f"s{i}", "codex") for i in range(100)],
                   raise_error=True)
    data = json.load(open(tmp_path / ".golem" / "sessions.json"))
    assert {k: v["engineSessionId"] for k, v in data.items()} == {f"k{i}": f"s{i}" for i in range(100)}
    gevent.joinall([gevent.spawn(store.clear, f"k{i}") for i in range(0, 100, 2)] +
                   [gevent.spawn(store.save, "new", "sN", "codex")], raise_error=True)
    data = json.load(open(tmp_path / ".golem" / "sessions.json"))
    assert sorted(data) == sorted([f"k{i}" for i in range(1, 100, 2)] + ["new"])
    assert store.load("new", "codex") == "sN" and store.load("new", "claude-code") is None
