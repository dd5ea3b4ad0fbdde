"""Shared by test_api.py and test_dashboard.py: the custom adapter that stands in for an IM
platform (loaded by the real gateway from the assistant directory through ``_adapter:``)."""
from __future__ import annotations

import os
import textwrap

ADAPTER = textwrap.dedent('''
    """Test platform: an HTTP endpoint stands in for the IM service.

    POST / {"sender", "text", "id", "chatId"?} delivers an incoming message; GET / returns every
    message the bot sent (replies and proactive sends).
    """
    import json

    from gevent.pywsgi import WSGIServer

    from golembot.channels.base import ChannelAdapter, ChannelMessage


    class WebAdapter(ChannelAdapter):
        """Can send proactively; replies and sends land in ``outbox``."""

        def __init__(self, config):
            super().__init__(config)
            self.config = config
            self.outbox = []
            self.server = None

        def start(self, on_message):
            self.on_message = on_message
            self.server = WSGIServer(("127.0.0.1", 0), self.platform, log=None)
            self.server.start()
            with open(self.config["portFile"], "w") as fh:
                fh.write(str(self.server.server_port))

        def platform(self, environ, start_response):
            if environ["REQUEST_METHOD"] == "POST":
                size = int(environ.get("CONTENT_LENGTH") or 0)
                body = json.loads(environ["wsgi.input"].read(size))
                self.on_message(ChannelMessage(
                    channelType="web", senderId=body["sender"], senderName=body["sender"],
                    chatId=body.get("chatId") or "dm-" + body["sender"], chatType="dm",
                    text=body["text"], messageId=body["id"]))
                out = b"{}"
            else:
                out = json.dumps(self.outbox).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [out]

        def reply(self, msg, text, mentions=None):
            self.outbox.append({"chatId": msg.chatId, "text": text})

        def send(self, chat_id, text):
            self.outbox.append({"chatId": chat_id, "text": text})

        def stop(self):
            if self.server is not None:
                self.server.stop(timeout=1)


    class ListenOnly(WebAdapter):
        """A channel that cannot send proactively."""
        can_send = False
''')


def write_adapter(bot_dir: str) -> None:
    os.makedirs(os.path.join(bot_dir, "adapters"), exist_ok=True)
    with open(os.path.join(bot_dir, "adapters", "web.py"), "w") as fh:
        fh.write(ADAPTER)


def make_gateway(assistant, dir, config):
    from golembot.gateway import Gateway
    return Gateway(assistant, dir, config)
