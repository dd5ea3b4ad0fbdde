"""Images and files attached to a turn: saved under ``.golem/`` for the agent, removed after.

Client-supplied names are never trusted: each saved name is made safe, confined to its folder
and prefixed with a per-turn token so two sessions uploading ``screenshot.png`` at the same
time never overwrite (or delete) each other's file.
"""
from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import time

from .files import atomic_write_bytes, confined_path, safe_file_name

MIME_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg", "image/gif": ".gif",
            "image/webp": ".webp", "image/bmp": ".bmp", "image/svg+xml": ".svg"}


_B64_CHARS = re.compile(r"[A-Za-z0-9+/_-]*")
_DATA_URL = re.compile(r"data:([^;,]*)(?:;[^,]*)?;base64,", re.IGNORECASE)


class AttachmentError(ValueError):
    pass


def decode_base64(data: str, field: str = "data") -> tuple[bytes, str | None]:
    """Strict base64: standard or URL-safe alphabet, whitespace ignored, padding optional, an
    optional ``data:<mime>;base64,`` prefix (whose MIME type is returned with the bytes)."""
    if not isinstance(data, str):
        raise AttachmentError(f'"{field}" must be a base64 string')
    mime = None
    match = _DATA_URL.match(data)
    if match:
        mime = match.group(1) or None
        data = data[match.end():]
    cleaned = "".join(data.split()).rstrip("=")
    if not _B64_CHARS.fullmatch(cleaned) or len(cleaned) % 4 == 1:
        raise AttachmentError(f'"{field}" is not valid base64')
    cleaned = cleaned.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True), mime
    except (binascii.Error, ValueError):
        raise AttachmentError(f'"{field}" is not valid base64') from None


def _as_bytes(data) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return decode_base64(data)[0]
    raise AttachmentError("attachment data must be bytes or a base64 string")


class SavedAttachments:
    """The files one turn wrote; :meth:`cleanup` removes them (best effort)."""

    def __init__(self):
        self.image_paths: list = []
        self.file_paths: list = []

    def cleanup(self) -> None:
        for path in self.image_paths + self.file_paths:
            try:
                os.unlink(path)
            except OSError:
                pass
        self.image_paths, self.file_paths = [], []


def save_attachments(golem_dir: str, images=None, files=None) -> SavedAttachments:
    saved = SavedAttachments()
    token = secrets.token_hex(3)
    stamp = int(time.time() * 1000)
    try:
        for i, img in enumerate(images or []):
            mime = img.get("mimeType") or "image/png"
            fallback = f"img_{stamp}_{i}{MIME_EXT.get(mime, '.png')}"
            name = f"{token}-{safe_file_name(img.get('fileName'), fallback)}"
            path = confined_path(os.path.join(golem_dir, "images"), name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write_bytes(path, _as_bytes(img.get("data")))
            saved.image_paths.append(path)
        for i, f in enumerate(files or []):
            if f.get("data") is None or not f.get("fileName"):
                continue
            name = f"{token}-{safe_file_name(f.get('fileName'), f'file_{stamp}_{i}')}"
            path = confined_path(os.path.join(golem_dir, "files"), name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write_bytes(path, _as_bytes(f.get("data")))
            saved.file_paths.append(path)
    except BaseException:
        saved.cleanup()
        raise
    return saved


def attachment_prompt(saved: SavedAttachments) -> str:
    """The text appended to the prompt so the agent knows where the files are."""
    out = ""
    if saved.image_paths:
        out += (f"\n\n[User attached {len(saved.image_paths)} image(s). File paths:\n"
                + "\n".join(saved.image_paths) + "\nPlease read/view these files to see the images.]")
    if saved.file_paths:
        out += (f"\n\n[User attached {len(saved.file_paths)} file(s). File paths:\n"
                + "\n".join(saved.file_paths) + "\nPlease read these files to see the content.]")
    return out
