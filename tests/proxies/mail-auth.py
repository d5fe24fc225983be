#!/usr/bin/env python3
"""The auth_http endpoint nginx's `mail` module asks before it proxies an SMTP session.

Answers every request with `Auth-Status: OK`, `Auth-Server: <host>` and `Auth-Port: <port>`
(the notify-inbound listener), and appends the request's headers (Auth-Method, Client-IP,
Auth-SMTP-Helo, Auth-SMTP-From, Auth-SMTP-To, ...) as one JSON object per line to LOG when
given, so a test can assert what nginx saw.

    tests/proxies/mail-auth.py LISTEN_PORT BACKEND_PORT [--backend-host 127.0.0.1] [--log FILE]

Prints `listening on 127.0.0.1:PORT` once ready; LISTEN_PORT 0 picks a free port.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(backend_host: str, backend_port: int, log: str | None):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if log:
                with open(log, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"path": self.path, **dict(self.headers.items())}) + "\n")
            self.send_response(200)
            self.send_header("Auth-Status", "OK")
            self.send_header("Auth-Server", backend_host)
            self.send_header("Auth-Port", str(backend_port))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, fmt: str, *args) -> None:
            sys.stderr.write("mail-auth: " + (fmt % args) + "\n")

    return Handler


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("listen_port", type=int)
    ap.add_argument("backend_port", type=int)
    ap.add_argument("--backend-host", default="127.0.0.1")
    ap.add_argument("--log")
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.listen_port),
                                 make_handler(args.backend_host, args.backend_port, args.log))
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
