"""Delivery details through the fake platform: statuses, typing, streaming, errors, hot reload,
relay rounds, persistent dedup and escalations."""
import json
import os

import yaml

import golembot
from golembot.gateway import Gateway, delivery

from .conftest import write_bot
from .test_routing import prompts


def texts(platform, kind="reply", chat=None):
    return [o.get("text") for o in platform.out
            if o["kind"] == kind and (chat is None or o["chatId"] == chat)]


def test_thinking_is_a_reply_once_without_a_status_api(gateway_factory, platform, monkeypatch):
    monkeypatch.setattr(delivery, "THINKING_AFTER_S", 0.05)
    gw = gateway_factory(adapter="PlainAdapter")
    platform.push(chatType="dm", text="FAKE_SLOW:1 FAKE_SAY:late answer")
    platform.wait_for(lambda: gw.metrics.snapshot()["totalMessages"] == 1)
    assert texts(platform) == ["⏳ thinking...", "late answer"]


def test_status_message_lifecycle(gateway_factory, platform, monkeypatch):
    monkeypatch.setattr(delivery, "THINKING_AFTER_S", 0.05)
    gw = gateway_factory()
    platform.push(chatType="dm", text="FAKE_SLOW:1 FAKE_SAY:done now")
    platform.wait_for(lambda: any(o.get("text") == "✅ Done" for o in platform.sent("status")))
    ops = [(o["op"], o.get("text")) for o in platform.sent("status")]
    assert ops == [("send", "⏳ thinking..."), ("update", "✍️ replying..."), ("update", "✅ Done")]
    assert texts(platform) == ["done now"]
    assert gw.metrics.snapshot()["totalMessages"] == 1


def test_groups_never_show_thinking(gateway_factory, platform):
    gw = gateway_factory(groupChat={"groupPolicy": "always"})
    platform.push(chatType="group", senderName="Bob", text="FAKE_SLOW:2 FAKE_SAY:group")
    platform.wait_for(lambda: gw.metrics.snapshot()["totalMessages"] == 1, timeout=20)
    assert platform.sent("status") == [] and texts(platform) == ["group"]


def test_typing_refreshes_until_the_first_chunk(gateway_factory, platform, monkeypatch):
    monkeypatch.setattr(delivery, "TYPING_EVERY_S", 0.1)
    gw = gateway_factory()
    platform.push(chatType="dm", chatId="slow", text="FAKE_SLOW:1.2 FAKE_SAY:slow")
    platform.wait_for(lambda: texts(platform, chat="slow"))
    typed = len(platform.sent("typing"))
    assert typed >= 3, "typing is refreshed while the agent works"
    # a second, later conversation is our clock: the first one's typing has stopped
    platform.push(chatType="dm", chatId="other", text="FAKE_SLOW:0.6 FAKE_SAY:other")
    platform.wait_for(lambda: texts(platform, chat="other"))
    # (one ping may have been in flight when the reply went out)
    assert len([o for o in platform.sent("typing") if o["chatId"] == "slow"]) <= typed + 1
    # metrics are recorded just after the reply is sent: wait for them, do not race them
    platform.wait_for(lambda: gw.metrics.snapshot()["totalMessages"] == 2)


def test_streaming_keeps_code_fences_whole(gateway_factory, platform):
    gw = gateway_factory()
    from golembot.channels.base import ChannelMessage
    msg = ChannelMessage(channelType="fakeim", senderId="u", chatId="fence", chatType="dm",
                         messageId="f1")
    pieces = ["intro\n\n```py\na = 1\n\n", "b = 2\n```\n\nafter", " the fence\n\ntail"]
    events = [{"type": "text", "content": p} for p in pieces]
    events.append({"type": "completion", "status": "completed", "finalText": "".join(pieces)})
    result = delivery.Delivery(gw.adapters["im"], msg, mode="streaming").run(iter(events))
    assert texts(platform) == ["intro", "```py\na = 1\n\nb = 2\n```", "after the fence", "tail"]
    assert result.reply == "".join(pieces) and not result.error


def test_streaming_flushes_before_tools_and_shows_hints(gateway_factory, platform):
    gw = gateway_factory(streaming={"mode": "streaming", "showToolCalls": True})
    platform.push(chatType="dm", text="FAKE_TOOL")
    platform.wait_for(lambda: gw.metrics.snapshot()["totalMessages"] == 1)
    assert texts(platform) == ["I will run a command.", "The command printed: hello"]
    hints = [o["text"] for o in platform.sent("status") if o["op"] in ("send", "update")]
    assert '🔧 Bash {"command":"echo hello"}' in hints


def test_buffered_reply_keeps_paragraphs_between_tool_segments(gateway_factory, platform):
    gw = gateway_factory()
    platform.push(chatType="dm", text="FAKE_TOOL")
    platform.wait_for(lambda: gw.metrics.snapshot()["totalMessages"] == 1)
    assert texts(platform) == ["I will run a command.\n\nThe command printed: hello"]


def test_engine_error_is_answered_with_an_apology(gateway_factory, platform):
    gw = gateway_factory()
    platform.push(chatType="dm", text="FAKE_ERROR")
    platform.wait_for(lambda: texts(platform))
    assert texts(platform) == [
        "Sorry, an error occurred while processing your message. Please try again later."]
    platform.wait_for(lambda: gw.metrics.snapshot()["totalMessages"] == 1)
    assert gw.metrics.snapshot()["recentMessages"][0]["responsePreview"].startswith("Sorry")


def test_group_policy_change_takes_effect_at_once(gateway_factory, platform, fake_path):
    gw = gateway_factory()
    platform.push(chatType="group", senderName="Bob", text="nobody asked the bot")
    platform.push(chatType="dm", text="FAKE_SAY:marker")
    platform.wait_for(lambda: texts(platform) == ["marker"])
    path = os.path.join(gw.dir, "golem.yaml")
    conf = yaml.safe_load(open(path))
    conf["groupChat"] = {"groupPolicy": "always"}
    open(path, "w").write(yaml.safe_dump(conf))
    platform.push(chatType="group", senderName="Bob", text="FAKE_SAY:answered now")
    platform.wait_for(lambda: "answered now" in texts(platform))


def test_history_limit_and_reset_of_the_turn_counter(gateway_factory, platform, fake_path):
    gateway_factory(groupChat={"groupPolicy": "mention-only", "historyLimit": 2, "maxTurns": 1})
    for word in ("one", "two", "three"):
        platform.push(chatType="group", senderName="Bob", text=word)
    platform.push(chatType="group", senderName="Ann", text="@golem FAKE_SAY:first")
    platform.wait_for(lambda: texts(platform) == ["first"])
    [prompt] = prompts(fake_path)
    assert "[Bob] three\n--- New message ---\n[Ann] FAKE_SAY:first" in prompt
    assert "[Bob] two" not in prompt  # historyLimit 2: the message and one before it
    platform.push(chatType="group", senderName="Ann", text="@golem FAKE_SAY:over the limit")
    platform.push(chatType="group", senderName="Ann", text="@golem /reset")
    platform.wait_for(lambda: len(texts(platform)) == 2)
    platform.push(chatType="group", senderName="Ann", text="@golem FAKE_SAY:after reset")
    platform.wait_for(lambda: "after reset" in texts(platform))
    assert "over the limit" not in texts(platform)
    assert "--- Recent group conversation ---" not in prompts(fake_path)[-1]


def test_continue_relays_until_the_sentinel_stops(gateway_factory, platform, fake_path):
    gw = gateway_factory(autoContinue=3)
    platform.push(chatType="dm", text="FAKE_SAY:step one\\n[CONTINUE]")
    platform.wait_for(lambda: gw.metrics.snapshot()["totalMessages"] == 2, timeout=20)
    sent = prompts(fake_path)
    assert "[System: When your reply ends, execution stops completely" in sent[0]
    # round 2 has no FAKE_SAY: it answers with the fixture text, without [CONTINUE], and stops
    assert sent[1:] == [
        "[System: Auto-continue. Your previous reply ended with [CONTINUE]. Continue working "
        "on the task. End with [CONTINUE] again if it is still unfinished.]"]
    assert texts(platform)[0] == "step one" and len(texts(platform)) == 2
    assert "[CONTINUE]" not in "".join(texts(platform))


def test_redelivered_ids_are_ignored_after_a_restart(tmp_path, fake_path, platform):
    d = tmp_path / "bot"
    d.mkdir()
    write_bot(d, platform)
    first = Gateway(golembot.create_assistant(str(d)), str(d))
    first.start(scheduler=False)
    platform.push(chatType="dm", text="FAKE_SAY:only once", messageId="keep-1")
    platform.wait_for(lambda: texts(platform) == ["only once"])
    first.stop()
    saved = json.load(open(d / ".golem" / "seen-messages.json"))
    assert "im:keep-1" in saved
    second = Gateway(golembot.create_assistant(str(d)), str(d))
    second.start(scheduler=False)  # its adapter polls from the start: keep-1 is replayed
    try:
        platform.push(chatType="dm", text="FAKE_SAY:fresh", messageId="keep-2")
        platform.wait_for(lambda: "fresh" in texts(platform))
        assert texts(platform) == ["only once", "fresh"]
    finally:
        second.stop()


def test_escalations_are_sent_to_the_target(gateway_factory, platform, monkeypatch):
    import golembot.gateway as gwmod
    monkeypatch.setattr(gwmod, "ESCALATION_POLL_S", 0.05)
    gw = gateway_factory(escalation={"enabled": True, "target": {"channel": "im", "chatId": "ops"}})
    path = os.path.join(gw.dir, ".golem", "escalations.jsonl")
    with open(path, "a") as fh:
        fh.write("not json\n")
        fh.write(json.dumps({"ts": "2026-01-01T00:00:00Z", "sessionKey": "fakeim:c1:u1",
                             "reason": "wants a human", "status": "open"}) + "\n")
        fh.write('{"reason": "half a line')  # still being written: not sent yet
    platform.wait_for(lambda: platform.sent("send"))
    assert [(o["chatId"], o["text"]) for o in platform.sent("send")] == [
        ("ops", "🚨 Escalation: wants a human (session fakeim:c1:u1)")]
