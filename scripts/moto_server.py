"""moto's server, handling one request at a time.

AWS applies each DynamoDB write atomically, conditions included; moto's backends have
no locks, so under its threaded server two concurrent conditional writes can both pass
their condition. Serialising requests restores the guarantee our claims, leases and
quotas rely on, so tests of concurrency test our code and not moto's races.

For the fault-injection suite, `--sns-throttle SHARE:FAILURES` makes SNS refuse the first
FAILURES `Publish` requests to a SHARE of phone numbers (chosen by a hash of the number,
so a run is repeatable) with the `Throttling` error AWS returns when a rate is exceeded.
Our SNS client does not retry `Publish`, so each refusal reaches the caller.

`--sns-unsure PREFIX` makes SNS publish every SMS to a number starting with PREFIX (moto
records it as sent) and then answer 500, as a service that took a request and failed
before it could say so: the caller cannot know whether the text went out.

`--sns-drop PREFIX` does the same but closes the connection without an answer, as a
network fault after the request arrived would.

`--secrets-throttle COUNT` answers the first COUNT `GetSecretValue` requests with the
`ThrottlingException` Secrets Manager returns when its rate is exceeded.

`--dynamodb-lose-answers EVERY` applies every EVERY-th `UpdateItem` request and then
answers it 500, as a service that committed a write and lost its answer would; the
caller's SDK retries it (the same request, answered normally this time), and the retry
meets the write it already made.

`--dynamodb-lose-put-answers EVERY` does the same to `PutItem` requests: every EVERY-th is
applied and answered 500, and the same request again is answered normally (a retried
conditional create then meets the row it already made).

`--dynamodb-refuse-updates TEXT` answers every `UpdateItem` whose request contains TEXT
with 500 without applying it, as a table that cannot be written would (the SDK's retries
meet the same answer).

`--sqs-refuse-sends SUFFIX:COUNT` answers the first COUNT `SendMessageBatch` requests to a
queue whose URL ends with SUFFIX with AccessDenied, as a missing grant or a Deny in the
queue's policy would.

Every request is counted by service and operation (`DynamoDB.UpdateItem`, `SQS.SendMessageBatch`,
`SNS.Publish`...): `GET /_symphony/requests` answers the counts as JSON and
`DELETE /_symphony/requests` sets them back to zero (the calls-per-unit bench).

Usage: moto_server.py HOST PORT [--sns-throttle SHARE:FAILURES] [--sns-unsure PREFIX]
       [--sns-drop PREFIX] [--secrets-throttle COUNT] [--dynamodb-lose-answers EVERY]
       [--dynamodb-lose-put-answers EVERY] [--dynamodb-refuse-updates TEXT]
       [--sqs-refuse-sends SUFFIX:COUNT]
"""

import hashlib
import io
import json
import os
import signal
import socket
import sys
import threading
from urllib.parse import parse_qs

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def sms_request(environ):
    """The request's form and its PhoneNumber, leaving the body readable for moto."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    form = parse_qs(body.decode("utf-8", "replace"))
    return form, (form.get("PhoneNumber") or [""])[0]


class CountRequests:
    """Counts each request by service and operation; serves the counts."""

    def __init__(self, app):
        self.app = app
        self.counts = {}
        self.lock = threading.Lock()

    def operation(self, environ):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            service, _, name = target.partition(".")
            service = "DynamoDB" if service.startswith("DynamoDB") else service.replace("Amazon", "")
            return f"{service}.{name}"
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        action = (parse_qs(body.decode("utf-8", "replace")).get("Action") or ["?"])[0]
        host = environ.get("HTTP_AUTHORIZATION", "")
        service = host.split("/")[3] if host.count("/") >= 3 else "query"
        return f"{service.upper() if service in ('sns', 'sqs') else service}.{action}"

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/_symphony/requests":
            with self.lock:
                if environ.get("REQUEST_METHOD") == "DELETE":
                    self.counts = {}
                body = json.dumps(self.counts).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        name = self.operation(environ)
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1
        return self.app(environ, start_response)


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
        form, phone = sms_request(environ)
        if form.get("Action") == ["Publish"] and phone and self.chosen(phone):
            refused = self.refused.get(phone, 0)
            if refused < self.failures:
                self.refused[phone] = refused + 1
                start_response("400 Bad Request", [("Content-Type", "text/xml")])
                return [THROTTLED]
        return self.app(environ, start_response)


UNSURE = b"""<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
<Error><Type>Receiver</Type><Code>InternalError</Code><Message>Internal failure (injected)</Message></Error>
<RequestId>injected-unsure</RequestId></ErrorResponse>"""


class PublishThenFail:
    """Publishes SMS to numbers starting with `prefix`, then answers 500, or with `drop`
    closes the connection unanswered."""

    def __init__(self, app, prefix, drop=False):
        self.app = app
        self.prefix = prefix
        self.drop = drop

    def __call__(self, environ, start_response):
        form, phone = sms_request(environ)
        if form.get("Action") == ["Publish"] and phone.startswith(self.prefix):
            list(self.app(environ, lambda *_: None))
            if self.drop:
                # werkzeug treats the failed write of its answer as a dropped connection.
                environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
                start_response("200 OK", [("Content-Type", "text/xml")])
                return [b""]
            start_response("500 Internal Server Error", [("Content-Type", "text/xml")])
            return [UNSURE]
        return self.app(environ, start_response)


SECRETS_THROTTLED = b"""{"__type":"ThrottlingException","message":"Rate exceeded (injected)"}"""


class ThrottleSecretReads:
    """Refuses the first `count` GetSecretValue requests with ThrottlingException."""

    def __init__(self, app, count):
        self.app = app
        self.left = count

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if self.left > 0 and target == "secretsmanager.GetSecretValue":
            self.left -= 1
            start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")])
            return [SECRETS_THROTTLED]
        return self.app(environ, start_response)


LOST = b"""{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error (injected, after the write)"}"""


class LoseSomeAnswers:
    """Applies every `every`-th request of `operation` (UpdateItem unless told), then
    answers it 500. A retry (the same request again) is answered normally: the fault is
    one lost answer, not an outage."""

    def __init__(self, app, every, operation="UpdateItem"):
        self.app = app
        self.every = every
        self.target = f"DynamoDB_20120810.{operation}"
        self.seen = 0
        self.lost = set()

    def __call__(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "") == self.target:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            digest = hashlib.sha256(body).digest()
            if digest in self.lost:
                return self.app(environ, start_response)
            self.seen += 1
            if self.seen % self.every == 0:
                self.lost.add(digest)
                list(self.app(environ, lambda *_: None))
                start_response(
                    "500 Internal Server Error",
                    [("Content-Type", "application/x-amz-json-1.0")],
                )
                return [LOST]
        return self.app(environ, start_response)


class RefuseSomeUpdates:
    """Answers 500, unapplied, every UpdateItem whose request contains `text`."""

    def __init__(self, app, text):
        self.app = app
        self.text = text.encode()

    def __call__(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "") == "DynamoDB_20120810.UpdateItem":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            if self.text in body:
                start_response(
                    "500 Internal Server Error",
                    [("Content-Type", "application/x-amz-json-1.0")],
                )
                return [REFUSED_UPDATE]
        return self.app(environ, start_response)


REFUSED_UPDATE = b"""{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error (injected, not applied)"}"""


DENIED = b"""{"__type":"com.amazon.coral.service#AccessDeniedException","message":"Access to the resource is denied (injected)"}"""


class RefuseSomeSends:
    """Refuses the first `count` SendMessageBatch requests to queues ending with `suffix`."""

    def __init__(self, app, suffix, count):
        self.app = app
        self.suffix = suffix
        self.left = count

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if self.left > 0 and target.endswith(".SendMessageBatch"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            try:
                queue_url = json.loads(body or b"{}").get("QueueUrl", "")
            except ValueError:
                queue_url = ""
            if queue_url.endswith(self.suffix):
                self.left -= 1
                start_response(
                    "400 Bad Request",
                    [
                        ("Content-Type", "application/x-amz-json-1.0"),
                        ("x-amzn-query-error", "AccessDenied;Sender"),
                    ],
                )
                return [DENIED]
        return self.app(environ, start_response)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    options = dict(zip(sys.argv[3::2], sys.argv[4::2]))
    if "--sns-throttle" in options:
        share, failures = options["--sns-throttle"].split(":")
        app = ThrottleSomePhones(app, float(share), int(failures))
    if "--sns-unsure" in options:
        app = PublishThenFail(app, options["--sns-unsure"])
    if "--sns-drop" in options:
        app = PublishThenFail(app, options["--sns-drop"], drop=True)
    if "--secrets-throttle" in options:
        app = ThrottleSecretReads(app, int(options["--secrets-throttle"]))
    if "--dynamodb-lose-answers" in options:
        app = LoseSomeAnswers(app, int(options["--dynamodb-lose-answers"]))
    if "--dynamodb-lose-put-answers" in options:
        app = LoseSomeAnswers(app, int(options["--dynamodb-lose-put-answers"]), "PutItem")
    if "--dynamodb-refuse-updates" in options:
        app = RefuseSomeUpdates(app, options["--dynamodb-refuse-updates"])
    if "--sqs-refuse-sends" in options:
        suffix, count = options["--sqs-refuse-sends"].rsplit(":", 1)
        app = RefuseSomeSends(app, suffix, int(count))
    run_simple(host, port, OneAtATime(CountRequests(app)), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
