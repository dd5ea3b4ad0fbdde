"""The four engine CLIs, by engine id."""
from __future__ import annotations

import importlib

from .base import AbortSignal, Engine, EngineNotFoundError, Invocation, UnsupportedEngineError

ENGINE_MODULES = {
    "cursor": ("cursor", "CursorEngine"),
    "claude-code": ("claude_code", "ClaudeCodeEngine"),
    "opencode": ("opencode", "OpenCodeEngine"),
    "codex": ("codex", "CodexEngine"),
}
ENGINE_NAMES = list(ENGINE_MODULES)


def get_engine(name: str) -> Engine:
    """A new engine object for ``name``; unknown names raise with the supported list."""
    if name not in ENGINE_MODULES:
        raise UnsupportedEngineError(
            f"Unsupported engine: {name}. Supported: 'cursor', 'claude-code', 'opencode', 'codex'.")
    module, cls = ENGINE_MODULES[name]
    return getattr(importlib.import_module(f".{module}", __name__), cls)()


__all__ = ["AbortSignal", "Engine", "EngineNotFoundError", "Invocation", "UnsupportedEngineError",
           "ENGINE_NAMES", "get_engine"]
