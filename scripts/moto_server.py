"""moto's server, handling one request at a time.

AWS applies each DynamoDB write atomically, conditions included; moto's backends have
no locks, so under its threaded server two concurrent conditional writes can both pass
their condition. Serialising requests restores the guarantee our claims, leases and
quotas rely on, so tests of concurrency test our code and not moto's races.

For the fault-injection suite, `--sns-throttle SHARE:FAILURES` makes SNS refuse the first
FAILURES `Publish` requests to a SHARE of phone numbers (chosen by a hash of the number,
so a run is repeatable) with the `Throttling` error AWS returns when a rate is exceeded.
FAILURES above the SDK's three attempts makes the failure reach the caller.

Usage: moto_server.py HOST PORT [--sns-throttle SHARE:FAILURES]
"""

import hashlib
import io
import os
import signal
import sys
import threading
from urllib.parse import parse_qs

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


THROTTLED = b"""<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded (injected)</Message></Error>
<RequestId>injected-throttling</RequestId></ErrorResponse>"""


class ThrottleSomePhones:
    """Refuses the first `failures` SMS publishes to `share` of the phone numbers."""

    def __init__(self, app, share, failures):
        self.app = app
        self.share = share
        self.failures = failures
        self.refused = {}

    def chosen(self, phone):
        bucket = int.from_bytes(hashlib.sha256(phone.encode()).digest()[:4], "big") % 10_000
        return bucket < self.share * 10_000

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        form = parse_qs(body.decode("utf-8", "replace"))
        phone = (form.get("PhoneNumber") or [""])[0]
        if form.get("Action") == ["Publish"] and phone and self.chosen(phone):
            refused = self.refused.get(phone, 0)
            if refused < self.failures:
                self.refused[phone] = refused + 1
                start_response("400 Bad Request", [("Content-Type", "text/xml")])
                return [THROTTLED]
        return self.app(environ, start_response)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    if len(sys.argv) == 5 and sys.argv[3] == "--sns-throttle":
        share, failures = sys.argv[4].split(":")
        app = ThrottleSomePhones(app, float(share), int(failures))
    run_simple(host, port, OneAtATime(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
