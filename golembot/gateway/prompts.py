"""Pure text functions of the gateway: mentions, session keys, prompts, sentinels, splitting.

The prompt lines are a protocol with the agent (``[PASS]``, ``[CONTINUE]``, the group header),
so their wording is fixed here and nowhere else.
"""
from __future__ import annotations

import re

TURN_END_CONTRACT = (
    "[System: When your reply ends, execution stops completely — nothing keeps running in the "
    "background. Never say you will keep working and then end your reply. If the task is not "
    "finished and you intend to keep going, end your reply with a single line containing "
    "exactly: [CONTINUE] and you will be re-invoked automatically to continue.]")
NOT_ADDRESSED = (
    "[System: You are participating in a group chat and were NOT directly addressed. Only "
    "respond if you have something important to add or correct. If you have nothing essential "
    "to contribute, respond with exactly: [PASS]]")
DIRECTED_AT = (
    "[System: This message is directed at {names}, not you. Only respond if you have something "
    "important to add or correct. If you have nothing essential to contribute, respond with "
    "exactly: [PASS]]")
PEERS_HINT = (
    "[System: Other bots listed above are your peers. Focus on your own domain expertise. If a "
    "question is clearly better suited for a peer, mention them by name and let them handle it.]")
AUTO_CONTINUE = (
    "[System: Auto-continue. Your previous reply ended with [CONTINUE]. Continue working on the "
    "task. End with [CONTINUE] again if it is still unfinished.]")
APOLOGY = "Sorry, an error occurred while processing your message. Please try again later."
SILENT = ("[PASS]", "[SKIP]")

_CONTINUE_RE = re.compile(r"(?:^|\n)\s*\[CONTINUE\]\s*$")
_AT_TAG = re.compile(r"<at\b[^>\n]*>[^<\n]*</at>", re.IGNORECASE)
_MENTION_NAME = re.compile(r"@([A-Za-z0-9_\u4e00-\u9fff]{1,20})")


def detect_mention(text: str, bot_name: str) -> bool:
    """``@<name>`` not followed by an ASCII word character, or ``<at …>name</at>``."""
    if not bot_name:
        return False
    name = re.escape(bot_name)
    return bool(re.search(rf"@{name}(?![A-Za-z0-9_])", text, re.IGNORECASE)
                or re.search(rf"<at\b[^>]*>\s*@?{name}\s*</at>", text, re.IGNORECASE))


def strip_mention(text: str, bot_name: str) -> str:
    """Remove ``<at>`` tags and the bot's own ``@name``; other people's mentions stay."""
    text = _AT_TAG.sub("", text)
    if bot_name:
        text = re.sub(rf"@{re.escape(bot_name)}(?![A-Za-z0-9_])", "", text, flags=re.IGNORECASE)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def session_key(msg) -> str:
    """DM: ``<type>:<chat>:<sender>``; group: ``<type>:<chat>``; Slack threads get ``:thread:<ts>``."""
    if msg.chatType == "group":
        key = f"{msg.channelType}:{msg.chatId}"
        return f"{key}:thread:{msg.threadId}" if msg.threadId else key
    key = f"{msg.channelType}:{msg.chatId}:{msg.senderId}"
    return f"{key}:thread:{msg.threadId}" if msg.threadId else key


def memory_file_key(group_key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", group_key)


def dm_prompt(sender: str, text: str, auto_continue: bool) -> str:
    lines = [f"[System: This is a private 1-on-1 conversation with {sender}.]"]
    if auto_continue:
        lines.append(TURN_END_CONTRACT)
    lines.append(text)
    return "\n".join(lines)


def group_prompt(*, group_key: str, sender: str, text: str, history: list, auto_continue: bool,
                 inject_pass: bool, mentioned_others=(), peers=()) -> str:
    """``history`` is the buffer of ``{"senderName","text","isBot"}`` ending with this message."""
    lines = []
    if auto_continue:
        lines.append(TURN_END_CONTRACT)
    if inject_pass:
        lines.append(DIRECTED_AT.format(names=", ".join(mentioned_others)) if mentioned_others
                     else NOT_ADDRESSED)
    if peers:
        lines.append("[Peers: " + ", ".join(
            f"{p['name']} ({p['role']})" if p.get("role") else p["name"] for p in peers) + "]")
        if not inject_pass:
            lines.append(PEERS_HINT)
    lines.append(f"[Group: {group_key} | MemoryFile: memory/groups/{memory_file_key(group_key)}.md]")
    if len(history) > 1:
        lines.append("--- Recent group conversation ---")
        for h in history[:-1]:
            who = f"bot:{h['senderName']}" if h.get("isBot") else h["senderName"]
            lines.append(f"[{who}] {h['text']}")
        lines.append("--- New message ---")
    lines.append(f"[{sender}] {text}")
    return "\n".join(lines)


def is_silent(text: str) -> bool:
    return text.strip() in SILENT


def split_continue(reply: str):
    """``(body, ended_with_continue)``: the sentinel must be alone on the last line."""
    m = _CONTINUE_RE.search(reply)
    if not m:
        return reply, False
    return reply[:m.start()].rstrip(), True


def split_message(text: str, max_len: int) -> list:
    """Split at paragraph, then line, then space boundaries; chunks never exceed ``max_len``."""
    if len(text) <= max_len:
        return [text]
    chunks, rest = [], text
    while len(rest) > max_len:
        i = -1
        for sep in ("\n\n", "\n", " "):
            i = rest.rfind(sep, 0, max_len + len(sep))  # start index <= max_len
            if i > 0:
                break
        if i <= 0:
            i = max_len
        chunks.append(rest[:i])
        rest = rest[i:].lstrip("\n")
    if rest:
        chunks.append(rest)
    return chunks


def tool_hint(name: str, args: str) -> str:
    label = (name.split() or ["tool"])[0].rsplit("/", 1)[-1]
    args = " ".join((args or "").split())
    if args in ("", "{}", "[]"):
        return f"🔧 {label}..."
    return f"🔧 {label} {args[:72] + '...' if len(args) > 72 else args}"


def find_mentions(reply: str, members: dict) -> list:
    """``[{"name","platformId"}]`` for each distinct ``@Name`` in the reply that is a member."""
    seen, out = set(), []
    for name in _MENTION_NAME.findall(reply):
        if name in members and name not in seen:
            seen.add(name)
            out.append({"name": name, "platformId": members[name]})
    return out
