"""Delivering one agent round to a chat: buffered or streaming, split, with typing and notices.

Buffered mode sends the whole reply once it is complete (split at the adapter's limit).
Streaming mode sends each finished paragraph as soon as it is complete (never inside an open
code fence) and flushes before tool calls. ``[PASS]``/``[SKIP]`` are never sent, and a trailing
``[CONTINUE]`` line is stripped from what the user sees.
"""
from __future__ import annotations

import logging

import gevent

from . import prompts

log = logging.getLogger("golembot.gateway")
TYPING_EVERY_S = 4.0


class RoundResult:
    """What one round produced, for the router (history, turns, metrics, auto-continue)."""

    def __init__(self):
        self.reply = ""          # what the agent said (sentinel removed)
        self.continued = False   # ended with a [CONTINUE] line
        self.silent = False
        self.error: str | None = None
        self.duration_ms = None
        self.cost_usd = None
        self.sent_any = False


class Delivery:
    """Sends one round of ``assistant.chat`` events to ``adapter`` as replies to ``msg``."""

    def __init__(self, adapter, msg, *, mode="buffered", show_tool_calls=False, timeout_s=600,
                 mention_members=True):
        self.adapter, self.msg = adapter, msg
        self.mode = mode
        self.show_tool_calls = show_tool_calls
        self.timeout_s = timeout_s
        self.max_len = int(getattr(adapter, "max_message_length", 0) or 4000)
        self._members = None if (mention_members and msg.chatType == "group"
                                 and callable(getattr(adapter, "get_group_members", None))) else {}
        self._typing = None
        self._hint_sent = False

    # -- typing -------------------------------------------------------------------------------
    def start_typing(self) -> None:
        typing = getattr(self.adapter, "typing", None)
        if not callable(typing) or self._typing is not None:
            return

        def loop():
            while True:
                try:
                    typing(self.msg)
                except Exception:  # noqa: BLE001 - typing is cosmetic
                    pass
                gevent.sleep(TYPING_EVERY_S)
        self._typing = gevent.spawn(loop)

    def stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.kill(block=False)
            self._typing = None

    # -- sending ------------------------------------------------------------------------------
    def _mentions(self, text: str) -> list:
        if self._members is None:
            try:
                self._members = dict(self.adapter.get_group_members(self.msg.chatId) or {})
            except Exception:  # noqa: BLE001
                self._members = {}
        return prompts.find_mentions(text, self._members) if self._members else []

    def send_text(self, text: str, result: RoundResult | None = None) -> None:
        """Split and send; raises ``RuntimeError`` naming the chunk that failed."""
        text, _ = prompts.split_continue(text)
        text = text.strip()
        if not text or prompts.is_silent(text):
            return
        chunks = prompts.split_message(text, self.max_len)
        mentions = self._mentions(text)
        for i, chunk in enumerate(chunks, 1):
            if not chunk.strip():
                continue
            try:
                self.adapter.reply(self.msg, chunk, mentions or None)
            except Exception as exc:
                raise RuntimeError(f"Failed to send reply chunk {i}/{len(chunks)}: {exc}") from exc
            if result is not None:
                result.sent_any = True
            self.stop_typing()

    def _tool_hint(self, event, result) -> None:
        if not self.show_tool_calls:
            return
        hint = prompts.tool_hint(event.get("name", ""), event.get("args", ""))
        send_status = getattr(self.adapter, "send_status", None)
        if callable(send_status) and callable(getattr(self.adapter, "clear_status", None)):
            try:
                send_status(self.msg, hint)
            except Exception:  # noqa: BLE001
                pass
        elif not self._hint_sent and not result.sent_any:
            self._hint_sent = True
            self.send_text(hint, result)

    # -- one round ----------------------------------------------------------------------------
    def run(self, events) -> RoundResult:
        result = RoundResult()
        full, buffer, fallback = "", "", ""
        streaming = self.mode == "streaming"
        try:
            for event in events:
                kind = event.get("type")
                if kind == "text":
                    full += event["content"]
                    if streaming:
                        buffer += event["content"]
                        buffer = self._flush_paragraphs(buffer, result)
                elif kind == "tool_call":
                    if streaming and buffer.strip():
                        self.send_text(buffer, result)
                        buffer = ""
                    self._tool_hint(event, result)
                elif kind == "error":
                    result.error = event.get("message") or "Agent error"
                elif kind == "done":
                    fallback = fallback or event.get("fullText") or ""
                    result.duration_ms = event.get("durationMs", result.duration_ms)
                    result.cost_usd = event.get("costUsd", result.cost_usd)
                elif kind == "completion":
                    fallback = self._completion_text(event, result) or fallback
        finally:
            self.stop_typing()
        if not full.strip() and fallback:
            full = buffer = fallback
        result.reply, result.continued = prompts.split_continue(full)
        if prompts.is_silent(full) or result.silent:
            result.silent = True
            return result
        self.send_text(buffer if streaming else full, result)
        self._notices(result)
        return result

    def _flush_paragraphs(self, buffer: str, result: RoundResult) -> str:
        """Send every complete paragraph; keep the unfinished tail (and open code fences)."""
        if "\n\n" not in buffer:
            return buffer
        cut = buffer.rfind("\n\n")
        head, tail = buffer[:cut], buffer[cut + 2:]
        if head.count("```") % 2 == 1:  # inside an open fence: wait for it to close
            return buffer
        if head.strip() and not prompts.is_silent(head):
            self.send_text(head, result)
        return tail

    def _completion_text(self, event, result: RoundResult) -> str:
        status = event.get("status")
        result.duration_ms = event.get("durationMs", result.duration_ms)
        result.cost_usd = event.get("costUsd", result.cost_usd)
        if status == "silent":
            result.silent = True
            return "[PASS]" if event.get("reason") == "pass" else "[SKIP]"
        if status == "completed":
            return event.get("finalText", "")
        if status == "aborted":
            result.error = ("Agent invocation stopped by user" if event.get("reason") == "user"
                            else "Agent invocation timed out")
        elif status == "failed":
            result.error = result.error or event.get("message") or "Agent error"
        return event.get("partialText", "")

    def _notices(self, result: RoundResult) -> None:
        if not result.error:
            return
        if not result.sent_any:
            self.send_text(prompts.APOLOGY, result)
            return
        err = result.error.lower()
        if "stopped by user" in err:
            note = "The task was stopped before completion. The partial reply above may be incomplete."
        elif "timed out" in err:
            note = (f"Task timed out after {int(self.timeout_s)}s. The partial reply above may be "
                    "incomplete.")
        else:
            note = "The reply was interrupted before completion. The partial reply above may be incomplete."
        self.send_text(note, result)
