"""A gunicorn-like worker for the leader tests: ``python worker_child.py <dir>``.

Builds the app exactly as ``wsgi.py`` does (``create_gateway_app``), serves it on a free port of
127.0.0.1 and prints that port. Channels start only if this process wins the gateway lock.
"""
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

from golembot.gateway import create_gateway_app  # noqa: E402

app = create_gateway_app(sys.argv[1])
server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()
print(server.server_port, flush=True)
server.serve_forever()
