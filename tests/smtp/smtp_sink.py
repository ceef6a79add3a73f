#!/usr/bin/env python3
"""A real SMTP server on loopback for handoff's digest tests.

aiosmtpd (installed into .venv-conformance by scripts/setup-conformance)
with STARTTLS or implicit TLS and AUTH. Every message it accepts becomes one
JSON line in --out: envelope, headers, and the decoded plain-text and HTML
parts. While the file --fail-file holds a number N > 0, the next N
deliveries are answered "451 4.3.0" (and N counts down), so a test can force
a retry. Prints "READY <port>" on stdout once it accepts connections, and
serves until its standard input closes.
"""

import argparse
import email
import email.policy
import json
import os
import socket
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--mode", choices=["starttls", "implicit"], default="starttls")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--fail-file", required=True)
    a = p.parse_args()

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)

    def fail_next():
        try:
            with open(a.fail_file) as f:
                n = int(f.read().strip() or "0")
        except (FileNotFoundError, ValueError):
            return False
        if n <= 0:
            return False
        with open(a.fail_file, "w") as f:
            f.write(str(n - 1))
        return True

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            if fail_next():
                return "451 4.3.0 Try again later (test fault)"
            msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
            plain = msg.get_body(("plain",))
            html = msg.get_body(("html",))
            rec = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "subject": str(msg["subject"]),
                "message_id": str(msg["message-id"]),
                "date": str(msg["date"]),
                "content_type": msg.get_content_type(),
                "text": plain.get_content() if plain is not None else None,
                "html": html.get_content() if html is not None else None,
                "authenticated": bool(session.authenticated),
                "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            }
            with open(a.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            return "250 2.0.0 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.user
            and auth_data.password.decode() == a.password
        )
        return AuthResult(success=ok)

    port = free_port()
    # With implicit TLS every byte is already encrypted; aiosmtpd only
    # counts a STARTTLS upgrade as TLS for AUTH, so it is told not to ask.
    common = dict(
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=a.mode == "starttls",
        server_hostname="localhost",
    )
    if a.mode == "starttls":
        controller = Controller(Sink(), tls_context=ctx, require_starttls=True, **common)
    else:
        controller = Controller(Sink(), ssl_context=ctx, **common)
    controller.start()
    print(f"READY {port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
