"""The running bot: HTTP app + IM channel adapters + scheduler, in one process.

``run_gateway()`` is ``golembot gateway``. Under gunicorn, :func:`create_gateway_app` builds the
same thing per worker, and only the worker holding ``.golem/gateway.lock`` starts channels and
the scheduler (see :mod:`.leader`); the others serve HTTP.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time

import gevent

from ..channels.base import can_send
from ..channels.loader import AdapterLoadError, load_adapter
from ..config import ConfigError, load_config
from .leader import LeaderLock
from .metrics import Broadcaster, Metrics
from .router import GROUP_IDLE_S, Router
from .seen import SeenStore

log = logging.getLogger("golembot.gateway")
KNOWN_CHANNELS = ("feishu", "dingtalk", "wecom", "slack", "telegram", "discord", "weixin")
START_TIMEOUT_S = 30
ESCALATION_POLL_S = 5.0


class UnknownChannelError(LookupError):
    """``send`` to a channel that is not running (``/api/send`` → 404; the message lists them)."""


class CannotSendError(RuntimeError):
    """The channel's adapter has no proactive ``send`` (``/api/send`` → 501)."""


class NoAdaptersError(RuntimeError):
    """No channel is running at all (``/api/send`` → 503)."""


class Gateway:
    """Channel adapters wired to an assistant; metrics and the activity feed for the API.

    What the HTTP layer and the scheduler use:

    * ``adapters`` — YAML key → started adapter; ``list_channels()`` → ``[{"name","canSend"}]``;
      ``channel_status()`` → ``[{"type","status","error"?}]`` (configured channels in YAML
      order — ``starting``, ``connected`` or ``failed`` — then the built-in platforms as
      ``not_configured``);
    * ``send(channel, chat_id, text)`` — proactive message, split at the adapter's limit; raises
      :class:`NoAdaptersError`, :class:`UnknownChannelError`, :class:`CannotSendError`, or the
      adapter's own exception when the platform refuses;
    * ``metrics`` (:class:`~.metrics.Metrics`: ``record(...)``, ``snapshot()``) and ``activity``
      (:class:`~.metrics.Broadcaster`: ``subscribe()`` → an iterable queue, ``unsubscribe(q)``,
      ``publish(entry)``) for ``/api/events``;
    * ``scheduler`` — the running ``TaskScheduler`` in the elected process, else ``None``;
    * ``reload_config(config)`` — after ``PATCH /api/config`` (golem.yaml is also re-read
      whenever it changes, so hot fields apply to the next message anyway);
    * ``start()`` / ``start_when_elected()`` / ``stop()`` / ``request_shutdown()``.

    Creating a Gateway wraps ``assistant.reset_session`` so that resetting a group's session
    (``POST /reset``, ``/reset``) also forgets the group's history and turn counter.
    """

    def __init__(self, assistant, dir=None, config=None):
        self.assistant = assistant
        self.dir = os.path.abspath(dir or assistant.dir)
        self._config = config
        self._config_stamp = None
        self.adapters: dict = {}
        self._status: dict = {}
        self.activity = Broadcaster()
        self.metrics = Metrics(self.activity)
        self.router = Router(self)
        self.seen = SeenStore(self.dir)
        self.scheduler = None
        self.started_at = time.time()
        self.leader = LeaderLock(self.dir)
        self._greenlets: list = []
        self._started = False
        self._election = None
        self._stopped = False
        self.shutdown_handler = None  # set by run_gateway: the SIGTERM path
        self._wrap_reset(assistant)

    def _wrap_reset(self, assistant) -> None:
        """``POST /reset`` and ``/reset`` also forget the group's history and turn counter."""
        original = assistant.reset_session
        router = self.router

        def reset_session(session_key="default"):
            original(session_key)
            router.reset_group(session_key)
        reset_session.__doc__ = original.__doc__
        assistant.reset_session = reset_session

    # -- configuration (re-read per message: hot fields apply at once) --------------------------
    def current_config(self) -> dict:
        """golem.yaml as it is now (parsed again only when the file changed)."""
        try:
            st = os.stat(os.path.join(self.dir, "golem.yaml"))
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if self._config is not None and stamp is not None and stamp == self._config_stamp:
            return self._config
        try:
            self._config = load_config(self.dir)
            self._config_stamp = stamp
        except (ConfigError, OSError) as exc:
            if self._config is None:
                raise
            log.warning("golem.yaml unreadable, keeping the last good version: %s", exc)
        return self._config

    def reload_config(self, config: dict | None = None) -> None:
        """``PATCH /api/config`` wrote golem.yaml: use ``config`` now (re-read if None)."""
        self._config_stamp = None
        if config is not None:
            self._config = config

    def peers(self) -> list:
        """Fleet peers (multi-bot awareness) — none until the fleet lands."""
        return []

    # -- life cycle ---------------------------------------------------------------------------
    def start(self, scheduler: bool = True) -> None:
        """Start every configured adapter in parallel; a failing one never stops the others.

        Returns when each adapter has started, failed or timed out (30 s). Idempotent.
        """
        if self._started or self._stopped:
            return
        self._started = True
        self.seen.reload()
        channels = self.current_config().get("channels") or {}
        jobs = []
        for key, conf in channels.items():
            if not conf:
                continue
            self._status[key] = {"status": "starting"}
            jobs.append(gevent.spawn(self._start_one, key, conf))
        gevent.joinall(jobs, timeout=START_TIMEOUT_S)
        for job in jobs:
            job.kill(block=False)  # a start() that hangs is given up, not left half-running
        for key, st in self._status.items():
            if st["status"] == "starting":
                st.update(status="failed", error=f"did not start within {START_TIMEOUT_S}s")
        if scheduler:
            self._start_scheduler()
        self._init_escalation_offset()
        self._greenlets.append(gevent.spawn(self._watch_escalations))
        self._greenlets.append(gevent.spawn(self._purge_loop))

    def start_when_elected(self, retry_s: float = 2.0):
        """Run :meth:`start` once this process holds ``.golem/gateway.lock``; until then retry
        every ``retry_s`` seconds, so a worker takes over when the leader dies. Idempotent."""
        if self._election is None:
            self._election = self.leader.acquire_in_background(self.start, retry_s=retry_s)
        return self._election

    def _purge_loop(self) -> None:
        while True:
            gevent.sleep(GROUP_IDLE_S)
            self.router.purge_idle_groups()

    def _start_one(self, key: str, conf) -> None:
        try:
            if key in KNOWN_CHANNELS and not (isinstance(conf, dict) and conf.get("_adapter")):
                raise AdapterLoadError(f'Built-in channel "{key}" is not available in this version;'
                                       ' configure a custom adapter with "_adapter:"')
            adapter = load_adapter(key, conf, self.dir)
            log.info("channel %s: starting %s", key, type(adapter).__name__)
            adapter.start(lambda msg, key=key, adapter=adapter:
                          self.router.on_message(key, adapter, msg))
        except Exception as exc:  # noqa: BLE001 - shown as failed, the others go on
            log.error("channel %s failed to start: %s", key, exc)
            self._status[key] = {"status": "failed", "error": str(exc)}
            return
        self.adapters[key] = adapter
        self._status[key] = {"status": "connected"}

    def _start_scheduler(self) -> None:
        try:
            from ..scheduler import TaskScheduler
        except ImportError:
            return
        try:
            self.scheduler = TaskScheduler(self.assistant, self.dir, deliver=self.send,
                                           config=self._config)
            self.scheduler.start()
        except Exception as exc:  # noqa: BLE001 - a bad task must not stop the channels
            log.error("scheduler failed to start: %s", exc)

    def stop(self) -> None:
        """Scheduler, adapters, running turns and engine processes; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for g in self._greenlets:
            g.kill(block=False)
        if self.scheduler is not None:
            try:
                self.scheduler.stop()
            except Exception:  # noqa: BLE001
                log.exception("scheduler stop failed")
        for key, adapter in list(self.adapters.items()):
            try:
                adapter.stop()
            except Exception:  # noqa: BLE001
                log.exception("adapter %s stop failed", key)
        self.seen.save()
        try:
            self.assistant.shutdown()
        finally:
            from ..engines.base import shutdown_all
            shutdown_all()
            self.leader.release()

    def request_shutdown(self) -> bool:
        """``POST /shutdown``: start the graceful stop shortly after the answer is sent."""
        if self.shutdown_handler is None:
            return False
        gevent.spawn_later(0.2, self.shutdown_handler)
        return True

    # -- API helpers --------------------------------------------------------------------------
    def channel_status(self) -> list:
        out = [{"type": k, **v} for k, v in self._status.items()]
        out += [{"type": k, "status": "not_configured"} for k in KNOWN_CHANNELS
                if k not in self._status]
        return out

    def list_channels(self) -> list:
        return [{"name": k, "canSend": can_send(a)} for k, a in self.adapters.items()]

    def send(self, channel: str, chat_id: str, text: str) -> None:
        """Proactive message (``/api/send``, tasks, escalations); split at the adapter's limit."""
        from .prompts import split_message
        if not self.adapters:
            raise NoAdaptersError("No channel adapters available")
        adapter = self.adapters.get(channel)
        if adapter is None:
            raise UnknownChannelError(f'Channel "{channel}" not found. Available: '
                                      + ", ".join(self.adapters))
        if not can_send(adapter):
            raise CannotSendError(f'Channel "{channel}" does not support proactive send')
        limit = int(getattr(adapter, "max_message_length", 0) or 4000)
        for chunk in split_message(text.strip(), limit):
            if chunk.strip():
                adapter.send(chat_id, chunk)

    # -- escalations (decisions.md: sent to escalation.target when set) -------------------------
    def _init_escalation_offset(self) -> None:
        """The very first start forwards only escalations recorded from now on."""
        path = os.path.join(self.dir, ".golem", "escalations.jsonl")
        offset_path = os.path.join(self.dir, ".golem", "escalations.offset")
        if os.path.exists(offset_path):
            return
        from ..files import atomic_write_text
        try:
            atomic_write_text(offset_path,
                              str(os.path.getsize(path) if os.path.exists(path) else 0))
        except OSError as exc:
            log.warning("escalation offset not writable: %s", exc)

    def _watch_escalations(self) -> None:
        path = os.path.join(self.dir, ".golem", "escalations.jsonl")
        offset_path = os.path.join(self.dir, ".golem", "escalations.offset")
        while True:
            gevent.sleep(ESCALATION_POLL_S)
            try:
                self._forward_escalations(path, offset_path)
            except Exception:  # noqa: BLE001
                log.exception("forwarding escalations failed")

    def _forward_escalations(self, path: str, offset_path: str) -> int:
        target = (self.current_config().get("escalation") or {}).get("target") or {}
        if not os.path.exists(path) or not target.get("channel") or not target.get("chatId"):
            return 0
        from ..files import atomic_write_text
        try:
            with open(offset_path) as fh:
                offset = int(fh.read().strip() or 0)
        except (OSError, ValueError):
            offset = 0
        if offset > os.path.getsize(path):  # the file was truncated or replaced
            offset = 0
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
        complete = data[:data.rfind(b"\n") + 1]
        sent = 0
        for line in complete.decode("utf-8", "replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            text = f"🚨 Escalation: {entry.get('reason', '(no reason)')}"
            if entry.get("sessionKey"):
                text += f" (session {entry['sessionKey']})"
            self.send(target["channel"], str(target["chatId"]), text)
            sent += 1
        atomic_write_text(offset_path, str(offset + len(complete)))
        return sent


# -- process entry points ----------------------------------------------------------------------
def _assistant_for(dir: str, api_key=None):
    from ..server.serving import assistant_for
    config = load_config(dir)
    return assistant_for(dir, config, api_key), config


def create_gateway_app(dir=None):
    """The WSGI app of gateway mode for gunicorn workers (``wsgi.py``).

    Each worker serves HTTP; the one that wins ``.golem/gateway.lock`` (retried every 2 s, so a
    dead leader is replaced) also runs channels and the scheduler.
    """
    from ..server import create_app
    from ..server.serving import set_agent_env, settings_from_env
    dir, config, assistant, token, host, port = settings_from_env(dir)
    gateway = Gateway(assistant, dir, config)
    app = create_app(assistant, token=token, gateway=gateway, host=host, port=port)
    set_agent_env(assistant, host, port, token)
    attach_to_app(app)
    return app


def attach_to_app(app, assistant=None, dir=None, *, retry_s: float = 2.0):
    """Run channels and the scheduler for ``app`` in the one worker that wins the lock.

    Call it in each gunicorn worker, after fork (``wsgi.py`` does, through
    :func:`create_gateway_app`). It uses the gateway given to ``create_app(..., gateway=gw)``
    (that is what serves ``/api/*``), or creates one for ``assistant``/``dir`` when the app has
    none. Election is retried every ``retry_s`` seconds in the background; calling this again is
    harmless. Returns the :class:`Gateway`.
    """
    state = app.extensions.setdefault("golembot", {})
    gateway = state.get("gateway")
    if gateway is None:
        assistant = assistant or state.get("assistant")
        if assistant is None:
            raise ValueError("attach_to_app needs an assistant (none is registered on the app)")
        gateway = Gateway(assistant, dir or assistant.dir)
        state["gateway"] = gateway
    gateway.start_when_elected(retry_s)
    return gateway


def channel_report(gateway) -> str:
    """Start-up summary: each configured channel and, for a failed one, why."""
    lines = []
    for st in gateway.channel_status():
        if st["status"] == "not_configured":
            continue
        line = f"   Channel {st['type']}: {st['status']}"
        lines.append(line + (f" — {st['error']}" if st.get("error") else ""))
    return "\n".join(lines) or "   No channels configured (add them under channels: in golem.yaml)"


def run_gateway(dir=".", port=None, token=None, host=None, api_key=None, verbose=False,
                out=None) -> None:
    """``golembot gateway``: serve HTTP + dashboard, run channels and tasks until a signal."""
    from ..server.serving import DEFAULT_HOST, banner, create_golem_server, serve_until_stopped
    out = out or sys.stdout
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    dir = os.path.abspath(dir)
    assistant, config = _assistant_for(dir, api_key)
    gw_conf = config.get("gateway") or {}
    port = port if port is not None else (
        int(os.environ["GOLEM_PORT"]) if os.environ.get("GOLEM_PORT") else gw_conf.get("port", 3000))
    token = token or os.environ.get("GOLEM_TOKEN") or gw_conf.get("token") or None
    host = host or gw_conf.get("host") or DEFAULT_HOST
    gateway = Gateway(assistant, dir, config)
    server = create_golem_server(assistant, port=port, token=token, hostname=host, gateway=gateway)
    server.start()
    print(banner(host, server.server_port, token).replace("Golem server", "Golem gateway"),
          f"\n   Dashboard: http://{host}:{server.server_port}/", file=out, flush=True)
    def start_and_report():
        gateway.start()
        print(channel_report(gateway), file=out, flush=True)

    if gateway.leader.try_acquire():
        gevent.spawn(start_and_report)
    else:
        print("   Another gateway holds .golem/gateway.lock: channels and tasks run there; "
              "this process takes over if it stops.", file=out, flush=True)
        gateway.leader.acquire_in_background(start_and_report)
    # Streams are told "Server shutting down" before the gateway aborts what is left.
    serve_until_stopped(server, after_stop=gateway.stop,
                        on_stop_handle=lambda stop: setattr(gateway, "shutdown_handler", stop))


__all__ = ["Gateway", "run_gateway", "create_gateway_app", "attach_to_app", "UnknownChannelError",
           "CannotSendError", "NoAdaptersError"]
