"""A real SMTP server on loopback that records what it receives.

Each accepted message is written to OUT/<n>.json as {"mailFrom", "rcptTos", "data"}.
Senders matching --reject-sender get 530 5.7.0 to MAIL FROM (a relay that wants a login
the mailbox does not make); senders matching --refuse-sender get 553 5.7.1 (a sender the
relay may not send as, as an SPF or DMARC policy answers). Recipients matching --reject get a permanent 550,
those matching --tempfail a
transient 451, and --tempfail-rate defers that share of all other recipients at random,
so tests can drive both kinds of failure through a real SMTP exchange.
With --starttls DIR it requires STARTTLS, with a certificate for 127.0.0.1 issued by a
throwaway CA whose certificate it writes to DIR/ca.pem (--tls DIR: the same, but TLS from
the first byte, as on port 465); with --auth USER:PASSWORD it
also requires that login (over TLS), refusing any other with 535. With --stall-on-bad-login
it answers a refused login with silence instead, as some servers do, so a client's
timeouts can be tested.
Recipients matching --late-ack are stored, then acknowledged only after --late-ack-seconds
(content scanning does this; RFC 1047; they are never deferred by --tempfail-rate),
and for those matching --drop-after-dot the
message is stored and the connection closed with no reply: both leave the client unsure
whether the mail went out. --seed makes the --tempfail-rate draws repeatable (printed).
Runs until SIGTERM or SIGINT.
"""

import argparse
import itertools
import json
import os
import random
import re
import asyncio
import signal
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:
    def __init__(self, out, reject, tempfail, tempfail_rate=0.0, late_ack="",
                 late_ack_seconds=0.0, drop_after_dot="", seed=None, reject_sender="",
                 refuse_sender=""):
        self.out = out
        self.tempfail_rate = tempfail_rate
        self.random = random.Random(seed)
        self.late_ack = re.compile(late_ack) if late_ack else None
        self.late_ack_seconds = late_ack_seconds
        self.drop_after_dot = re.compile(drop_after_dot) if drop_after_dot else None
        self.reject = re.compile(reject) if reject else None
        self.reject_sender = re.compile(reject_sender) if reject_sender else None
        self.refuse_sender = re.compile(refuse_sender) if refuse_sender else None
        self.tempfail = re.compile(tempfail) if tempfail else None
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.reject_sender and self.reject_sender.search(address):
            return "530 5.7.0 Authentication required"
        if self.refuse_sender and self.refuse_sender.search(address):
            return "553 5.7.1 Sender address rejected: not owned by this account"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject and self.reject.search(address):
            return f"550 5.1.1 <{address}>: Recipient address rejected: mailbox unavailable"
        if self.tempfail and self.tempfail.search(address):
            return "451 4.3.0 Temporary failure, try again later"
        # A late acknowledgement is what these recipients are for: never deferred.
        late = self.late_ack and self.late_ack.search(address)
        if self.tempfail_rate and not late and self.random.random() < self.tempfail_rate:
            return "451 4.3.0 Temporary failure, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            number = next(self.counter)
        record = {
            "mailFrom": envelope.mail_from,
            "rcptTos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", errors="replace"),
        }
        # Write then rename, so a reader never sees half a file.
        partial = os.path.join(self.out, f".{number:06d}.json.partial")
        with open(partial, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.replace(partial, os.path.join(self.out, f"{number:06d}.json"))
        recipients = " ".join(envelope.rcpt_tos)
        if self.drop_after_dot and self.drop_after_dot.search(recipients):
            server.transport.abort()
            return "250 Message accepted for delivery"
        if self.late_ack and self.late_ack.search(recipients):
            await asyncio.sleep(self.late_ack_seconds)
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--reject", default="")
    parser.add_argument("--tempfail", default="")
    parser.add_argument("--reject-sender", default="", metavar="REGEX")
    parser.add_argument("--refuse-sender", default="", metavar="REGEX")
    parser.add_argument("--starttls", default="", metavar="DIR")
    parser.add_argument("--tls", default="", metavar="DIR")
    parser.add_argument("--tempfail-rate", type=float, default=0.0, metavar="SHARE")
    parser.add_argument("--auth", default="", metavar="USER:PASSWORD")
    parser.add_argument("--stall-on-bad-login", action="store_true")
    parser.add_argument("--late-ack", default="", metavar="REGEX")
    parser.add_argument("--late-ack-seconds", type=float, default=0.0)
    parser.add_argument("--drop-after-dot", default="", metavar="REGEX")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    print(f"smtp recorder seed {args.seed}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    tls = {}
    if args.starttls or args.tls:
        import ssl

        import trustme

        authority = trustme.CA()
        authority.cert_pem.write_to_path(os.path.join(args.starttls or args.tls, "ca.pem"))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        if args.starttls:
            tls = {"tls_context": context, "require_starttls": True}
        else:
            tls = {"ssl_context": context}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            # handled=False has aiosmtpd reply 535 to a refused login; handled=True
            # means "already replied", so nothing is sent and the client waits.
            return AuthResult(success=ok, handled=ok or args.stall_on_bad_login)

        tls.update(authenticator=authenticator, auth_required=True)
    controller = Controller(
        Recorder(args.out, args.reject, args.tempfail, args.tempfail_rate,
                 args.late_ack, args.late_ack_seconds, args.drop_after_dot, args.seed,
                 args.reject_sender, args.refuse_sender),
        hostname="127.0.0.1",
        port=args.port,
        **tls,
    )
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"smtp recorder listening on 127.0.0.1:{args.port}", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
