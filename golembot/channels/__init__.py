"""IM channels: the adapter contract (:mod:`.base`) and custom adapter loading (:mod:`.loader`)."""
from .base import ChannelAdapter, ChannelMessage, can_send, render_mentions

__all__ = ["ChannelAdapter", "ChannelMessage", "can_send", "render_mentions"]
