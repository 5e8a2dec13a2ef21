"""moto's server, handling one request at a time.

AWS applies each DynamoDB write atomically, conditions included; moto's backends have
no locks, so under its threaded server two concurrent conditional writes can both pass
their condition. Serialising requests restores the guarantee our claims, leases and
quotas rely on, so tests of concurrency test our code and not moto's races.
Usage: moto_server.py HOST PORT
"""

import os
import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


class OneAtATime:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Buffer the body inside the lock, so the request is complete when it is released.
            return list(self.app(environ, start_response))


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, OneAtATime(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
