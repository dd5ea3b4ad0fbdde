"""gunicorn settings for golembot: ``gunicorn -c gunicorn.conf.py wsgi:app``.

* One gevent worker by default: gevent gives the concurrency (hundreds of open SSE streams),
  and turn queues, limits and ``/abort`` live in the worker's memory (decisions.md).
  ``GOLEM_WORKERS`` raises it.
* ``timeout`` does not cut long streams: the gevent worker's heartbeat runs in its own greenlet,
  so a worker busy with streams still checks in. It only catches a worker whose event loop is
  blocked.
* Shutdown: on SIGTERM (and SIGINT/SIGQUIT) every open ``/chat`` stream gets
  ``Server shutting down`` and its turn is aborted, engine process groups are killed, then the
  worker exits well within ``graceful_timeout``.
* The access log (off unless ``--access-logfile``) shows paths without query strings, so a
  ``?token=`` on ``/api/events`` is never written.
"""
import os
import signal

bind = f"{os.environ.get('GOLEM_HOST') or '127.0.0.1'}:{os.environ.get('GOLEM_PORT') or '3000'}"
worker_class = "gevent"
workers = int(os.environ.get("GOLEM_WORKERS") or 1)
worker_connections = int(os.environ.get("GOLEM_WORKER_CONNECTIONS") or 1000)
timeout = 120
graceful_timeout = 30
keepalive = 5
preload_app = False  # the app must be imported after the worker's gevent monkey-patching
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def _shutdown(worker):
    """End streams and turns of this worker's app, kill its engines (idempotent)."""
    try:
        from golembot.server.serving import shutdown_app
        shutdown_app(getattr(worker, "wsgi", None))
    except Exception:  # noqa: BLE001 - never keep a worker from exiting
        worker.log.exception("golembot shutdown failed")
        from golembot.engines.base import shutdown_all
        shutdown_all()


def post_worker_init(worker):
    """SIGTERM: stop the worker (gunicorn's own handler) and shut golembot down in a greenlet,
    so open streams end now instead of holding the worker until graceful_timeout."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(sig, frame):
        if callable(previous):
            previous(sig, frame)
        import gevent
        gevent.spawn(_shutdown, worker)

    signal.signal(signal.SIGTERM, on_term)


def worker_int(worker):
    """SIGINT/SIGQUIT (quick shutdown)."""
    _shutdown(worker)


def worker_abort(worker):
    """SIGABRT (the worker timed out): at least do not leave agents running."""
    from golembot.engines.base import shutdown_all
    shutdown_all()


def worker_exit(server, worker):
    """Last chance, whatever ended the worker: no engine process outlives it."""
    from golembot.engines.base import shutdown_all
    shutdown_all()
