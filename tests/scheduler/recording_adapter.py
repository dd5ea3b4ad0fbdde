"""A custom channel adapter (loaded through ``_adapter:``) that records what it is sent.

The test reaches the instance through ``gateway.adapters[...]``: ``sent`` holds every proactive
``send`` and ``replies`` every reply; ``deliver(text, chat_id)`` plays an incoming message.
``list_chats`` lists the chats configured as ``chats`` (for broadcast targets).
"""
from golembot.channels.base import ChannelAdapter, ChannelMessage


class Recorder(ChannelAdapter):
    name = "recorder"

    def __init__(self, config):
        super().__init__(config)
        self.sent, self.replies = [], []
        self.on_message = None
        self.fail = None

    def start(self, on_message):
        self.on_message = on_message

    def deliver(self, text, chat_id="dm1", sender="u1"):
        self.on_message(ChannelMessage(channelType="recorder", senderId=sender, chatId=chat_id,
                                       text=text, messageId=f"m{len(self.replies)}-{text}"))

    def reply(self, msg, text, mentions=None):
        self.replies.append((msg.chatId, text))

    def send(self, chat_id, text):
        if self.fail:
            raise RuntimeError(self.fail)
        self.sent.append((chat_id, text))

    def list_chats(self):
        return [{"chatId": c, "chatType": "group"} for c in self.config.get("chats", [])]

    def stop(self):
        pass
