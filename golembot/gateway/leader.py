"""One process per assistant directory runs channels and the scheduler: the holder of a lock.

The lock is an ``fcntl.flock`` on ``.golem/gateway.lock``, taken *after* fork (gunicorn workers
each try); the kernel drops it when its holder dies, and a waiting process picks it up on its
next try, so another worker takes over within ``retry_s`` seconds.
"""
from __future__ import annotations

import fcntl
import os

import gevent


class LeaderLock:
    def __init__(self, dir: str, name: str = "gateway.lock"):
        self.path = os.path.join(os.path.abspath(dir), ".golem", name)
        self._fh = None
        self._watcher = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never blocks."""
        if self._fh is not None:
            return True
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return True

    def acquire_in_background(self, on_acquired, retry_s: float = 2.0):
        """Keep trying every ``retry_s`` seconds in a greenlet; call ``on_acquired()`` once."""
        def loop():
            while not self.try_acquire():
                gevent.sleep(retry_s)
            on_acquired()
        self._watcher = gevent.spawn(loop)
        return self._watcher

    def release(self) -> None:
        if self._watcher is not None:
            self._watcher.kill(block=False)
            self._watcher = None
        if self._fh is not None:
            try:
                fcntl.flock(self._fh, fcntl.LOCK_UN)
            finally:
                self._fh.close()
                self._fh = None
