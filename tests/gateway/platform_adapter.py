"""Custom adapters (loaded through ``_adapter:``) for the fake platform in ``conftest.py``.

They talk to the platform over real HTTP, as a real adapter would: poll ``/poll`` for incoming
messages and post replies, typing pings, statuses and proactive sends to ``/out``. Blocking
``requests`` calls run in gevent's thread pool so the test process's event loop keeps running.

``PlainAdapter`` has no status-message API (the gateway then sends "⏳ thinking..." as an
ordinary reply); ``PlatformAdapter`` adds one. ``Adapter`` is what a bare path loads.
"""
import os

import gevent
import requests

from golembot.channels.base import ChannelAdapter, ChannelMessage


def _call(method, url, **kw):
    kw.setdefault("timeout", 10)
    resp = gevent.get_hub().threadpool.apply(requests.request, (method, url), kw)
    resp.raise_for_status()
    return resp.json()


class PlainAdapter(ChannelAdapter):
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
            try:
                items = _call("GET", self.url + "/poll", params={"after": after, "pid": os.getpid()})
            except requests.RequestException:  # platform away: retry, as a real adapter would
                gevent.sleep(0.2)
                continue
            for item in items:
                after = item["seq"]
                on_message(ChannelMessage(channelType="fakeim", **item["message"]))
            gevent.sleep(0.02)

    def _out(self, **body):
        _call("POST", self.url + "/out", json={"pid": os.getpid(), **body})

    def reply(self, msg, text, mentions=None):
        self._out(kind="reply", chatId=msg.chatId, replyTo=msg.messageId, text=text,
                  mentions=mentions or [])

    def send(self, chat_id, text):
        self._out(kind="send", chatId=chat_id, text=text)

    def typing(self, msg):
        self._out(kind="typing", chatId=msg.chatId)

    def get_group_members(self, chat_id):
        return _call("GET", self.url + "/members", params={"chatId": chat_id})

    def stop(self):
        if self._poller is not None:
            self._poller.kill(block=False)


class PlatformAdapter(PlainAdapter):
    """With status messages (like Slack): create, edit, delete."""

    def send_status(self, msg, text):
        self._out(kind="status", op="send", chatId=msg.chatId, text=text)
        return f"st-{msg.messageId}"

    def update_status(self, msg, status_id, text):
        self._out(kind="status", op="update", chatId=msg.chatId, id=status_id, text=text)

    def clear_status(self, msg, status_id):
        self._out(kind="status", op="clear", chatId=msg.chatId, id=status_id)


Adapter = PlatformAdapter


class HangingAdapter(PlainAdapter):
    """A platform handshake that never completes."""

    def start(self, on_message):
        gevent.sleep(3600)
