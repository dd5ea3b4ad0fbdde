"""From an incoming IM message to agent rounds: dedup, commands, group policy, prompt, relay.

Each message is handled in its own greenlet (adapters hand off and return at once). Settings
that the dashboard may change at runtime (group policy, limits, streaming, autoContinue,
timeout) are read from golem.yaml for every message, so PATCH /api/config takes effect at once.
"""
from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict

import gevent

from .. import commands
from . import prompts
from .delivery import Delivery

log = logging.getLogger("golembot.gateway")
SEEN_LIMIT = 2000
GROUP_IDLE_S = 3600


class GroupState:
    """Per group conversation: recent messages, bot turns, last activity."""

    def __init__(self):
        self.history: list = []
        self.turns = 0
        self.last_activity = 0.0


class Router:
    def __init__(self, gateway):
        self.gw = gateway
        self.groups: dict = {}
        self._seen: OrderedDict = OrderedDict()
        self._inbound: dict = {}

    # -- entry point --------------------------------------------------------------------------
    def on_message(self, channel_key: str, adapter, msg) -> gevent.Greenlet | None:
        """The adapters' callback: dedup at once, then handle in a new greenlet and return."""
        if msg.messageId:
            seen_key = (channel_key, msg.messageId)
            if seen_key in self._seen:
                return None
            self._seen[seen_key] = True
            while len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)
            store = self.gw.seen
            if store is not None and not store.mark_new(f"{channel_key}:{msg.messageId}"):
                return None
        return gevent.spawn(self._handle_safely, channel_key, adapter, msg)

    def purge_idle_groups(self, idle_s: float = GROUP_IDLE_S) -> int:
        """Forget history, turns and activity of groups quiet for more than an hour."""
        cutoff = time.monotonic() - idle_s
        stale = [k for k, st in self.groups.items() if st.last_activity < cutoff]
        for key in stale:
            self.groups.pop(key, None)
        return len(stale)

    def reset_group(self, key: str) -> None:
        self.groups.pop(key, None)

    def _handle_safely(self, channel_key, adapter, msg) -> None:
        try:
            self.handle(channel_key, adapter, msg)
        except Exception:  # noqa: BLE001 - one bad message must not kill the gateway
            log.exception("message from %s failed", channel_key)
            try:
                adapter.reply(msg, prompts.APOLOGY)
            except Exception:  # noqa: BLE001
                pass

    # -- the pipeline -------------------------------------------------------------------------
    def handle(self, channel_key: str, adapter, msg) -> None:
        # --verbose: who and where, never what (message text stays out of logs)
        log.debug("[%s] received from %s in %s %s", channel_key, msg.senderName or msg.senderId,
                  msg.chatType, msg.chatId)
        config = self.gw.current_config()
        name = config.get("name", "")
        group = msg.chatType == "group"
        text = prompts.strip_mention(msg.text or "", name) if group else (msg.text or "")
        if not text.strip() and not msg.images and not msg.files:
            return
        key = prompts.session_key(msg)
        mentioned = group and (prompts.detect_mention(msg.text or "", name) or msg.mentioned is True)
        if commands.is_command(text.strip()):
            if not group or mentioned:  # in groups only an addressed bot obeys commands
                self._command(channel_key, adapter, msg, key, text.strip())
            return
        gc = config.get("groupChat") or {}
        inject_pass = False
        if group:
            if msg.senderName and msg.senderName == name:
                return
            state = self.groups.setdefault(key, GroupState())
            now = time.monotonic()
            if now - state.last_activity > GROUP_IDLE_S:
                state.turns = 0
            state.last_activity = now
            self._remember(state, msg.senderName or msg.senderId, text,
                           msg.senderType == "bot", gc.get("historyLimit", 20))
            policy = gc.get("groupPolicy", "mention-only")
            if policy == "mention-only" and not mentioned:
                return
            if state.turns >= gc.get("maxTurns", 10):
                return
            inject_pass = policy == "smart" and not mentioned
            try:  # the prompt names memory/groups/<group>.md for the agent to keep notes in
                os.makedirs(os.path.join(self.gw.dir, "memory", "groups"), exist_ok=True)
            except OSError:
                pass
        auto_continue = int(config.get("autoContinue", 5) or 0)
        if group:
            prompt = prompts.group_prompt(
                group_key=key, sender=msg.senderName or msg.senderId, text=text,
                history=state.history, auto_continue=auto_continue > 0, inject_pass=inject_pass,
                mentioned_others=msg.mentionedOthers if inject_pass else (),
                peers=self.gw.peers())
        else:
            prompt = prompts.dm_prompt(msg.senderName or msg.senderId, msg.text or "",
                                       auto_continue > 0)
        seq = self._inbound[key] = self._inbound.get(key, 0) + 1
        self._run_rounds(channel_key, adapter, msg, key, text, prompt, seq, config,
                         inject_pass, auto_continue)

    def _run_rounds(self, channel_key, adapter, msg, key, text, prompt, seq, config,
                    inject_pass, auto_continue) -> None:
        streaming = config.get("streaming") or {}
        mode = "buffered" if inject_pass else streaming.get("mode", "buffered")
        delivery = Delivery(adapter, msg, mode=mode, timeout_s=config.get("timeout", 600),
                            show_tool_calls=bool(streaming.get("showToolCalls")))
        result, final = None, "⚠️ Failed"  # stays so if a round raises
        try:
            for round_no in range(auto_continue + 1):
                result = self._round(channel_key, msg, key, text, prompt, config, delivery,
                                     first=round_no == 0)
                if result.silent or not result.continued or result.error:
                    break
                if self._inbound.get(key) != seq:  # a newer message for this session arrived
                    break
                if round_no == auto_continue:
                    log.info("auto-continue cap (%d) reached for %s", auto_continue, key)
            final = delivery.final_status(result)
        finally:
            delivery.finish(final)

    def _round(self, channel_key, msg, key, text, prompt, config, delivery, first):
        """One agent run and its delivery; records history, turns and metrics."""
        started = time.monotonic()
        events = self.gw.assistant.chat(prompt if first else prompts.AUTO_CONTINUE,
                                        session_key=key,
                                        images=(msg.images or None) if first else None,
                                        files=(msg.files or None) if first else None)
        result = delivery.run(events)
        duration = result.duration_ms or int((time.monotonic() - started) * 1000)
        sender = msg.senderName or msg.senderId
        if result.silent:
            self.gw.metrics.record(channel_key, sender, text, "", duration, result.cost_usd,
                                   passed=True)
            return result
        if msg.chatType == "group" and result.reply.strip():
            state = self.groups.setdefault(key, GroupState())
            self._remember(state, config.get("name", "bot"), result.reply, True,
                           (config.get("groupChat") or {}).get("historyLimit", 20))
            state.turns += 1
        if result.reply.strip() or result.error:
            shown = result.reply if result.reply.strip() else prompts.APOLOGY
            self.gw.metrics.record(channel_key, sender, text, shown, duration, result.cost_usd)
        return result

    def _command(self, channel_key, adapter, msg, key, text) -> None:
        result = commands.execute(self.gw.assistant, text, session_key=key,
                                  context={"scheduler": self.gw.scheduler, "channel": channel_key})
        if text.split()[0].lower() == "/reset":
            self.reset_group(key)
        self._inbound[key] = self._inbound.get(key, 0) + 1  # interrupts a pending relay
        reply = result.get("text") or result.get("error") or ""
        Delivery(adapter, msg, mention_members=False).send_text(reply)

    @staticmethod
    def _remember(state: GroupState, sender: str, text: str, is_bot: bool, limit) -> None:
        if text.startswith("[System: You have been offline"):
            return
        state.history.append({"senderName": sender, "text": text, "isBot": is_bot})
        limit = limit if isinstance(limit, int) and limit > 0 else 20
        del state.history[:-limit]
