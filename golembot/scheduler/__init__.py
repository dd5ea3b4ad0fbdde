"""Scheduled tasks: prompts run on a schedule, their replies delivered to IM chats.

    scheduler = TaskScheduler(assistant, dir, deliver=gateway.send)
    scheduler.start()          # only in the one process elected to schedule (see service.py)
    scheduler.run_now("a1b2c3d4")

Modules: ``schedules`` (the four schedule formats → APScheduler triggers), ``store`` (the task
store ``.golem/tasks.json``), ``runner`` (one run: prompt, deliver, record), ``history`` (run
history ``.golem/tasks/history/<id>.jsonl``), ``service`` (:class:`TaskScheduler`),
``cron_command`` (``/cron``) and ``api`` (the ``/api/tasks`` blueprint).
"""
from .schedules import ScheduleError, parse_schedule, validate_schedule
from .service import TaskScheduler
from .store import TaskError, TaskNotFound, TaskStore

__all__ = ["TaskScheduler", "TaskStore", "TaskError", "TaskNotFound", "ScheduleError",
           "parse_schedule", "validate_schedule"]
