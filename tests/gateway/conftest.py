"""A fake IM platform on 127.0.0.1 and a gateway wired to it through a custom adapter."""
import os

import gevent
import pytest
import yaml
from flask import Flask, jsonify, request
from gevent.pywsgi import WSGIServer

import golembot
from golembot.gateway import Gateway

HERE = os.path.dirname(os.path.abspath(__file__))


class FakePlatform:
    """Incoming messages are pushed by the test; everything the bot sends is recorded."""

    def __init__(self):
        self.inbox, self.out = [], []
        self.pollers = set()  # pids of the processes polling (leader election tests)
        self.members = {"Alice": "U-ALICE", "Bob": "U-BOB"}
        app = Flask("fake-platform")

        @app.get("/health")
        def health():
            return jsonify(ok=True)

        @app.get("/poll")
        def poll():
            after = int(request.args.get("after", 0))
            self.pollers.add(request.args.get("pid"))
            return jsonify([m for m in self.inbox if m["seq"] > after])

        @app.post("/out")
        def out():
            self.out.append(request.get_json())
            return jsonify(ok=True)

        @app.get("/members")
        def members():
            return jsonify(self.members)

        self.server = WSGIServer(("127.0.0.1", 0), app, log=None)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def push(self, **message):
        message.setdefault("senderId", "u1")
        message.setdefault("chatId", "c1")
        message.setdefault("messageId", f"m{len(self.inbox) + 1}")
        self.inbox.append({"seq": len(self.inbox) + 1, "message": message})

    def sent(self, kind="reply"):
        return [o for o in self.out if o["kind"] == kind]

    def wait_for(self, cond, timeout=15.0):
        """Bounded poll on ``cond``; the failure shows what the platform saw by then."""
        try:
            with gevent.Timeout(timeout):
                while not cond():
                    gevent.sleep(0.02)
        except gevent.Timeout:
            raise AssertionError(f"timed out; platform saw {self.out}") from None


@pytest.fixture
def platform():
    p = FakePlatform()
    yield p
    p.server.stop(timeout=1)


def write_bot(d, platform, channel_extra=None, adapter="PlatformAdapter", **fields):
    """golem.yaml in ``d`` with one channel ``im`` served by the fake platform."""
    channel = {"_adapter": os.path.join(HERE, "platform_adapter.py") + ":" + adapter,
               "url": platform.url, **(channel_extra or {})}
    conf = {"name": "golem", "engine": "claude-code", "autoContinue": 0,
            "channels": {"im": channel}, **fields}
    (d / "golem.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True))
    return d


@pytest.fixture
def gateway_factory(tmp_path, fake_path, platform):
    """``gateway_factory(**golem_yaml_fields)`` → a started Gateway with channel ``im``."""
    made = []

    def make(channel_extra=None, adapter="PlatformAdapter", **fields):
        d = tmp_path / f"gw{len(made)}"
        d.mkdir()
        write_bot(d, platform, channel_extra, adapter, **fields)
        gw = Gateway(golembot.create_assistant(str(d)), str(d))
        gw.start(scheduler=False)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()
