"""The running bot: HTTP app + IM channel adapters + scheduler, in one process.

``run_gateway()`` is ``golembot gateway``. Under gunicorn, :func:`create_gateway_app` builds the
same thing per worker, and only the worker holding ``.golem/gateway.lock`` starts channels and
the scheduler (see :mod:`.leader`); the others serve HTTP.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time

import gevent

from ..channels.base import can_send
from ..channels.loader import AdapterLoadError, load_adapter
from ..config import ConfigError, load_config
from .leader import LeaderLock
from .metrics import Broadcaster, Metrics
from .router import Router

log = logging.getLogger("golembot.gateway")
KNOWN_CHANNELS = ("feishu", "dingtalk", "wecom", "slack", "telegram", "discord", "weixin")
START_TIMEOUT_S = 30
ESCALATION_POLL_S = 5.0


class UnknownChannelError(LookupError):
    pass


class CannotSendError(RuntimeError):
    pass


class NoAdaptersError(RuntimeError):
    pass


class Gateway:
    """Channel adapters wired to an assistant; metrics and the activity feed for the API."""

    def __init__(self, assistant, dir=None, config=None):
        self.assistant = assistant
        self.dir = os.path.abspath(dir or assistant.dir)
        self._config = config
        self.adapters: dict = {}
        self._status: dict = {}
        self.activity = Broadcaster()
        self.metrics = Metrics(self.activity)
        self.router = Router(self)
        self.scheduler = None
        self.started_at = time.time()
        self.leader = LeaderLock(self.dir)
        self._greenlets: list = []
        self._stopped = False
        self.shutdown_handler = None  # set by run_gateway: the SIGTERM path

    # -- configuration (re-read per message: hot fields apply at once) --------------------------
    def current_config(self) -> dict:
        try:
            self._config = load_config(self.dir)
        except (ConfigError, OSError) as exc:
            if self._config is None:
                raise
            log.warning("golem.yaml unreadable, keeping the last good version: %s", exc)
        return self._config

    def peers(self) -> list:
        """Fleet peers (multi-bot awareness) — none until the fleet lands."""
        return []

    # -- life cycle ---------------------------------------------------------------------------
    def start(self, scheduler: bool = True) -> None:
        """Start every configured adapter in parallel; a failing one never stops the others."""
        channels = self.current_config().get("channels") or {}
        jobs = []
        for key, conf in channels.items():
            if not conf:
                continue
            self._status[key] = {"status": "starting"}
            jobs.append(gevent.spawn(self._start_one, key, conf))
        gevent.joinall(jobs, timeout=START_TIMEOUT_S)
        for key, st in self._status.items():
            if st["status"] == "starting":
                st.update(status="failed", error=f"did not start within {START_TIMEOUT_S}s")
        if scheduler:
            self._start_scheduler()
        self._greenlets.append(gevent.spawn(self._watch_escalations))

    def start_when_elected(self, retry_s: float = 2.0):
        """Run :meth:`start` once this process holds the gateway lock (gunicorn workers)."""
        return self.leader.acquire_in_background(self.start, retry_s=retry_s)

    def _start_one(self, key: str, conf) -> None:
        try:
            if key in KNOWN_CHANNELS and not (isinstance(conf, dict) and conf.get("_adapter")):
                raise AdapterLoadError(f'Built-in channel "{key}" is not available in this version;'
                                       ' configure a custom adapter with "_adapter:"')
            adapter = load_adapter(key, conf, self.dir)
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
        self.assistant.shutdown()
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
            offset = int(open(offset_path).read().strip() or 0)
        except (OSError, ValueError):
            offset = os.path.getsize(path)  # first run: only escalations from now on
            atomic_write_text(offset_path, str(offset))
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
    from .. import create_assistant
    config = load_config(dir)
    limits = {}
    for key, arg in (("maxConcurrent", "max_concurrent"),
                     ("maxQueuePerSession", "max_queue_per_session")):
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limits[arg] = value
    return create_assistant(dir, api_key=api_key, **limits), config


def create_gateway_app(dir=None):
    """The WSGI app of gateway mode for gunicorn workers (``wsgi.py``).

    Each worker serves HTTP; the one that wins ``.golem/gateway.lock`` (retried every 2 s, so a
    dead leader is replaced) also runs channels and the scheduler.
    """
    from ..config import load_env_files
    from ..server import create_app
    from ..server.serving import DEFAULT_HOST, DEFAULT_PORT, resolve_port, set_agent_env
    dir = os.path.abspath(dir or os.environ.get("GOLEM_DIR") or ".")
    load_env_files(dir)
    assistant, config = _assistant_for(dir)
    gw_conf = config.get("gateway") or {}
    token = os.environ.get("GOLEM_TOKEN") or gw_conf.get("token") or None
    host = os.environ.get("GOLEM_HOST") or gw_conf.get("host") or DEFAULT_HOST
    port = resolve_port() if os.environ.get("GOLEM_PORT") else (gw_conf.get("port") or DEFAULT_PORT)
    gateway = Gateway(assistant, dir, config)
    app = create_app(assistant, token=token, gateway=gateway, host=host, port=port)
    set_agent_env(assistant, host, port, token)
    app.extensions["golembot"]["gateway_obj"] = gateway
    gateway.start_when_elected()
    return app


def run_gateway(dir=".", port=None, token=None, host=None, api_key=None, verbose=False,
                out=None) -> None:
    """``golembot gateway``: serve HTTP + dashboard, run channels and tasks until a signal."""
    from ..server.serving import DEFAULT_HOST, banner, create_golem_server, graceful_stop
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
    if gateway.leader.try_acquire():
        gevent.spawn(gateway.start)
    else:
        print("   Another gateway holds .golem/gateway.lock: channels and tasks run there; "
              "this process takes over if it stops.", file=out, flush=True)
        gateway.start_when_elected()
    stopping = []

    def on_signal():
        if stopping:
            return
        # Streams are told "Server shutting down" before the gateway aborts what is left.
        stopping.append(gevent.spawn(lambda: (graceful_stop(server), gateway.stop())))
        stopping.append(gevent.spawn_later(20, os._exit, 0))

    gateway.shutdown_handler = on_signal
    handlers = [gevent.signal_handler(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        server.serve_forever()
        if stopping:
            stopping[0].join()
    finally:
        for h in handlers:
            h.cancel()
        for g in stopping[1:]:
            g.kill(block=False)


__all__ = ["Gateway", "run_gateway", "create_gateway_app", "UnknownChannelError",
           "CannotSendError", "NoAdaptersError"]
