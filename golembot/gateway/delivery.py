"""Delivering the agent's answer to one incoming message: buffered or streaming, split, with
typing, a "thinking" status, tool hints and error notices (gateway.md §7.9, §8).

One :class:`Delivery` lives for one incoming message and all its ``[CONTINUE]`` rounds, so the
status message it opens stays open until the last round. Buffered mode sends the whole reply
when it is complete; streaming mode sends each finished paragraph at once (never inside an open
code fence) and flushes before tool calls. ``[PASS]``/``[SKIP]`` are never sent, and a trailing
``[CONTINUE]`` line is stripped from what the user sees.
"""
from __future__ import annotations

import logging

import gevent

from . import prompts

log = logging.getLogger("golembot.gateway")
TYPING_EVERY_S = 4.0     # platforms drop a typing indicator after ~5 s
THINKING_AFTER_S = 1.5   # DMs: a slow answer is preceded by "⏳ thinking..."
THINKING = "⏳ thinking..."
REPLYING = "✍️ replying..."


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
    """Sends ``assistant.chat`` events to ``adapter`` as replies to ``msg``."""

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
        self._thinking = None
        self._status_id = None
        self._plain_status_sent = False
        self.visible = False     # anything (reply or status) shown to the user yet
        self.replied = False     # any reply chunk sent (over all rounds)

    # -- capabilities -------------------------------------------------------------------------
    def _has(self, name: str) -> bool:
        return callable(getattr(self.adapter, name, None))

    @property
    def _status_api(self) -> bool:
        return self._has("send_status") and self._has("clear_status")

    # -- typing and thinking ------------------------------------------------------------------
    def start_typing(self) -> None:
        """Call ``typing`` now and every 4 s until the first chunk is sent or the round ends."""
        if not self._has("typing") or self._typing is not None:
            return

        def loop():
            while True:
                try:
                    self.adapter.typing(self.msg)
                except Exception:  # noqa: BLE001 - typing is cosmetic
                    pass
                gevent.sleep(TYPING_EVERY_S)
        self._typing = gevent.spawn(loop)

    def stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.kill(block=False)
            self._typing = None

    def start_thinking(self) -> None:
        """DMs only: if nothing is visible after 1.5 s, show ``⏳ thinking...``."""
        if self.msg.chatType == "group" or self.visible or self._thinking is not None:
            return
        self._thinking = gevent.spawn_later(THINKING_AFTER_S, self._think)

    def _think(self) -> None:
        self._thinking = None  # this greenlet is ending: nobody must kill it mid-send
        if not self.visible:
            try:
                self.status(THINKING)
            except Exception:  # noqa: BLE001
                log.debug("thinking status failed", exc_info=True)

    def stop_thinking(self) -> None:
        if self._thinking is not None:
            self._thinking.kill(block=False)
            self._thinking = None

    # -- status message -----------------------------------------------------------------------
    def status(self, text: str) -> None:
        """Show a transient status (thinking, tool hint). Without a status API it is sent as a
        reply once, and only if nothing was shown yet."""
        if not text.strip():
            return
        self.stop_thinking()
        if self._status_api:
            try:
                if self._status_id is None:
                    self._status_id = self.adapter.send_status(self.msg, text)
                elif self._has("update_status"):
                    self.adapter.update_status(self.msg, self._status_id, text)
            except Exception:  # noqa: BLE001 - statuses are cosmetic
                log.debug("status update failed", exc_info=True)
            self.visible = True
        elif not self.visible and not self._plain_status_sent:
            self._plain_status_sent = True
            self.adapter.reply(self.msg, text, None)
            self.visible = True

    def finish(self, final_text: str) -> None:
        """End of the message: stop timers; close the status with its final text (or delete)."""
        self.stop_thinking()
        self.stop_typing()
        if self._status_id is None:
            return
        try:
            if self._has("update_status"):
                self.adapter.update_status(self.msg, self._status_id, final_text)
            else:
                self.adapter.clear_status(self.msg, self._status_id)
        except Exception:  # noqa: BLE001
            log.debug("final status failed", exc_info=True)
        self._status_id = None

    # -- sending ------------------------------------------------------------------------------
    def _mentions(self, text: str) -> list:
        if self._members is None:
            try:
                self._members = dict(self.adapter.get_group_members(self.msg.chatId) or {})
            except Exception:  # noqa: BLE001 - no member list, no native mentions
                self._members = {}
        return prompts.find_mentions(text, self._members) if self._members else []

    def send_text(self, text: str, result: RoundResult | None = None) -> None:
        """Split at the adapter's limit and send; raise ``RuntimeError`` naming a failed chunk."""
        text, _ = prompts.split_continue(text)
        text = text.strip()
        if not text or prompts.is_silent(text):
            return
        self.stop_thinking()
        if not self.replied and self._status_id is not None and self._has("update_status"):
            try:
                self.adapter.update_status(self.msg, self._status_id, REPLYING)
            except Exception:  # noqa: BLE001
                pass
        chunks = prompts.split_message(text, self.max_len)
        mentions = self._mentions(text)
        for i, chunk in enumerate(chunks, 1):
            if not chunk.strip() or prompts.is_silent(chunk):
                continue
            try:
                self.adapter.reply(self.msg, chunk, mentions or None)
            except Exception as exc:
                raise RuntimeError(f"Failed to send reply chunk {i}/{len(chunks)}: {exc}") from exc
            self.visible = self.replied = True
            if result is not None:
                result.sent_any = True
            self.stop_typing()

    # -- one round ----------------------------------------------------------------------------
    def run(self, events) -> RoundResult:
        """Consume one round's events; send what the mode says; return what happened."""
        result = RoundResult()
        full, buffer, fallback = "", "", ""
        streaming = self.mode == "streaming"
        self.start_typing()
        self.start_thinking()
        try:
            for event in events:
                kind = event.get("type")
                if kind == "text":
                    full += event["content"]
                    if streaming:
                        buffer = self._flush_paragraphs(buffer + event["content"], result)
                elif kind == "tool_call":
                    if streaming and buffer.strip():
                        self.send_text(buffer, result)
                        buffer = ""
                    if self.show_tool_calls:
                        self.status(prompts.tool_hint(event.get("name", ""),
                                                      _args_text(event.get("args"))))
                elif kind == "warning":
                    log.info("agent warning: %s", event.get("message"))
                elif kind == "error":
                    result.error = event.get("message") or "Agent error"
                elif kind == "done":
                    fallback = fallback or event.get("fullText") or ""
                    result.duration_ms = event.get("durationMs", result.duration_ms)
                    result.cost_usd = event.get("costUsd", result.cost_usd)
                elif kind == "completion":
                    final = self._completion_text(event, result)
                    if not streaming and event.get("status") == "completed" and final.strip():
                        # the engine's own final text keeps the paragraph breaks between the
                        # text segments around tool calls
                        full = final
                    fallback = final or fallback
        finally:
            self.stop_typing()
            if hasattr(events, "close"):
                events.close()
        if not full.strip() and fallback:
            full = buffer = fallback
        result.reply, result.continued = prompts.split_continue(full)
        if result.silent or prompts.is_silent(full):
            result.silent = True
            return result
        self.send_text(buffer if streaming else full, result)
        self._notice(result)
        return result

    def final_status(self, result: RoundResult | None) -> str:
        err = ((result.error if result else None) or "").lower()
        if not err:
            return "✅ Done"
        if not (result and result.sent_any):
            return "⚠️ Failed"
        if "stopped by user" in err:
            return "⏹️ Stopped"
        if "timed out" in err:
            return f"⚠️ Timed out ({int(self.timeout_s)}s)"
        return "⚠️ Interrupted"

    def _flush_paragraphs(self, buffer: str, result: RoundResult) -> str:
        """Send every complete paragraph; keep the unfinished tail. A blank line inside an
        open code fence is not a paragraph end (the fence would arrive cut in two)."""
        if "\n\n" not in buffer:
            return buffer
        parts = buffer.split("\n\n")
        fences, cut = 0, -1
        for i, part in enumerate(parts[:-1]):
            fences += part.count("```")
            if fences % 2 == 0:
                cut = i
        if cut < 0:
            return buffer
        head = "\n\n".join(parts[:cut + 1])
        if head.strip() and not prompts.is_silent(head):
            self.send_text(head, result)
        return "\n\n".join(parts[cut + 1:])

    def _completion_text(self, event, result: RoundResult) -> str:
        status = event.get("status")
        result.duration_ms = event.get("durationMs", result.duration_ms)
        result.cost_usd = event.get("costUsd", result.cost_usd)
        if status == "silent":
            result.silent = True
            return "[PASS]" if event.get("reason") == "pass" else "[SKIP]"
        if status == "completed":
            result.error = None  # the turn recovered (e.g. a resume retry); it is authoritative
            return event.get("finalText", "")
        if status == "aborted":
            result.error = ("Agent invocation stopped by user" if event.get("reason") == "user"
                            else "Agent invocation timed out"
                            if event.get("reason") == "timeout"
                            else result.error or event.get("message") or "Agent invocation aborted")
        elif status == "failed":
            result.error = result.error or event.get("message") or "Agent error"
        return event.get("partialText", "")

    def _notice(self, result: RoundResult) -> None:
        if not result.error:
            return
        if not result.sent_any:
            self.send_text(prompts.APOLOGY, result)
            return
        err = result.error.lower()
        if "stopped by user" in err:
            note = ("The task was stopped before completion. The partial reply above may be "
                    "incomplete.")
        elif "timed out" in err:
            note = (f"Task timed out after {int(self.timeout_s)}s. The partial reply above may be "
                    "incomplete.")
        else:
            note = ("The reply was interrupted before completion. The partial reply above may be "
                    "incomplete.")
        self.send_text(note, result)


def _args_text(args) -> str:
    if args is None:
        return ""
    if isinstance(args, str):
        return args
    import json
    return json.dumps(args, ensure_ascii=False)
