"""The contract between the gateway and an IM platform: one incoming message, one adapter.

An adapter connects to its platform, calls ``on_message(msg)`` for every incoming message and
answers with ``reply``. Everything else (typing, proactive ``send``, member lists for
@mentions, history, chat lists) is optional and detected by presence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class ChannelMessage:
    """One incoming message, as an adapter hands it to the gateway."""
    channelType: str
    senderId: str
    chatId: str
    text: str = ""
    chatType: str = "dm"              # "dm" | "group"
    senderName: str | None = None
    messageId: str | None = None
    threadId: str | None = None
    images: list = field(default_factory=list)   # [{"mimeType", "data": bytes, "fileName"?}]
    files: list = field(default_factory=list)
    raw: object = None
    senderType: str | None = None     # "user" | "bot" when the platform says
    mentioned: bool | None = None     # adapter-detected @mention of this bot
    mentionedOthers: list = field(default_factory=list)

    @property
    def is_group(self) -> bool:
        return self.chatType == "group"


class ChannelAdapter:
    """Base class for adapters. Subclasses must implement ``start``, ``reply`` and ``stop``.

    Optional members (only define them when the platform supports them): ``typing(msg)``,
    ``send(chat_id, text)`` (+ ``can_send``), ``get_group_members(chat_id)`` →
    ``{display_name: platform_id}``, ``fetch_history(chat_id, since, limit=50)``,
    ``list_chats()`` → ``[{"chatId", "chatType"}]``, ``send_status``/``update_status``/
    ``clear_status``. ``max_message_length`` is the split size for long replies.
    """

    name = "custom"
    max_message_length = 4000

    def __init__(self, config: dict | None = None):
        self.config = dict(config or {})

    def start(self, on_message) -> None:
        """Connect; call ``on_message(ChannelMessage)`` per message; return once ready."""
        raise NotImplementedError

    def reply(self, msg: ChannelMessage, text: str, mentions=None) -> None:
        """Answer ``msg``; raise on failure. ``mentions``: ``[{"name", "platformId"}]``."""
        raise NotImplementedError

    def stop(self) -> None:
        """Disconnect (best effort)."""


def can_send(adapter) -> bool:
    """``can_send`` when the adapter states it, else whether it has a callable ``send``."""
    flag = getattr(adapter, "can_send", None)
    if isinstance(flag, bool):
        return flag and callable(getattr(adapter, "send", None))
    return callable(getattr(adapter, "send", None))


def render_mentions(text: str, mentions, render) -> str:
    """Replace each ``@Name`` of ``mentions`` (``[{"name", "platformId"}]``) by
    ``render(mention)``, e.g. ``lambda m: f"<@{m['platformId']}>"``.

    Whole names only: ``@Bob`` never rewrites the start of ``@Bobby``. For adapters, which own
    the platform's mention syntax; the gateway only finds who is mentioned.
    """
    for mention in mentions or ():
        pattern = re.compile("@" + re.escape(mention["name"]) + r"(?![A-Za-z0-9_\u4e00-\u9fff])")
        text = pattern.sub(lambda _m, mention=mention: render(mention), text)
    return text
