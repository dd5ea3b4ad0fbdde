"""The routing path, end to end: fake platform ⇄ custom adapter ⇄ gateway ⇄ assistant ⇄ fake CLI."""
import json
import os


from golembot.channels.loader import AdapterLoadError, load_adapter
from golembot.gateway import CannotSendError, Gateway, NoAdaptersError, UnknownChannelError


def prompts(log):
    calls = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
    return [c["argv"][c["argv"].index("-p") + 1] if "-p" in c["argv"] else c["argv"][-1]
            for c in calls]


def last_prompt(log):
    calls = [json.loads(l) for l in open(log)]
    argv = calls[-1]["argv"]
    return next(a for a in argv if "FAKE" in a or "[System" in a or "[" in a)


def test_dm_reply_session_and_metrics(gateway_factory, platform, fake_path):
    gw = gateway_factory()
    assert gw.channel_status()[0] == {"type": "im", "status": "connected"}
    platform.push(chatType="dm", senderName="Alice", text="FAKE_SAY:hello Alice")
    platform.wait_for(lambda: gw.metrics.snapshot()["totalMessages"] == 1)
    reply = platform.sent()[0]
    assert reply["text"] == "hello Alice" and reply["replyTo"] == "m1"
    assert "[System: This is a private 1-on-1 conversation with Alice.]" in last_prompt(fake_path)
    env = json.loads(open(fake_path).read().splitlines()[-1])["env"]
    assert env["GOLEM_SESSION_KEY"] == "fakeim:c1:u1"
    snap = gw.metrics.snapshot()
    assert snap["totalMessages"] == 1 and snap["messagesBySource"] == {"im": 1}
    assert snap["recentMessages"][0]["responsePreview"] == "hello Alice"


def test_duplicate_message_ids_are_handled_once(gateway_factory, platform, fake_path):
    gw = gateway_factory()
    platform.push(chatType="dm", text="FAKE_SAY:once", messageId="dup")
    platform.push(chatType="dm", text="FAKE_SAY:once", messageId="dup")
    platform.push(chatType="dm", text="FAKE_SAY:after", messageId="other")
    platform.wait_for(lambda: gw.metrics.snapshot()["totalMessages"] == 2)
    assert sorted(r["text"] for r in platform.sent()) == ["after", "once"]
    assert len(prompts(fake_path)) == 2


def test_mention_only_group_ignores_unaddressed(gateway_factory, platform, fake_path):
    gw = gateway_factory()
    platform.push(chatType="group", senderName="Bob", text="just chatting, no bot needed")
    platform.push(chatType="group", senderName="Alice", text="@golem FAKE_SAY:addressed")
    platform.wait_for(lambda: platform.sent())
    assert [r["text"] for r in platform.sent()] == ["addressed"]
    [prompt] = prompts(fake_path)
    assert "--- Recent group conversation ---\n[Bob] just chatting, no bot needed" in prompt
    assert prompt.endswith("[Alice] FAKE_SAY:addressed")
    assert "[Group: fakeim:c1 | MemoryFile: memory/groups/fakeim-c1.md]" in prompt
    assert os.path.isdir(os.path.join(gw.dir, "memory", "groups"))


def test_smart_policy_pass_is_silent(gateway_factory, platform, fake_path):
    gw = gateway_factory(groupChat={"groupPolicy": "smart"})
    platform.push(chatType="group", senderName="Bob", text="FAKE_SAY:[PASS]")
    platform.wait_for(lambda: gw.metrics.snapshot()["totalMessages"] == 1)
    platform.push(chatType="group", chatId="c2", senderName="Bob", text="@golem FAKE_SAY:here")
    platform.wait_for(lambda: platform.sent())
    assert [r["text"] for r in platform.sent()] == ["here"]
    first, second = prompts(fake_path)
    assert "were NOT directly addressed" in first and "[PASS]" in first
    assert "NOT directly addressed" not in second
    assert gw.metrics.snapshot()["recentMessages"][0]["passed"] is True


def test_always_policy_answers_everything_until_max_turns(gateway_factory, platform, fake_path):
    gateway_factory(groupChat={"groupPolicy": "always", "maxTurns": 2, "historyLimit": 1})
    for i in range(3):
        platform.push(chatType="group", senderName="Bob", text=f"FAKE_SAY:r{i}")
        if i < 2:
            platform.wait_for(lambda i=i: len(platform.sent()) == i + 1)
    platform.push(chatType="dm", text="FAKE_SAY:dm still works")
    platform.wait_for(lambda: any(r["text"] == "dm still works" for r in platform.sent()))
    assert [r["text"] for r in platform.sent()] == ["r0", "r1", "dm still works"]


def test_long_reply_is_split_at_the_adapter_limit(gateway_factory, platform, fake_path):
    gw = gateway_factory(channel_extra={"maxLength": 40})
    text = "\\n\\n".join(f"paragraph {i} " + "x" * 20 for i in range(5)) + " " + "y" * 100
    platform.push(chatType="dm", text="FAKE_SAY:" + text)
    platform.wait_for(lambda: gw.metrics.snapshot()["totalMessages"] == 1)
    chunks = [r["text"] for r in platform.sent()]
    assert all(0 < len(c) <= 40 for c in chunks) and len(chunks) >= 7
    assert chunks[0] == "paragraph 0 " + "x" * 20
    assert "".join(chunks).replace(" ", "") == text.replace("\\n", "").replace(" ", "")


def test_streaming_mode_sends_paragraphs_as_they_complete(gateway_factory, platform, fake_path):
    gateway_factory(streaming={"mode": "streaming"})
    platform.push(chatType="dm", text="FAKE_SAY:first part\\n\\nsecond part")
    platform.wait_for(lambda: len(platform.sent()) == 2)
    assert [r["text"] for r in platform.sent()] == ["first part", "second part"]


def test_outgoing_mentions_and_typing(gateway_factory, platform, fake_path):
    gateway_factory(groupChat={"groupPolicy": "always"})
    platform.push(chatType="group", senderName="Carol", text="FAKE_SAY:@Alice please check, @Bobby no")
    platform.wait_for(lambda: platform.sent())
    assert platform.sent()[0]["mentions"] == [{"name": "Alice", "platformId": "U-ALICE"}]
    assert platform.sent("typing"), "typing is shown before the agent runs"


def test_commands_from_im_need_a_mention_in_groups(gateway_factory, platform, fake_path):
    gateway_factory()
    platform.push(chatType="group", senderName="Bob", text="/status")
    platform.push(chatType="dm", text="/help")
    platform.wait_for(lambda: platform.sent())
    platform.push(chatType="group", senderName="Bob", text="@golem /status")
    platform.wait_for(lambda: len(platform.sent()) == 2)
    texts = [r["text"] for r in platform.sent()]
    assert "/status" in texts[0] or "help" in texts[0].lower()
    assert "engine" in texts[1].lower()
    assert prompts(fake_path) == []  # commands never reach the agent


def test_images_reach_the_assistant(gateway_factory, platform, fake_path):
    gw = gateway_factory()
    adapter = gw.adapters["im"]
    from golembot.channels.base import ChannelMessage
    msg = ChannelMessage(channelType="fakeim", senderId="u9", chatId="c9", chatType="dm",
                         text="FAKE_ECHO", messageId="img-1",
                         images=[{"mimeType": "image/png", "data": b"png", "fileName": "a.png"}])
    gw.router.on_message("im", adapter, msg).join(timeout=15)
    assert "[User attached 1 image(s)." in platform.sent()[0]["text"]


def test_proactive_send_and_its_errors(gateway_factory, platform, tmp_path):
    import pytest
    gw = gateway_factory(channel_extra={"maxLength": 10})
    gw.send("im", "c7", "hello there world")
    assert [o["text"] for o in platform.sent("send")] == ["hello", " there", " world"]
    assert gw.list_channels() == [{"name": "im", "canSend": True}]
    with pytest.raises(UnknownChannelError, match=r'Channel "nope" not found\. Available: im'):
        gw.send("nope", "c", "x")
    with pytest.raises(NoAdaptersError):
        Gateway(gw.assistant, gw.dir).send("im", "c", "x")
    gw.adapters["im"].can_send = False
    assert gw.list_channels() == [{"name": "im", "canSend": False}]
    with pytest.raises(CannotSendError, match="does not support proactive send"):
        gw.send("im", "c", "x")


def test_broken_adapter_fails_alone(tmp_path, fake_path, platform):
    import yaml
    import golembot
    d = tmp_path / "b"
    d.mkdir()
    here = os.path.dirname(os.path.abspath(__file__))
    (d / "golem.yaml").write_text(yaml.safe_dump({
        "name": "golem", "engine": "claude-code",
        "channels": {"good": {"_adapter": os.path.join(here, "platform_adapter.py"), "url": platform.url},
                     "missing": {"_adapter": "./nowhere.py"},
                     "telegram": {"botToken": "x"},
                     "mystery": {"foo": 1}}}))
    gw = Gateway(golembot.create_assistant(str(d)), str(d))
    gw.start(scheduler=False)
    try:
        status = {s["type"]: s for s in gw.channel_status()}
        assert status["good"]["status"] == "connected"
        assert status["missing"]["status"] == "failed" and "nowhere.py" in status["missing"]["error"]
        assert 'Unknown channel type "mystery"' in status["mystery"]["error"]
        assert status["telegram"]["status"] == "failed"
        assert status["slack"]["status"] == "not_configured"
    finally:
        gw.stop()


def test_loader_forms(tmp_path):
    import pytest
    mod = tmp_path / "adapters" / "mine.py"
    mod.parent.mkdir()
    mod.write_text("class One:\n    def __init__(self, c): self.c = c\n    def start(self, cb): pass\n"
                   "    def reply(self, m, t, mentions=None): pass\n    def stop(self): pass\n"
                   "class Two(One):\n    pass\n")
    try:
        load_adapter("k", {"_adapter": "./adapters/mine.py"}, str(tmp_path))
        raise AssertionError("two candidates must be ambiguous")
    except AdapterLoadError as exc:
        assert "One, Two" in str(exc)
    a = load_adapter("k", {"_adapter": "./adapters/mine.py:Two", "x": 1}, str(tmp_path))
    assert type(a).__name__ == "Two" and a.c["x"] == 1
    try:
        load_adapter("k", {"_adapter": "../escape.py"}, str(tmp_path))
        raise AssertionError("must refuse leaving the directory")
    except AdapterLoadError as exc:
        assert "leaves the assistant directory" in str(exc)
    (tmp_path / "adapters" / "bad.py").write_text("def broken(:\n")
    with pytest.raises(AdapterLoadError, match=r'Failed to load custom adapter "\./adapters/bad\.py"'):
        load_adapter("k", {"_adapter": "./adapters/bad.py"}, str(tmp_path))
    with pytest.raises(AdapterLoadError, match=r'could not be created for channel "k": KeyError'):
        load_adapter("k", {"_adapter": os.path.join(os.path.dirname(__file__),
                                                    "platform_adapter.py")}, str(tmp_path))
    try:
        load_adapter("k", {"_adapter": "no_such_module_xyz"}, str(tmp_path))
        raise AssertionError
    except AdapterLoadError as exc:
        assert 'Failed to load custom adapter "no_such_module_xyz"' in str(exc)


def test_adapter_detected_mentions_and_directed_at_others(gateway_factory, platform, fake_path):
    gateway_factory(groupChat={"groupPolicy": "smart"})
    platform.push(chatType="group", senderName="Bob", text="FAKE_SAY:[PASS]",
                  mentionedOthers=["Alice", "Zed"])
    platform.push(chatType="group", chatId="c2", senderName="Bob", text="FAKE_SAY:yes me",
                  mentioned=True)
    platform.wait_for(lambda: len(prompts(fake_path)) == 2 and platform.sent())
    by_group = {("c2" if "fakeim:c2" in p else "c1"): p for p in prompts(fake_path)}
    assert ("[System: This message is directed at Alice, Zed, not you. Only respond if you "
            "have something important to add or correct.") in by_group["c1"]
    assert "directed at" not in by_group["c2"] and "NOT directly" not in by_group["c2"]
    assert [r["text"] for r in platform.sent()] == ["yes me"]


def test_the_bots_own_echo_is_ignored(gateway_factory, platform, fake_path):
    gateway_factory(groupChat={"groupPolicy": "always"})
    platform.push(chatType="group", senderName="golem", text="FAKE_SAY:echo of myself")
    platform.push(chatType="dm", text="FAKE_SAY:marker")
    platform.wait_for(lambda: platform.sent())
    assert [r["text"] for r in platform.sent()] == ["marker"] and len(prompts(fake_path)) == 1


def test_render_mentions_matches_whole_names():
    from golembot.channels import render_mentions
    out = render_mentions("@Bob and @Bobby, @Bob.", [{"name": "Bob", "platformId": "U1"}],
                          lambda m: f"<@{m['platformId']}>")
    assert out == "<@U1> and @Bobby, <@U1>."


def test_reply_failure_is_reported_and_closes_the_status(gateway_factory, platform, monkeypatch):
    from golembot.gateway import delivery
    monkeypatch.setattr(delivery, "THINKING_AFTER_S", 0.05)
    gw = gateway_factory()
    adapter = gw.adapters["im"]
    original = adapter.reply
    calls = []

    def flaky(msg, text, mentions=None):  # the platform rejects the first reply
        calls.append(text)
        if len(calls) == 1:
            raise RuntimeError("platform said 500")
        original(msg, text, mentions)
    adapter.reply = flaky
    platform.push(chatType="dm", text="FAKE_SLOW:0.5 FAKE_SAY:lost")
    platform.wait_for(lambda: platform.sent())
    assert any(o.get("text") == "⚠️ Failed" for o in platform.sent("status"))
    assert [r["text"] for r in platform.sent()] == [
        "Sorry, an error occurred while processing your message. Please try again later."]


def test_stop_from_im_aborts_the_running_turn(gateway_factory, platform, fake_path):
    gw = gateway_factory()
    platform.push(chatType="dm", text="FAKE_SLOW:30 FAKE_SAY:never")
    platform.wait_for(lambda: gw.assistant.is_running("fakeim:c1:u1"))
    platform.push(chatType="dm", text="/stop")
    platform.wait_for(lambda: len(platform.sent()) == 2, timeout=10)
    texts = [r["text"] for r in platform.sent()]
    assert "never" not in texts
    assert "Sorry, an error occurred while processing your message. Please try again later." in texts
    assert not gw.assistant.is_running("fakeim:c1:u1")
