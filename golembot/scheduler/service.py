"""``TaskScheduler``: the task store plus, once started, the APScheduler jobs that run it.

Every process may create one (``/cron`` and ``/api/tasks`` work on the store from any gunicorn
worker), but only the elected process calls :meth:`TaskScheduler.start` — one scheduler per
assistant directory, or every worker would run every tick (scheduler.md §11). The election is
the gateway's lock (``golembot/gateway/leader.py``); this class does not take it.

Started, it merges golem.yaml ``tasks`` into the store and keeps exactly one APScheduler job per
enabled task (``task:<id>``, in-memory job store, ``max_instances=1``). Any change of the store —
through this object, the API in another worker or a hand edit — is reconciled: a small watcher
job compares the file's signature every ``watch_interval_s`` seconds. A job re-reads its record
when it fires, so a prompt edit applies at the next run without re-arming.
"""
from __future__ import annotations

import logging
import os

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED
from apscheduler.schedulers.gevent import GeventScheduler
from apscheduler.triggers.interval import IntervalTrigger

from . import history
from .runner import TaskRunner
from .schedules import ScheduleError, parse_schedule
from .store import TaskError, TaskNotFound, TaskStore, check_client_id, validate_fields

log = logging.getLogger("golembot.scheduler")

WATCH_JOB = "golem:store-watch"
JOB_PREFIX = "task:"


def resolve_timezone(config: dict | None):
    """``timezone`` from golem.yaml, else the machine's zone (``TZ`` honoured)."""
    name = (config or {}).get("timezone")
    if isinstance(name, str) and name:
        import zoneinfo
        return zoneinfo.ZoneInfo(name)
    from tzlocal import get_localzone
    return get_localzone()


class TaskScheduler:
    """Scheduled tasks of one assistant directory.

    ``deliver(channel, chat_id, text)`` sends a reply (``Gateway.send``); ``list_chats(channel)``
    lists a channel's chats for targets without ``chatId`` (when omitted and ``deliver`` is a
    bound method of an object with ``adapters``, the adapter's ``list_chats`` is used).
    ``config`` is the loaded golem.yaml (``None``: loaded from ``dir`` when needed).
    """

    def __init__(self, assistant, dir, deliver=None, config=None, *, list_chats=None,
                 watch_interval_s: float = 2.0):
        self.assistant = assistant
        self.dir = os.path.abspath(os.fspath(dir))
        self.store = TaskStore(self.dir)
        self.runner = TaskRunner(assistant, self.store, deliver, list_chats)
        self.watch_interval_s = watch_interval_s
        self._config = config
        self._aps = None
        self._armed: dict = {}  # task id → schedule string of its job
        self._due: dict = {}  # job id → the fire time being run (set just before the run)
        self._invalid: dict = {}  # task id → bad schedule already logged
        self._signature = None
        self._yaml_signature = None
        self._tz = None

    # -- life cycle -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._aps is not None

    def start(self) -> None:
        """Merge golem.yaml tasks into the store, arm every enabled task, watch the store."""
        if self._aps is not None:
            return
        self._yaml_signature = _file_signature(self._yaml_path())
        config = self._load_config()
        self._tz = resolve_timezone(config)
        self.store.merge_config(config.get("tasks") or [])
        self._aps = GeventScheduler(timezone=self._tz)
        self._aps.add_listener(self._on_max_instances, EVENT_JOB_MAX_INSTANCES)
        self._aps.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        self._aps.start()
        self._aps.add_job(self._watch, IntervalTrigger(seconds=self.watch_interval_s,
                                                       timezone=self._tz),
                          id=WATCH_JOB, max_instances=1, coalesce=True)
        armed = self.reconcile()
        log.info("[scheduler] %d task(s) scheduled", armed)

    def stop(self) -> None:
        """Disarm everything; runs in progress are not waited for (their engines are killed
        by the assistant's shutdown)."""
        aps, self._aps = self._aps, None
        self._armed.clear()
        self._signature = None
        if aps is not None:
            aps.shutdown(wait=False)

    def reload(self, config: dict | None = None) -> None:
        """golem.yaml changed: merge its tasks again, re-arm (all jobs if the zone changed)."""
        self._config = config
        if self._aps is None:
            return
        config = self._load_config()
        tz = resolve_timezone(config)
        self.store.merge_config(config.get("tasks") or [])
        if str(tz) != str(self._tz):
            self._tz = tz  # the zone lives in each trigger: re-arm every job
            for tid in list(self._armed):
                self._disarm(tid)
        self.reconcile()

    def reconcile(self) -> int:
        """Make the jobs match the store; returns the number of armed tasks.

        Enabled tasks with a valid schedule get one job each (an unchanged schedule keeps its
        job, so an interval is not restarted); disabled, deleted and invalid ones get none.
        """
        if self._aps is None:
            return 0
        self._signature = self.store.signature()
        wanted = {}
        for record in self.store.load():
            if record.get("enabled", True) is False:
                continue
            wanted[record["id"]] = record
        for tid in [t for t in self._armed if t not in wanted]:
            self._disarm(tid)
        for tid, record in wanted.items():
            schedule = record.get("schedule")
            if self._armed.get(tid) == schedule:
                continue
            try:
                trigger = parse_schedule(schedule, self._tz, record.get("name", tid))
            except ScheduleError as exc:
                if self._invalid.get(tid) != schedule:  # log once, not at every reconcile
                    log.error("[scheduler] Failed to schedule task %s: %s", tid, exc)
                self._invalid[tid] = schedule
                self._disarm(tid)
                continue
            self._invalid.pop(tid, None)
            self._aps.add_job(self._fire, trigger, args=[tid], id=JOB_PREFIX + tid,
                              name=record.get("name", tid), replace_existing=True,
                              max_instances=1, coalesce=True, misfire_grace_time=None)
            self._armed[tid] = schedule
        return len(self._armed)

    def _disarm(self, task_id: str) -> None:
        self._armed.pop(task_id, None)
        if self._aps is not None and self._aps.get_job(JOB_PREFIX + task_id) is not None:
            self._aps.remove_job(JOB_PREFIX + task_id)

    def next_run_time(self, task_id: str):
        """When the task fires next (an aware datetime), or ``None`` when it is not armed here."""
        job = self._aps.get_job(JOB_PREFIX + task_id) if self._aps is not None else None
        return job.next_run_time if job is not None else None

    # -- the store ------------------------------------------------------------------------------
    def list_tasks(self) -> list:
        return self.store.load()

    def get(self, task_id: str) -> dict | None:
        return self.store.get(task_id)

    def resolve(self, id_or_name: str) -> dict | None:
        return self.store.resolve(id_or_name)

    def add(self, name=None, schedule=None, prompt=None, target=None, enabled=True, id=None,
            **_ignored) -> dict:
        """Create an API task; :class:`TaskError` (400, or 409 on a duplicate id/name)."""
        body = {"name": name, "schedule": schedule, "prompt": prompt, "enabled": enabled}
        if target is not None:
            body["target"] = target
        fields = validate_fields(body, partial=False)
        task_id = check_client_id(id) if id not in (None, "") else None
        record = self.store.add(fields, task_id=task_id)
        self.reconcile()
        return record

    def update(self, task_id: str, changes: dict | None = None, /, **more) -> dict:
        """Change some fields (``target=None`` removes the target); ``id`` cannot change.

        ``update(id, {"enabled": False})`` or ``update(id, enabled=False)``.
        """
        changes = {**(changes or {}), **more}
        if "id" in changes and changes["id"] != task_id:
            raise TaskError('"id" cannot be changed')
        fields = validate_fields(changes, partial=True)
        record = self.store.update(task_id, fields)
        self.reconcile()
        return record

    def set_enabled(self, task_id: str, enabled: bool) -> dict:
        return self.update(task_id, enabled=bool(enabled))

    def remove(self, task_id: str) -> dict:
        """Delete the record and its job (its history file stays)."""
        record = self.store.remove(task_id)
        self.reconcile()
        return record

    def history(self, task_id: str, limit: int = 20) -> list:
        """The ``limit`` most recent runs, newest first."""
        return history.read(self.dir, task_id, limit)

    # -- runs -------------------------------------------------------------------------------------
    def run_now(self, task_id: str) -> dict:
        """Run a task at once (enabled or not), wait for it and return its history entry.

        :class:`TaskNotFound` for an unknown id; a failed run is an entry with
        ``status: "error"`` and ``error``, never an exception.
        """
        record = self.store.get(task_id)
        if record is None:
            raise TaskNotFound(task_id)
        return self.runner.run(record)

    def _fire(self, task_id: str) -> None:
        """A tick: re-read the record (prompt edits apply; deleted or disabled: nothing)."""
        due = self._due.pop(JOB_PREFIX + task_id, None)
        record = self.store.get(task_id)
        if record is None or record.get("enabled", True) is False:
            return
        if due is None:
            from datetime import datetime
            due = datetime.now(self._tz)
        self.runner.run(record, scheduled_for=due)

    def _on_submitted(self, event) -> None:
        """Remember the tick's own fire time (the job function is not told it): history lines
        then carry exact ``scheduledFor`` times, even when a run starts late."""
        times = getattr(event, "scheduled_run_times", None)
        if times and event.job_id.startswith(JOB_PREFIX):
            self._due[event.job_id] = times[-1]

    def _on_max_instances(self, event) -> None:
        """APScheduler skipped a tick because the previous one still runs: record it."""
        if not event.job_id.startswith(JOB_PREFIX):
            return
        record = self.store.get(event.job_id[len(JOB_PREFIX):])
        if record is not None:
            times = getattr(event, "scheduled_run_times", None) or [""]
            self.runner.record_skip(record, times[-1])

    def _watch(self) -> None:
        """Another process (or a hand edit) changed tasks.json: reconcile. golem.yaml changed
        (``PATCH /api/config`` on any worker, an edit): merge its tasks and zone again."""
        yaml_now = _file_signature(self._yaml_path())
        if yaml_now != self._yaml_signature:
            self._yaml_signature = yaml_now
            try:
                self.reload(None)
            except Exception as exc:  # noqa: BLE001 - a broken edit keeps the running tasks
                log.error("[scheduler] golem.yaml changed but could not be applied: %s", exc)
        if self.store.signature() != self._signature:
            self.reconcile()

    def _yaml_path(self) -> str:
        return os.path.join(self.dir, "golem.yaml")

    def _load_config(self) -> dict:
        if self._config is not None:
            return self._config
        from ..config import load_config
        return load_config(self.dir)


def _file_signature(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
