"""Real processes: leader election between workers, and ``golembot gateway`` end to end."""
import os
import signal
import socket
import sys

import gevent
import requests
from gevent import subprocess

from .conftest import write_bot

HERE = os.path.dirname(os.path.abspath(__file__))


def lock_pid(d):
    try:
        return int(open(os.path.join(d, ".golem", "gateway.lock")).read().strip() or 0)
    except (OSError, ValueError):
        return None


def replies(platform):
    return [o for o in platform.out if o["kind"] == "reply"]


def http(method, url, **kw):
    """requests from a thread, so the fake platform (this hub) keeps answering meanwhile."""
    kw.setdefault("timeout", 10)
    return gevent.get_hub().threadpool.apply(requests.request, (method, url), kw)


def spawn_worker(d):
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "worker_child.py"), str(d)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    with gevent.Timeout(20, AssertionError("worker did not start")):
        port = int(proc.stdout.readline())
    return proc, port


def stop(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def test_one_worker_runs_channels_and_another_takes_over(tmp_path, fake_path, platform):
    d = write_bot(tmp_path, platform)
    a, port_a = spawn_worker(d)
    try:
        platform.wait_for(lambda: str(a.pid) in platform.pollers and lock_pid(d) == a.pid)
        b, port_b = spawn_worker(d)
        try:
            assert http("GET", f"http://127.0.0.1:{port_b}/health").status_code == 200
            platform.push(chatType="dm", text="FAKE_SAY:from the leader")
            platform.wait_for(lambda: replies(platform))
            assert [(r["pid"], r["text"]) for r in replies(platform)] == [(a.pid, "from the leader")]
            assert str(b.pid) not in platform.pollers and lock_pid(d) == a.pid

            a.kill()  # the leader dies without any goodbye; the kernel drops its lock
            a.wait(timeout=10)
            platform.wait_for(lambda: str(b.pid) in platform.pollers, timeout=20)
            assert lock_pid(d) == b.pid
            platform.push(chatType="dm", text="FAKE_SAY:from the new leader", messageId="n1")
            platform.wait_for(lambda: len(replies(platform)) == 2)
            assert (replies(platform)[1]["pid"], replies(platform)[1]["text"]) == (
                b.pid, "from the new leader")
            # the replayed first message was already answered: the seen store kept its id
            assert len(replies(platform)) == 2
        finally:
            stop(b)
    finally:
        stop(a)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_golembot_gateway_command(tmp_path, fake_path, platform):
    d = write_bot(tmp_path, platform)
    import yaml
    conf = yaml.safe_load(open(d / "golem.yaml"))
    conf["channels"]["broken"] = {"_adapter": "./adapters/missing.py"}
    (d / "golem.yaml").write_text(yaml.safe_dump(conf))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from golembot.cli import main; main()", "gateway", "-d", str(d),
         "-p", str(port), "-t", "s3cret-token"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer s3cret-token"}
    try:
        platform.wait_for(lambda: str(proc.pid) in platform.pollers, timeout=20)
        channels = http("GET", base + "/api/channels", headers=auth).json()
        assert channels == {"channels": [{"name": "im", "canSend": True}]}
        r = http("POST", base + "/api/send", headers=auth,
                 json={"channel": "im", "chatId": "room", "text": "proactive hello"})
        assert r.status_code == 200, r.text
        assert [(o["chatId"], o["text"]) for o in platform.sent("send")] == [
            ("room", "proactive hello")]
        platform.push(chatType="dm", senderName="Ann", text="FAKE_SAY:hi Ann")
        platform.wait_for(lambda: replies(platform))
        assert replies(platform)[0]["text"] == "hi Ann"
        status = http("GET", base + "/api/status", headers=auth).json()
        assert status["metrics"]["totalMessages"] == 1
        assert {"type": "im", "status": "connected"} in status["channels"]
    finally:
        proc.send_signal(signal.SIGTERM)
        with gevent.Timeout(25, AssertionError("gateway did not stop on SIGTERM")):
            out = proc.communicate()[0]
    assert proc.returncode == 0, out
    assert "Channel im: connected" in out
    assert 'Channel broken: failed — Failed to load custom adapter "./adapters/missing.py"' in out
    assert "s3cret-token" not in out
    assert lock_pid(d) is None or not os.path.exists(f"/proc/{lock_pid(d)}")
