"""A custom adapter (loaded through ``_adapter:``) for the fake platform in ``conftest.py``.

It talks to the platform over real HTTP, as a real adapter would: it polls ``/poll`` for
incoming messages and posts replies, typing pings and proactive sends. Blocking ``requests``
calls run in gevent's thread pool so the test process's event loop keeps running.
"""
import gevent
import requests

from golembot.channels.base import ChannelAdapter, ChannelMessage


def _call(method, url, **kw):
    kw.setdefault("timeout", 10)
    resp = gevent.get_hub().threadpool.apply(requests.request, (method, url), kw)
    resp.raise_for_status()
    return resp.json()


class PlatformAdapter(ChannelAdapter):
    name = "fakeim"

    def __init__(self, config):
        super().__init__(config)
        self.url = config["url"]
        self.max_message_length = int(config.get("maxLength", 4000))
        self._poller = None

    def start(self, on_message):
        _call("GET", self.url + "/health")  # fail at start when the platform is down
        self._poller = gevent.spawn(self._poll, on_message)

    def _poll(self, on_message):
        after = 0
        while True:
            for item in _call("GET", self.url + "/poll", params={"after": after}):
                after = item["seq"]
                on_message(ChannelMessage(channelType="fakeim", **item["message"]))
            gevent.sleep(0.02)

    def reply(self, msg, text, mentions=None):
        _call("POST", self.url + "/out", json={"kind": "reply", "chatId": msg.chatId,
                                               "replyTo": msg.messageId, "text": text,
                                               "mentions": mentions or []})

    def send(self, chat_id, text):
        _call("POST", self.url + "/out", json={"kind": "send", "chatId": chat_id, "text": text})

    def typing(self, msg):
        _call("POST", self.url + "/out", json={"kind": "typing", "chatId": msg.chatId})

    def get_group_members(self, chat_id):
        return _call("GET", self.url + "/members", params={"chatId": chat_id})

    def stop(self):
        if self._poller is not None:
            self._poller.kill(block=False)
