"""Gateway life cycle without the routing: start timeouts, attach_to_app, reset, loader forms."""
import os

import golembot
from golembot.channels.loader import load_adapter
from golembot.gateway import Gateway, attach_to_app
from golembot.server import create_app

from .conftest import HERE, write_bot


def test_a_hanging_adapter_is_failed_after_the_start_timeout(tmp_path, fake_path, platform,
                                                             monkeypatch):
    import golembot.gateway as gwmod
    monkeypatch.setattr(gwmod, "START_TIMEOUT_S", 0.5)
    d = write_bot(tmp_path, platform)
    import yaml
    conf = yaml.safe_load(open(d / "golem.yaml"))
    conf["channels"]["stuck"] = {"_adapter": os.path.join(HERE, "platform_adapter.py")
                                 + ":HangingAdapter", "url": platform.url}
    (d / "golem.yaml").write_text(yaml.safe_dump(conf))
    gw = Gateway(golembot.create_assistant(str(d)), str(d))
    try:
        gw.start(scheduler=False)
        status = {s["type"]: s for s in gw.channel_status()}
        assert status["im"]["status"] == "connected"
        assert status["stuck"] == {"type": "stuck", "status": "failed",
                                   "error": "did not start within 0.5s"}
        assert list(gw.adapters) == ["im"]
        gw.start(scheduler=False)  # idempotent: nothing started twice
        assert list(gw.adapters) == ["im"]
    finally:
        gw.stop()
        gw.stop()  # idempotent


def test_attach_to_app_twice_elects_once(tmp_path, fake_path, platform):
    d = write_bot(tmp_path, platform)
    assistant = golembot.create_assistant(str(d))
    gw = Gateway(assistant, str(d))
    app = create_app(assistant, gateway=gw)
    try:
        assert attach_to_app(app) is gw
        first = gw._election
        assert attach_to_app(app, assistant, str(d)) is gw and gw._election is first
        platform.wait_for(lambda: "im" in gw.adapters)
        assert gw.leader.held
    finally:
        gw.stop()
    assert not gw.leader.held


def test_attach_to_app_creates_a_gateway_when_the_app_has_none(tmp_path, fake_path, platform):
    d = write_bot(tmp_path, platform)
    assistant = golembot.create_assistant(str(d))
    app = create_app(assistant)
    gw = attach_to_app(app)
    try:
        assert app.extensions["golembot"]["gateway"] is gw and gw.dir == str(d)
        platform.wait_for(lambda: "im" in gw.adapters)
    finally:
        gw.stop()


def test_reset_session_also_forgets_the_group(tmp_path, fake_path, platform):
    d = write_bot(tmp_path, platform)
    assistant = golembot.create_assistant(str(d))
    gw = Gateway(assistant, str(d))
    from golembot.gateway.router import GroupState
    gw.router.groups["fakeim:g1"] = GroupState()
    gw.router.groups["fakeim:g2"] = GroupState()
    assistant.reset_session("fakeim:g1")  # what POST /reset and /reset call
    assert list(gw.router.groups) == ["fakeim:g2"]
    assert gw.router.purge_idle_groups(idle_s=-1) == 1 and gw.router.groups == {}


def test_adapters_load_from_a_dotted_module_path(tmp_path, platform):
    a = load_adapter("x", {"_adapter": "tests.gateway.platform_adapter:PlainAdapter",
                           "url": platform.url}, str(tmp_path))
    assert type(a).__name__ == "PlainAdapter" and a.config["_adapter"].startswith("tests.")
    b = load_adapter("y", {"_adapter": "tests.gateway.platform_adapter", "url": platform.url},
                     str(tmp_path))
    assert type(b).__name__ == "PlatformAdapter"  # the module's ``Adapter``


def test_metrics_feed_subscribers_and_a_slow_one_never_blocks():
    from golembot.gateway.metrics import SUBSCRIBER_QUEUE, Broadcaster, Metrics
    activity = Broadcaster()
    metrics = Metrics(activity)
    fast, stuck = activity.subscribe(), activity.subscribe()
    for i in range(SUBSCRIBER_QUEUE + 5):
        metrics.record("im", "ann", f"m{i}" + "x" * 200, "reply", 100, 0.5 if i == 0 else None)
        assert fast.get(timeout=1)["messagePreview"].startswith(f"m{i}")
    assert stuck.qsize() == SUBSCRIBER_QUEUE  # full: later entries dropped for it only
    activity.unsubscribe(stuck)
    assert activity.subscriber_count == 1
    snap = metrics.snapshot()
    assert snap["totalMessages"] == SUBSCRIBER_QUEUE + 5 and snap["totalCostUsd"] == 0.5
    assert snap["avgDurationMs"] == 100 and snap["messagesBySource"] == {"im": SUBSCRIBER_QUEUE + 5}
    assert len(snap["recentMessages"]) == 100
    assert len(snap["recentMessages"][-1]["messagePreview"]) == 120
