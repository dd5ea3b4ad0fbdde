"""For development: ``flask --app app run`` (same settings as ``wsgi.py``: ``GOLEM_DIR``,
``GOLEM_TOKEN``, ``GOLEM_MODE``).

The turn machinery runs on gevent (greenlets, cooperative pipes, timers), while Flask's
development server uses threads. Patching the standard library first turns those threads into
greenlets, so both live on one event loop. For production use ``golembot serve`` or gunicorn
(``wsgi.py``).
"""
from gevent import monkey

monkey.patch_all()

from wsgi import app  # noqa: E402,F401
