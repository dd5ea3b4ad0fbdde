"""The task store: golem.yaml merge, validation, atomic replacement, concurrent writers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from golembot.scheduler.store import TaskError, TaskNotFound, TaskStore, validate_fields

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def yaml_task(name, schedule="daily 09:00", prompt="p", **extra):
    return {"name": name, "schedule": schedule, "prompt": prompt, "enabled": True, **extra}


def test_missing_or_broken_store_reads_empty(tmp_path):
    store = TaskStore(tmp_path)
    assert store.load() == []
    os.makedirs(tmp_path / ".golem")
    (tmp_path / ".golem" / "tasks.json").write_text("{not json")
    assert store.load() == []
    (tmp_path / ".golem" / "tasks.json").write_text('{"a": 1}')
    assert store.load() == []


def test_merge_creates_config_records(tmp_path):
    store = TaskStore(tmp_path)
    merged = store.merge_config([
        yaml_task("standup", "0 9 * * 1-5", "Summarise", id="daily-standup",
                  target={"channel": "slack", "chatId": "C1"}),
        yaml_task("cleanup", enabled=False)])
    assert [r["name"] for r in merged] == ["standup", "cleanup"]
    standup, cleanup = merged
    assert standup["id"] == "daily-standup"
    assert standup["createdBy"] == "config" and standup["createdAt"].endswith("Z")
    assert standup["target"] == {"channel": "slack", "chatId": "C1"}
    assert len(cleanup["id"]) == 8 and int(cleanup["id"], 16) >= 0
    assert cleanup["enabled"] is False
    raw = (tmp_path / ".golem" / "tasks.json").read_text()
    assert raw.endswith("\n") and json.loads(raw) == merged


def test_merge_keeps_identity_and_run_state_and_api_tasks(tmp_path):
    store = TaskStore(tmp_path)
    first = store.merge_config([yaml_task("a", target={"channel": "x"}), yaml_task("b")])
    a_id = first[0]["id"]
    store.record_run(a_id, "2026-03-02T09:00:41.000Z", "boom")
    api = store.add(validate_fields({"name": "mine", "schedule": "every 5m", "prompt": "q"},
                                    partial=False))
    store.update(a_id, {"enabled": False})  # /cron disable lasts until the next merge
    merged = store.merge_config([yaml_task("a", "every 2h", "new prompt", id="ignored"),
                                 yaml_task("c")])
    by_name = {r["name"]: r for r in merged}
    assert [r["name"] for r in merged] == ["a", "c", "mine"]  # b dropped, API task last
    a = by_name["a"]
    assert a["id"] == a_id  # the stored id wins over a changed yaml id
    assert (a["schedule"], a["prompt"], a["enabled"]) == ("every 2h", "new prompt", True)
    assert "target" not in a  # removed from the yaml → removed
    assert (a["lastRun"], a["lastStatus"], a["lastError"]) == (
        "2026-03-02T09:00:41.000Z", "error", "boom")
    assert by_name["mine"] == api


def test_merge_never_reuses_an_api_id(tmp_path):
    store = TaskStore(tmp_path)
    api = store.add(validate_fields({"name": "mine", "schedule": "every 5m", "prompt": "q"},
                                    partial=False), task_id="same")
    merged = store.merge_config([yaml_task("cfg", id="same")])
    assert merged[0]["id"] != "same" and merged[1] == api


def test_record_run_sets_and_clears_last_error(tmp_path):
    store = TaskStore(tmp_path)
    tid = store.merge_config([yaml_task("a")])[0]["id"]
    store.record_run(tid, "2026-01-01T00:00:00.000Z", "bad")
    assert store.get(tid)["lastError"] == "bad"
    store.record_run(tid, "2026-01-01T00:01:00.000Z", None)
    record = store.get(tid)
    assert record["lastStatus"] == "success" and "lastError" not in record
    store.record_run("gone", "2026-01-01T00:01:00.000Z", None)  # a deleted task stays deleted
    assert [r["id"] for r in store.load()] == [tid]


@pytest.mark.parametrize("body,message", [
    ({"name": "a", "schedule": "every 5m"}, "Missing required fields: name, schedule, prompt"),
    ({"name": "", "schedule": "every 5m", "prompt": "p"}, "Missing required fields"),
    ({"name": 3, "schedule": "every 5m", "prompt": "p"}, '"name" must be a non-empty string'),
    ({"name": "a", "schedule": "every 5x", "prompt": "p"}, 'Task "a": invalid schedule'),
    ({"name": "a", "schedule": "every 5m", "prompt": "p", "enabled": "false"},
     '"enabled" must be true or false'),
    ({"name": "a", "schedule": "every 5m", "prompt": "p", "target": "slack"}, '"target" must'),
    ({"name": "a", "schedule": "every 5m", "prompt": "p", "target": {"chatId": "1"}},
     '"target" must'),
    ({"name": "a", "schedule": "every 5m", "prompt": "p",
      "target": {"channel": "x", "chatId": []}}, '"target.chatId"'),
])
def test_validation(body, message):
    with pytest.raises(TaskError) as err:
        validate_fields(body, partial=False)
    assert message in str(err.value) and err.value.status == 400


def test_patch_validation_rejects_unknown_fields():
    with pytest.raises(TaskError, match="Unknown field: timeout"):
        validate_fields({"timeout": 5}, partial=True)
    assert validate_fields({"target": None}, partial=True) == {"target": None}
    assert validate_fields({"target": {"channel": "tg", "chatId": -100123}}, partial=True) == {
        "target": {"channel": "tg", "chatId": "-100123"}}


def test_duplicates_and_not_found(tmp_path):
    store = TaskStore(tmp_path)
    fields = validate_fields({"name": "a", "schedule": "every 5m", "prompt": "p"}, partial=False)
    store.add(fields, task_id="t1")
    with pytest.raises(TaskError) as err:
        store.add(fields, task_id="t2")
    assert err.value.status == 409 and "name" in str(err.value)
    with pytest.raises(TaskError) as err:
        store.add({**fields, "name": "b"}, task_id="t1")
    assert err.value.status == 409
    with pytest.raises(TaskNotFound) as err:
        store.update("nope", {"enabled": False})
    assert err.value.status == 404 and str(err.value) == "Task not found: nope"
    with pytest.raises(TaskNotFound):
        store.remove("nope")
    assert [r["id"] for r in store.load()] == ["t1"]


WRITER = textwrap.dedent("""
    import sys
    from golembot.scheduler.store import TaskStore
    store = TaskStore(sys.argv[1])
    for i in range(int(sys.argv[3])):
        store.add({"name": f"{sys.argv[2]}-{i}", "schedule": "every 5m", "prompt": "p"})
        if i % 5 == 0:
            rec = store.resolve(f"{sys.argv[2]}-{i}")
            store.update(rec["id"], {"enabled": False})
""")


def test_concurrent_writers_lose_nothing_and_readers_never_see_a_torn_file(tmp_path):
    """Four processes add tasks at once (read-modify-write under the lock) while this process
    keeps reading: every add survives, and every read is a whole JSON array."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    per_writer = 25
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"w{n}",
                               str(per_writer)], env=env) for n in range(4)]
    path = tmp_path / ".golem" / "tasks.json"
    reads = 0
    deadline = time.monotonic() + 60
    while any(p.poll() is None for p in procs):
        assert time.monotonic() < deadline, "writers did not finish"
        if path.exists():
            data = json.loads(path.read_text())  # raises on a torn file
            assert isinstance(data, list)
            reads += 1
    assert all(p.returncode == 0 for p in procs)
    records = TaskStore(tmp_path).load()
    names = sorted(r["name"] for r in records)
    assert names == sorted(f"w{n}-{i}" for n in range(4) for i in range(per_writer))
    assert len({r["id"] for r in records}) == 4 * per_writer
    disabled = {r["name"] for r in records if r["enabled"] is False}
    assert disabled == {f"w{n}-{i}" for n in range(4) for i in range(0, per_writer, 5)}
    assert reads > 0
    assert not [f for f in os.listdir(tmp_path / ".golem") if f.startswith(".tmp-")]
