"""IM channels: the adapter contract (:mod:`.base`) and custom adapter loading (:mod:`.loader`)."""
from .base import ChannelAdapter, ChannelMessage, can_send

__all__ = ["ChannelAdapter", "ChannelMessage", "can_send"]
