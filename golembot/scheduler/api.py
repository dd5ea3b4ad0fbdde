"""The task HTTP API (scheduler.md §9), used by the ``task-manager`` skill and the dashboard.

    GET    /api/tasks               200 [task records]
    POST   /api/tasks               201 record | 400 invalid | 409 duplicate id or name
    PATCH  /api/tasks/<id>          200 {"ok": true, "task": record} | 400 | 404 | 409
    DELETE /api/tasks/<id>          200 {"ok": true} | 404
    POST   /api/tasks/<id>/run      200 {"ok": true, "reply": …}
                                    200 {"ok": false, "error": …} when the run failed | 404
    GET    /api/tasks/<id>/history  200 [runs, newest first] (?limit=, default 20, max 200)

Every route needs the token (``token_check``); without a scheduler every route answers 503
``{"error": "Task scheduler not available"}``. Bodies are validated before anything is stored:
a bad schedule is a 400 with the parser's message and the store is left unchanged.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, request

from .store import TaskError

UNAVAILABLE = "Task scheduler not available"
MAX_HISTORY = 200


def _json(obj, status: int = 200) -> Response:
    return Response(json.dumps(obj, ensure_ascii=False), status=status,
                    mimetype="application/json")


def _error(message: str, status: int) -> Response:
    return _json({"error": message}, status)


def _body():
    try:
        return json.loads(request.get_data(cache=False).decode("utf-8")), None
    except (UnicodeDecodeError, ValueError):
        return None, _error("Invalid JSON body", 400)


def create_blueprint(assistant, scheduler_getter, token_check=None, *, name="golem_tasks"):
    """The ``/api/tasks`` routes.

    ``scheduler_getter()`` returns the :class:`~golembot.scheduler.TaskScheduler` (or ``None``:
    503), read per request so a scheduler created after the app still counts. ``token_check()``
    returns ``None`` to let the request through or the 401/403 response to send (e.g.
    ``lambda: golembot.server.auth.check_request(token)``).
    """
    bp = Blueprint(name, __name__)

    @bp.before_request
    def _guard():
        if request.method == "OPTIONS":
            return None
        if token_check is not None:
            denied = token_check()
            if denied is not None:
                return denied
        if scheduler_getter() is None:
            return _error(UNAVAILABLE, 503)
        return None

    @bp.get("/api/tasks")
    def list_tasks():
        return _json(scheduler_getter().list_tasks())

    @bp.post("/api/tasks")
    def create_task():
        body, bad = _body()
        if bad:
            return bad
        if not isinstance(body, dict):
            return _error("Body must be a JSON object", 400)
        try:
            record = scheduler_getter().add(
                name=body.get("name"), schedule=body.get("schedule"), prompt=body.get("prompt"),
                target=body.get("target"), enabled=body.get("enabled", True), id=body.get("id"))
        except TaskError as exc:
            return _error(str(exc), exc.status)
        return _json(record, 201)

    @bp.patch("/api/tasks/<task_id>")
    def patch_task(task_id):
        if not _valid_id(task_id):
            return _error("Not found", 404)
        body, bad = _body()
        if bad:
            return bad
        if not isinstance(body, dict):
            return _error("Body must be a JSON object", 400)
        try:
            record = scheduler_getter().update(task_id, body)
        except TaskError as exc:
            return _error(str(exc), exc.status)
        return _json({"ok": True, "task": record})

    @bp.delete("/api/tasks/<task_id>")
    def delete_task(task_id):
        if not _valid_id(task_id):
            return _error("Not found", 404)
        try:
            scheduler_getter().remove(task_id)
        except TaskError as exc:
            return _error(str(exc), exc.status)
        return _json({"ok": True})

    @bp.post("/api/tasks/<task_id>/run")
    def run_task(task_id):
        if not _valid_id(task_id):
            return _error("Not found", 404)
        try:
            entry = scheduler_getter().run_now(task_id)
        except TaskError as exc:
            return _error(str(exc), exc.status)
        if entry.get("status") == "error":
            return _json({"ok": False, "error": entry.get("error") or "Task failed",
                          "run": entry})
        return _json({"ok": True, "reply": entry.get("reply", ""), "run": entry})

    @bp.get("/api/tasks/<task_id>/history")
    def task_history(task_id):
        if not _valid_id(task_id):
            return _error("Not found", 404)
        limit = request.args.get("limit", "20")
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_HISTORY:
            return _error(f"limit must be a number from 1 to {MAX_HISTORY}", 400)
        return _json(scheduler_getter().history(task_id, limit=int(limit)))

    return bp


def _valid_id(task_id: str) -> bool:
    from .store import ID_PATTERN
    return bool(ID_PATTERN.fullmatch(task_id))
