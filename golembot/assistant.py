"""The chat loop: one assistant directory, one engine CLI, one event stream per turn.

``Assistant.chat()`` admits a call (global cap, per-session FIFO queue), runs the engine with a
prompt built from the message, relays its events, remembers the session id for the next turn,
keeps the history, and always ends with exactly one ``completion``. It knows nothing of Flask,
IM platforms or the scheduler; they all call :meth:`Assistant.chat`.
"""
from __future__ import annotations

import calendar
import hashlib
import os
import shutil
import time
from collections import deque

import gevent
from gevent.event import Event

from . import events as ev
from .attachments import attachment_prompt, save_attachments
from .config import load_config, set_top_level
from .engines import ENGINE_NAMES, AbortSignal, Invocation, get_engine
from .engines.base import shutdown_all
from .files import atomic_write_json, read_json
from .provider import ProviderRouter, resolve_model
from .sessions import History, SessionStore, iso_now
from .workspace import scan_skills, write_agents_md

DEFAULT_TIMEOUT_S = 600
SHUTTING_DOWN = "Assistant is shutting down"
RESTORING = "Restoring prior conversation history for this session. Use `/reset` to start fresh."
RESUME_FAILED = "Session could not be resumed. Starting fresh conversation."
# Error texts by which today's CLIs say "that session id is unknown".
RESUME_FAILURE_MARKERS = ("resume", "no conversation found", "session not found",
                          "no rollout found", "unknown session")


def busy_message(limit: int) -> str:
    return f"Server busy: too many concurrent requests (limit: {limit}). Try again later."


def queue_message(limit: int) -> str:
    return f"Too many pending requests for this session (limit: {limit}). Try again later."


def _rejected(message: str):
    """A call that never ran: the error and the reduced failed completion."""
    yield ev.error(message)
    yield ev.failed(message)


class _KeyLock:
    """A FIFO mutex for one session key: release hands the lock to the oldest waiter."""

    def __init__(self):
        self.held = False
        self.waiters: deque = deque()

    def acquire(self) -> None:
        if not self.held:
            self.held = True
            return
        turn = Event()
        self.waiters.append(turn)
        try:
            turn.wait()
        except BaseException:
            if turn in self.waiters:
                self.waiters.remove(turn)
            else:  # ownership was handed to us as we died: pass it on
                self.release()
            raise

    def release(self) -> None:
        if self.waiters:
            self.waiters.popleft().set()
        else:
            self.held = False


class Assistant:
    """An assistant directory made conversational. Create with :func:`golembot.create_assistant`."""

    def __init__(self, dir, engine=None, model=None, api_key=None, max_concurrent=10,
                 max_queue_per_session=3, timeout_s=None):
        self.dir = os.path.abspath(os.fspath(dir))
        self.golem_dir = os.path.join(self.dir, ".golem")
        self.max_concurrent = max_concurrent
        self.max_queue_per_session = max_queue_per_session
        self.timeout_s = timeout_s
        self.server_env: dict = {}
        self.sessions = SessionStore(self.golem_dir)
        self.history = History(self.golem_dir)
        self.router = ProviderRouter()
        self._engine_override = engine
        self._model_override = model
        self._api_key = api_key
        self._active = 0
        self._locks: dict = {}
        self._runs: dict = {}
        self._reset_epoch: dict = {}
        self._pruned = False
        self._oauth_warned_at = 0.0
        self.closed = False

    # -- public API ---------------------------------------------------------------------------
    def chat(self, message: str, session_key: str = "default", images=None, files=None):
        """Run one turn; yields event dicts, the last one being the single ``completion``."""
        key = session_key or "default"
        if self.closed:
            yield from _rejected(SHUTTING_DOWN)
            return
        self._active += 1
        if self._active > self.max_concurrent:
            self._active -= 1
            yield from _rejected(busy_message(self.max_concurrent))
            return
        lock = self._locks.setdefault(key, _KeyLock())
        if lock.held and len(lock.waiters) >= self.max_queue_per_session:
            self._active -= 1
            self._forget_lock(key, lock)
            yield from _rejected(queue_message(self.max_queue_per_session))
            return
        try:
            lock.acquire()
        except BaseException:
            self._active -= 1
            self._forget_lock(key, lock)
            raise
        abort = AbortSignal()
        self._runs[key] = abort
        try:
            if self.closed:  # shut down while this call waited in the session's queue
                yield from _rejected(SHUTTING_DOWN)
                return
            yield from self._run_turn(key, message or "", images, files, abort)
        finally:
            if self._runs.get(key) is abort:
                del self._runs[key]
            self._active -= 1
            lock.release()
            self._forget_lock(key, lock)

    def cancel(self, session_key: str = "default") -> bool:
        """Abort the running turn of a key; ``False`` if none runs (or it was already aborted)."""
        run = self._runs.get(session_key or "default")
        return bool(run and run.fire("user"))

    def reset_session(self, session_key: str = "default") -> None:
        """Forget the engine session and delete the history; a running turn won't re-save it."""
        key = session_key or "default"
        self._reset_epoch[key] = self._reset_epoch.get(key, 0) + 1
        self.sessions.clear(key)
        self.history.delete(key)

    def is_running(self, session_key: str = "default") -> bool:
        return (session_key or "default") in self._runs

    def running_sessions(self) -> list:
        return list(self._runs)

    def get_status(self) -> dict:
        config = load_config(self.dir)
        return {"config": config, "skills": scan_skills(self.dir),
                "engine": self._engine_override or config["engine"],
                "model": self._model_override or config.get("model")}

    def list_models(self) -> list:
        config = load_config(self.dir)
        engine = get_engine(self._engine_override or config["engine"])
        return engine.list_models(api_key=self._api_key,
                                  model=self._model_override or config.get("model"),
                                  workspace=self.dir)

    def set_engine(self, engine: str, clear_model: bool = False) -> None:
        get_engine(engine)  # validates the name
        self._engine_override = engine
        set_top_level(self.dir, "engine", engine)
        if clear_model:
            self._model_override = None
            set_top_level(self.dir, "model", None)

    def set_model(self, model: str | None) -> None:
        self._model_override = model or None
        set_top_level(self.dir, "model", model or None)

    def set_provider(self, provider: dict | None) -> None:
        """In-memory provider override for later turns (golem.yaml is left as the user wrote it)."""
        self.router.override = provider

    def discover_engines(self) -> list:
        found = []
        for name in ENGINE_NAMES:
            engine = get_engine(name)
            path = shutil.which(engine.binary)
            if path:
                found.append({"name": name, "binary": engine.binary, "path": path})
        return found

    def shutdown(self) -> None:
        """Refuse new turns, abort running ones (queued ones end without starting), kill engines."""
        self.closed = True
        for run in list(self._runs.values()):
            run.fire("user")
        shutdown_all()

    # -- the turn -----------------------------------------------------------------------------
    def _forget_lock(self, key, lock) -> None:
        if not lock.held and not lock.waiters and self._locks.get(key) is lock:
            del self._locks[key]

    def _timeout(self, config: dict) -> float:
        if self.timeout_s:
            return float(self.timeout_s)
        t = config.get("timeout")
        ok = isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0
        return float(t) if ok else DEFAULT_TIMEOUT_S

    def _run_turn(self, key, message, images, files, abort):
        try:
            yield from self._turn(key, message, images, files, abort, is_retry=False)
        except GeneratorExit:
            raise
        except Exception as exc:  # config errors, missing binary, bad attachments …
            msg = str(exc) or exc.__class__.__name__
            yield ev.error(msg)
            yield ev.failed(msg)

    def _turn(self, key, message, images, files, abort, is_retry):
        config = load_config(self.dir)
        skills = scan_skills(self.dir)
        write_agents_md(self.dir, config, skills)
        engine_name = self._engine_override or config["engine"]
        engine = get_engine(engine_name)
        provider, on_fallback = self.router.active(config)
        model = resolve_model(engine_name, provider, self._model_override, config.get("model"))

        for warning in self._oauth_expiry_warning(config):
            yield ev.warning(warning)
        if engine_name == "codex":
            text = self.router.codex_warning(provider)
            if text:
                yield ev.warning(text)

        session_id = self.sessions.load(key, engine_name)
        epoch = self._reset_epoch.get(key, 0)
        saved = save_attachments(self.golem_dir, images, files)
        prompt = message
        if not session_id and self.history.exists(key):
            yield ev.warning(RESTORING)
            prompt = (f"[System: This is a new session but you have prior conversation history "
                      f"with this user. Read {self.history.path(key)} to restore context before "
                      f"responding.]\n\n{message}")
        prompt += attachment_prompt(saved)
        if not self._pruned:
            self._pruned = True
            gevent.spawn(self._prune, config)

        inv = Invocation(
            workspace=self.dir, prompt=prompt, skill_paths=[s["path"] for s in skills],
            session_id=session_id, model=model,
            api_key=self._api_key or (provider or {}).get("apiKey"),
            skip_permissions=config.get("skipPermissions", True) is not False,
            codex=config.get("codex"), image_paths=list(saved.image_paths),
            permissions=config.get("permissions"), provider=provider,
            oauth_token=config.get("oauthToken"), mcp=config.get("mcp"),
            extra_env={**self.server_env, "GOLEM_SESSION_KEY": key.replace("\x00", "")})
        outcome = ev.TurnOutcome()
        timer = gevent.spawn_later(self._timeout(config), abort.fire, "timeout")
        if not is_retry:
            self._safe(self.history.append, key, "user", message)
        finished = False
        try:
            for event in engine.invoke(inv, abort):
                outcome.feed(event)
                yield event
            finished = True
        finally:
            timer.kill(block=False)
            saved.cleanup()
            if not finished:  # consumer went away or the engine blew up: keep what we have
                self._record(key, outcome, engine_name, epoch)

        retry = (outcome.got_error and session_id and not is_retry and not abort.fired
                 and any(m in outcome.error_message.lower() for m in RESUME_FAILURE_MARKERS))
        failover = self.router.record(config, on_fallback, outcome.got_error)
        if failover:
            yield ev.warning(failover)
        if retry:
            self._record(key, outcome, engine_name, epoch, history=False)
            self._safe(self.sessions.clear, key)
            yield ev.warning(RESUME_FAILED)
            yield from self._turn(key, message, images, files, abort, is_retry=True)
            return
        if outcome.got_error and config.get("oauthToken") and any(
                m in outcome.error_message.lower()
                for m in ("401", "unauthorized", "authentication", "token expired", "invalid token")):
            yield ev.warning("Authentication failed — your Claude Max OAuth token may have expired. "
                             "Run `claude setup-token` to generate a new one.")
        try:
            yield outcome.completion(abort.reason)
        finally:
            # Saved after the caller has the outcome (a rename costs milliseconds), but before
            # the session's lock is released, so the next turn on this key always resumes it.
            self._record(key, outcome, engine_name, epoch)

    def _record(self, key, outcome, engine_name, epoch, history=True) -> None:
        """Assistant history line and session id (unless the key was reset meanwhile)."""
        if history:
            d = outcome.last_done or {}
            self._safe(self.history.append, key, "assistant", outcome.reply,
                       d.get("durationMs"), d.get("costUsd"))
        if outcome.session_id and self._reset_epoch.get(key, 0) == epoch:
            self._safe(self.sessions.save, key, outcome.session_id, engine_name)

    @staticmethod
    def _safe(fn, *args) -> None:
        try:
            fn(*args)
        except OSError:
            pass

    def _prune(self, config: dict) -> None:
        ttl = config.get("sessionTtlDays", 30)
        if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and ttl > 0:
            self._safe(self.sessions.prune, ttl)

    def _oauth_expiry_warning(self, config: dict):
        """At most hourly: warn when the Claude Max token is within 30 days of its 1-year life."""
        token = config.get("oauthToken")
        if not token or time.monotonic() - self._oauth_warned_at < 3600 and self._oauth_warned_at:
            return []
        path = os.path.join(self.golem_dir, "token-meta.json")
        digest = hashlib.sha256(token.encode()).hexdigest()[:8]
        meta = read_json(path, {})
        if not isinstance(meta, dict) or meta.get("tokenHash") != digest:
            meta = {"tokenHash": digest, "firstSeenAt": iso_now(), "validityDays": 365}
            self._safe(atomic_write_json, path, meta, False)
        try:
            first = calendar.timegm(time.strptime(meta["firstSeenAt"][:19], "%Y-%m-%dT%H:%M:%S"))
            validity = meta.get("validityDays", 365)
            days_left = max(0, round((first + validity * 86400 - time.time()) / 86400))
        except (KeyError, ValueError, TypeError):
            return []
        if days_left > 30:
            return []
        self._oauth_warned_at = time.monotonic()
        return [f"Claude Max OAuth token expires in ~{days_left} days. "
                "Run `claude setup-token` to renew."]
