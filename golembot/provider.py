"""Which LLM provider block and model a turn uses, and the failover circuit breaker.

The breaker is in-memory per assistant: after ``failoverThreshold`` consecutive failed turns on
the primary provider it switches to ``provider.fallback``; after ``fallbackRecoveryMs`` the next
turn goes back to the primary (checked lazily, no timer greenlet).
"""
from __future__ import annotations

import time


def _num(x, default):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else default


def resolve_model(engine: str, provider: dict | None, override: str | None, config_model) -> str | None:
    """First non-empty of provider.models[engine], runtime override, provider.model, golem.yaml model."""
    provider = provider or {}
    models = provider.get("models") if isinstance(provider.get("models"), dict) else {}
    for candidate in (models.get(engine), override, provider.get("model"), config_model):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


class ProviderRouter:
    """Chooses primary or fallback per turn and counts failures on the primary."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.failures = 0
        self.fallback_since: float | None = None
        self.override: dict | None = None  # set_provider()
        self._codex_warned: set = set()

    def primary(self, config: dict) -> dict | None:
        p = self.override if self.override is not None else config.get("provider")
        return p if isinstance(p, dict) and p else None

    def active(self, config: dict):
        """``(provider_block_or_None, on_fallback)`` for the next turn."""
        primary = self.primary(config)
        if not primary:
            return None, False
        fallback = primary.get("fallback") if isinstance(primary.get("fallback"), dict) else None
        if self.fallback_since is not None:
            cooldown_ms = _num(primary.get("fallbackRecoveryMs"), 60_000)
            if fallback is None or (cooldown_ms > 0 and
                                    (self.clock() - self.fallback_since) * 1000 >= cooldown_ms):
                self.fallback_since, self.failures = None, 0
        if self.fallback_since is not None:
            return {k: v for k, v in fallback.items() if k != "fallback"}, True
        return primary, False

    def record(self, config: dict, on_fallback: bool, had_error: bool) -> str | None:
        """Count a finished turn; returns the failover warning text when switching."""
        primary = self.primary(config)
        if not primary or not isinstance(primary.get("fallback"), dict) or on_fallback:
            return None
        if not had_error:
            self.failures = 0
            return None
        self.failures += 1
        threshold = max(1, int(_num(primary.get("failoverThreshold"), 3)))
        if self.failures < threshold:
            return None
        self.fallback_since = self.clock()
        n = self.failures
        msg = (f"Primary provider failed {n} time{'s' if n != 1 else ''} in a row. "
               "Switching to fallback provider.")
        cooldown_ms = _num(primary.get("fallbackRecoveryMs"), 60_000)
        if cooldown_ms > 0:
            msg += f" Will retry primary in {round(cooldown_ms / 1000)}s."
        return msg

    def codex_warning(self, provider: dict | None) -> str | None:
        """Once per distinct custom-provider setup: Codex only speaks the Responses API."""
        if not provider:
            return None
        ident = tuple(provider.get(k) for k in ("baseUrl", "codexProfile", "codexProviderId", "codexWireApi"))
        if not any(ident[:3]) or ident in self._codex_warned:
            return None
        self._codex_warned.add(ident)
        url = str(provider.get("baseUrl") or "").lower()
        if "/chat/completions" in url:
            text = ("This provider looks incompatible with Codex: its base URL points at "
                    "/chat/completions, but Codex needs OpenAI Responses API support.")
        elif "/messages" in url or "api.anthropic.com" in url:
            text = ("This provider looks incompatible with Codex: its base URL looks "
                    "Anthropic-compatible, but Codex needs OpenAI Responses API support.")
        elif provider.get("codexWireApi") == "responses":
            text = ("Codex will use the Responses wire API; the gateway must keep OpenAI Responses "
                    "API support working end to end (/responses).")
        else:
            text = ("Codex talks to custom providers through OpenAI Responses API support only; "
                    "providers that expose just /chat/completions or /messages will fail.")
        return text + " See Provider Routing docs before using a custom provider with Codex."
