"""History files are read from the end: correct across block boundaries, at any size."""
from __future__ import annotations

from golembot.scheduler import history


def test_reads_newest_first_across_blocks(tmp_path):
    for i in range(300):
        history.append(tmp_path, {"taskId": "t", "reply": f"{i}:" + "é" * 700, "status": "success"})
    got = history.read(tmp_path, "t", limit=250)
    assert [int(e["reply"].split(":")[0]) for e in got] == list(range(299, 49, -1))
    assert all(e["reply"].endswith("é" * 700) for e in got)
    assert len(history.read(tmp_path, "t", limit=1000)) == 300
    assert history.read(tmp_path, "t", limit=0) == []


def test_unsafe_ids_stay_in_the_history_folder(tmp_path):
    history.append(tmp_path, {"taskId": "../../evil", "reply": "x"})
    path = history.history_path(tmp_path, "../../evil")
    assert path.startswith(str(tmp_path / ".golem" / "tasks" / "history") + "/")
    assert history.read(tmp_path, "../../evil")[0]["reply"] == "x"
    assert history.read(tmp_path, "missing") == []
