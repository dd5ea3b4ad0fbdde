"""The WSGI entry point for production: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Serves the assistant directory ``GOLEM_DIR`` (default ``.``) as ``golembot gateway`` does:
the HTTP API, the dashboard, IM channels and scheduled tasks — with several workers only the
one holding ``.golem/gateway.lock`` runs the channels and the scheduler. Settings as the CLI:
token ``GOLEM_TOKEN`` > ``gateway.token``, golem.yaml limits, ``.env``. ``GOLEM_MODE=serve``
serves only what ``golembot serve`` does (no dashboard, channels or scheduler).

gunicorn's gevent worker monkey-patches the standard library before it imports this module.
Under any other server the patching must still come first, before anything imports
``socket``/``threading`` — hence the two lines above every other import.
"""
import os

from gevent import monkey

if not monkey.is_module_patched("socket"):
    monkey.patch_all()

if (os.environ.get("GOLEM_MODE") or "gateway").strip().lower() != "serve":
    from golembot.gateway import create_gateway_app

    app = create_gateway_app()
else:
    from golembot.server.serving import app_from_env

    app = app_from_env()
