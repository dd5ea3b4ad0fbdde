"""The WSGI entry point for production: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Serves the assistant directory ``GOLEM_DIR`` (default ``.``) with the same settings as
``golembot serve``: token ``GOLEM_TOKEN`` > ``gateway.token``, golem.yaml limits, ``.env``.
``GOLEM_MODE=gateway`` serves ``golembot gateway`` instead (dashboard, IM channels and scheduled
tasks; with several workers only one of them runs the channels and the scheduler).

gunicorn's gevent worker monkey-patches the standard library before it imports this module.
Under any other server the patching must still come first, before anything imports
``socket``/``threading`` — hence the two lines above every other import.
"""
import os

from gevent import monkey

if not monkey.is_module_patched("socket"):
    monkey.patch_all()

if (os.environ.get("GOLEM_MODE") or "serve").strip().lower() == "gateway":
    from golembot.gateway import create_gateway_app

    app = create_gateway_app()
else:
    from golembot.server.serving import app_from_env

    app = app_from_env()
