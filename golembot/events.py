"""The event stream of one turn: constructors, wire encoding, and the completion builder.

An event is a plain dict with the wire's camelCase field names, so the same object is what
``Assistant.chat()`` yields in Python and what ``POST /chat`` writes as ``data: <json>``.
Absent fields are omitted, never ``null``.
"""
from __future__ import annotations

import json

SILENT_MARKERS = {"[PASS]": "pass", "[SKIP]": "skip"}


def _compact(event: dict) -> dict:
    return {k: v for k, v in event.items() if v is not None}


def text(content: str) -> dict:
    return {"type": "text", "content": content}


def tool_call(name: str, args: str) -> dict:
    return {"type": "tool_call", "name": name, "args": args}


def tool_result(content: str) -> dict:
    return {"type": "tool_result", "content": content}


def warning(message: str) -> dict:
    return {"type": "warning", "message": message}


def error(message: str) -> dict:
    return {"type": "error", "message": message}


def done(sessionId=None, durationMs=None, costUsd=None, numTurns=None, fullText=None) -> dict:
    return _compact({"type": "done", "sessionId": sessionId or None, "durationMs": durationMs,
                     "costUsd": costUsd, "numTurns": numTurns, "fullText": fullText or None})


def failed(message: str) -> dict:
    """The reduced completion of a rejected call or an exception: no shared fields."""
    return {"type": "completion", "status": "failed", "message": message}


def is_terminal(event: dict) -> bool:
    """An engine invocation ends at its first ``done`` or ``error``."""
    return event.get("type") in ("done", "error")


def to_json(event: dict) -> str:
    """Compact JSON, non-ASCII kept: the form used on the wire and in history."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def compact_json(value) -> str:
    """Re-serialise tool args/results exactly as the original does."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class TurnOutcome:
    """Accumulates what a turn produced and decides its single ``completion``.

    Text chunks are concatenated as they come, except that a text segment following a tool
    call starts on a new paragraph (the original glued "Let me check." and "It is 42." into
    "Let me check.It is 42."). ``done.fullText`` replaces a blank reply.
    """

    def __init__(self):
        self.reply = ""
        self._after_tool = False
        self.got_error = False
        self.error_message = ""
        self.last_done: dict | None = None
        self.session_id: str | None = None

    def feed(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "text":
            content = event.get("content", "")
            if (self._after_tool and content and self.reply and not self.reply[-1].isspace()
                    and not content[0].isspace()):
                self.reply += "\n\n"
            self._after_tool = self._after_tool and not content
            self.reply += content
        elif kind in ("tool_call", "tool_result"):
            self._after_tool = True
        elif kind == "error":
            self.got_error = True
            self.error_message = event.get("message", "")
        elif kind == "done":
            self.last_done = event
            if event.get("sessionId"):
                self.session_id = event["sessionId"]
            if not self.reply.strip() and event.get("fullText"):
                self.reply = event["fullText"]

    def shared_fields(self) -> dict:
        d = self.last_done or {}
        return _compact({"sessionId": self.session_id or d.get("sessionId"),
                         "durationMs": d.get("durationMs"), "costUsd": d.get("costUsd"),
                         "numTurns": d.get("numTurns")})

    def completion(self, abort_reason: str | None = None) -> dict:
        """Silent beats aborted beats failed beats completed (assistant.md §6)."""
        partial = self.reply if self.reply.strip() else None
        marker = SILENT_MARKERS.get(self.reply.strip())
        if marker:
            body = {"status": "silent", "reason": marker}
        elif abort_reason:
            body = {"status": "aborted", "reason": "user" if abort_reason == "user" else "timeout",
                    "partialText": partial}
        elif self.got_error:
            body = {"status": "failed", "message": self.error_message or "Agent error",
                    "partialText": partial}
        elif partial is not None:
            body = {"status": "completed", "finalText": self.reply}
        else:
            body = {"status": "failed", "message": "Agent completed without a final reply"}
        return _compact({"type": "completion", **body, **self.shared_fields()})
