#!/usr/bin/env python3
"""Starts every proxy configuration under tests/proxies/ with the installed nginx and HAProxy
in front of small stub servers, and checks that each one proxies as the end-to-end tests
expect: the configurations are valid, the proxies start without root paths, and what reaches
the backend is right (TLS with the expected SNI, the PROXY header with the client's address,
XCLIENT with the client's address or no XCLIENT).

    scripts/ensure-proxies.sh && python3 scripts/proxy_smoke.py

Loopback only. Prints `N passed, M failed` last; exits non-zero on any failure. Also shows
how a test renders a template (plain @PLACEHOLDER@ replacement) and starts each proxy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROXIES = os.path.join(ROOT, "tests", "proxies")
MODULE_DIR = os.environ.get("NGINX_MODULE_DIR", "/usr/lib/nginx/modules")
SNI = "notify-smtp.apps.example.test"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(name: str, tmp: str, values: dict[str, str], out_name: str) -> str:
    text = open(os.path.join(PROXIES, name), encoding="utf-8").read()
    for key, value in {"TMP": tmp, "MODULE_DIR": MODULE_DIR, **values}.items():
        text = text.replace(f"@{key}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise RuntimeError(f"{name}: placeholders left: {sorted(set(left))}")
    path = os.path.join(tmp, out_name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def wait_listening(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} not listening on {port} within {TIMEOUT}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Stub:
    """A one-thread SMTP-ish server on 127.0.0.1 that records what it received.

    mode "tls": implicit TLS, records the SNI; "proxy": reads a PROXY header first (v1 line or
    v2 by its length) and records its bytes; "smtp": plain SMTP that understands XCLIENT.
    """

    def __init__(self, mode: str, certdir: str | None = None) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.sni: list[str | None] = []
        self.headers: list[bytes] = []
        self.commands: list[str] = []
        self.messages: list[str] = []
        self.ctx = None
        if mode == "tls" and certdir:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(f"{certdir}/tls.crt", f"{certdir}/tls.key")
            self.ctx.sni_callback = lambda _s, name, _c: self.sni.append(name)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        try:
            if self.mode == "tls":
                conn = self.ctx.wrap_socket(conn, server_side=True)
            if self.mode == "proxy":
                self.headers.append(self.read_proxy_header(conn))
            self.smtp(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    @staticmethod
    def read_exact(conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise OSError("closed")
            buf += chunk
        return buf

    def read_proxy_header(self, conn: socket.socket) -> bytes:
        head = self.read_exact(conn, 16)
        if head.startswith(V2_SIGNATURE):
            return head + self.read_exact(conn, int.from_bytes(head[14:16], "big"))
        while not head.endswith(b"\r\n"):
            head += self.read_exact(conn, 1)
        return head

    def smtp(self, conn: socket.socket) -> None:
        f = conn.makefile("rwb")

        def reply(text: str) -> None:
            f.write(text.encode() + b"\r\n")
            f.flush()

        reply("220 stub.example.test ESMTP")
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            self.commands.append(cmd)
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                reply("250-stub.example.test\r\n250-XCLIENT ADDR NAME PROTO HELO LOGIN\r\n"
                      "250 8BITMIME")
            elif verb == "XCLIENT":
                reply("220 stub.example.test ESMTP")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                reply("250 2.0.0 OK")
            elif verb == "DATA":
                reply("354 go ahead")
                body = []
                while True:
                    data = f.readline()
                    if not data or data == b".\r\n":
                        break
                    body.append(data.decode("utf-8", "replace"))
                self.messages.append("".join(body))
                reply("250 2.0.0 queued")
            elif verb == "QUIT":
                reply("221 2.0.0 bye")
                return
            else:
                reply("502 5.5.2 unknown")

    def close(self) -> None:
        self.sock.close()


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, ok: bool, what: str, detail: str = "") -> None:
        if ok:
            self.passed += 1
            print(f"ok    {what}")
        else:
            self.failed += 1
            print(f"FAIL  {what}" + (f": {detail}" if detail else ""))

    def case(self, what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - reported as a failure of the case
            self.check(False, what, f"{type(e).__name__}: {e}")


def read_reply(f) -> str:
    lines = []
    while True:
        line = f.readline().decode()
        if not line:
            break
        lines.append(line.rstrip("\r\n"))
        if len(line) < 4 or line[3] != "-":
            break
    return "\n".join(lines)


def plain_smtp_hello(port: int) -> tuple[str, str, int]:
    """Greeting and EHLO reply through a plain TCP connection; returns the client's port."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        f = s.makefile("rwb")
        greeting = read_reply(f)
        f.write(b"EHLO client.example.test\r\n")
        f.flush()
        ehlo = read_reply(f)
        f.write(b"QUIT\r\n")
        f.flush()
        read_reply(f)
        return greeting, ehlo, s.getsockname()[1]


def nginx_stream(c: Checks, tmp: str, certdir: str) -> None:
    stub = Stub("tls", certdir)
    listen = free_port()
    conf = render("nginx-stream-tls.conf", tmp,
                  {"LISTEN_PORT": str(listen), "BACKEND_PORT": str(stub.port), "SNI": SNI},
                  "nginx-stream.conf")
    test = subprocess.run(["nginx", "-p", tmp, "-e", f"{tmp}/error.log", "-t", "-c", conf],
                          capture_output=True, text=True)
    c.check(test.returncode == 0, "(a) nginx -t accepts nginx-stream-tls.conf", test.stderr)
    proc = subprocess.Popen(["nginx", "-p", tmp, "-e", f"{tmp}/error.log", "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(listen, proc, "nginx (stream)")
        greeting, ehlo, _ = plain_smtp_hello(listen)
        c.check(greeting.startswith("220 stub"), "(a) plain client gets the TLS backend's greeting",
                greeting)
        c.check("250" in ehlo, "(a) EHLO relayed over nginx's TLS connection", ehlo)
        # wait_listening's probe connection went through too: every handshake must carry it.
        c.check(bool(stub.sni) and all(n == SNI for n in stub.sni),
                "(a) nginx sends the upstream name as SNI", str(stub.sni))
    finally:
        stop(proc)
        stub.close()


def haproxy_sni(c: Checks, tmp: str, certdir: str) -> None:
    stub = Stub("tls", certdir)
    listen = free_port()
    cfg = render("haproxy-sni-passthrough.cfg", tmp,
                 {"LISTEN_PORT": str(listen), "BACKEND_PORT": str(stub.port), "SNI": SNI},
                 "haproxy-sni.cfg")
    test = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True)
    c.check(test.returncode == 0, "(b) haproxy -c accepts haproxy-sni-passthrough.cfg",
            test.stdout + test.stderr)
    proc = subprocess.Popen(["haproxy", "-db", "-f", cfg],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(listen, proc, "haproxy (sni)")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", listen), timeout=TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname=SNI) as s:
                greeting = read_reply(s.makefile("rwb"))
        c.check(greeting.startswith("220 stub"),
                "(b) TLS client with the Route host as SNI reaches the backend", greeting)
        c.check(stub.sni == [SNI], "(b) the backend terminates TLS and sees the SNI",
                str(stub.sni))
        refused = False
        try:
            with socket.create_connection(("127.0.0.1", listen), timeout=TIMEOUT) as raw:
                with ctx.wrap_socket(raw, server_hostname="other.example.test") as s:
                    refused = s.recv(100) == b""
        except (OSError, ssl.SSLError):
            refused = True
        c.check(refused and stub.sni == [SNI], "(b) another SNI reaches no backend")
    finally:
        stop(proc)
        stub.close()


def haproxy_send_proxy(c: Checks, tmp: str, version: int) -> None:
    stub = Stub("proxy")
    listen = free_port()
    name = f"haproxy-send-proxy-v{version}.cfg"
    cfg = render(name, tmp, {"LISTEN_PORT": str(listen), "BACKEND_PORT": str(stub.port)},
                 f"haproxy-pp{version}.cfg")
    test = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True)
    c.check(test.returncode == 0, f"(c) haproxy -c accepts {name}", test.stdout + test.stderr)
    proc = subprocess.Popen(["haproxy", "-db", "-f", cfg],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(listen, proc, f"haproxy ({name})")
        greeting, _, client_port = plain_smtp_hello(listen)
        c.check(greeting.startswith("220 stub"), f"(c) v{version}: greeting relayed", greeting)
        # wait_listening's probe connection also went through HAProxy, in any order: look
        # for the header of this client's connection.
        def matches(header: bytes) -> bool:
            if version == 1:
                m = re.fullmatch(rb"PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 (\d+) (\d+)\r\n", header)
                return bool(m) and int(m.group(1)) == client_port and int(m.group(2)) == listen
            return (header.startswith(V2_SIGNATURE) and header[12] == 0x21
                    and header[13] == 0x11 and header[16:20] == bytes([127, 0, 0, 1])
                    and int.from_bytes(header[24:26], "big") == client_port
                    and int.from_bytes(header[26:28], "big") == listen)

        found = [h for h in stub.headers if matches(h)]
        c.check(len(found) == 1,
                f"(c) v{version}: PROXY header carries the client's address and port",
                repr(stub.headers))
        header = found[0] if found else b""
        with open(os.path.join(tmp, f"proxy-v{version}-header.bin"), "wb") as f:
            f.write(header)
    finally:
        stop(proc)
        stub.close()


def nginx_mail(c: Checks, tmp: str, xclient: str) -> None:
    stub = Stub("smtp")
    auth_port = free_port()
    auth_log = os.path.join(tmp, f"auth-{xclient}.jsonl")
    auth = subprocess.Popen(
        [sys.executable, os.path.join(PROXIES, "mail-auth.py"), str(auth_port), str(stub.port),
         "--log", auth_log], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    listen = free_port()
    conf = render("nginx-mail-smtp.conf", tmp,
                  {"LISTEN_PORT": str(listen), "AUTH_PORT": str(auth_port), "XCLIENT": xclient,
                   "SERVER_NAME": "relay.example.test"}, f"nginx-mail-{xclient}.conf")
    test = subprocess.run(["nginx", "-p", tmp, "-e", f"{tmp}/error.log", "-t", "-c", conf],
                          capture_output=True, text=True)
    c.check(test.returncode == 0, f"(d) nginx -t accepts nginx-mail-smtp.conf (xclient {xclient})",
            test.stderr)
    proc = subprocess.Popen(["nginx", "-p", tmp, "-e", f"{tmp}/error.log", "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        line = auth.stdout.readline() if auth.stdout else ""
        c.check(line.startswith("listening on"), "(d) auth_http responder started", line)
        wait_listening(listen, proc, "nginx (mail)")
        msg = EmailMessage()
        msg["From"] = "MAILER-DAEMON@sender.example.test"
        msg["To"] = "bn-sub1-12345@notify.example.test"
        msg["Subject"] = "Undelivered Mail Returned to Sender"
        msg.set_content("smoke body line\n")
        with smtplib.SMTP("127.0.0.1", listen, local_hostname="client.example.test",
                          timeout=TIMEOUT) as smtp:
            refused = smtp.sendmail("", ["bn-sub1-12345@notify.example.test"], msg.as_bytes())
        c.check(refused == {}, f"(d) xclient {xclient}: message accepted through nginx")
        xcl = [cmd for cmd in stub.commands if cmd.upper().startswith("XCLIENT")]
        if xclient == "on":
            c.check(len(xcl) == 1 and re.fullmatch(
                r"XCLIENT ADDR=127\.0\.0\.1 NAME=\[UNAVAILABLE\]", xcl[0]) is not None,
                "(d) xclient on: backend gets XCLIENT ADDR=<client> NAME=[UNAVAILABLE]",
                str(stub.commands))
            after = stub.commands[stub.commands.index(xcl[0]) + 1:] if xcl else []
            c.check(bool(after) and after[0] == "EHLO client.example.test",
                    "(d) xclient on: then the client's own EHLO", str(after[:1]))
        else:
            c.check(not xcl, "(d) xclient off: no XCLIENT reaches the backend",
                    str(stub.commands))
            c.check(bool(stub.commands) and stub.commands[0] == "EHLO relay.example.test",
                    "(d) xclient off: backend sees nginx's own EHLO", str(stub.commands[:1]))
        # nginx replays the client's MAIL and RCPT lines verbatim (smtplib writes the verbs in
        # lower case), so the backend must take verbs in any case, as RFC 5321 says.
        upper = [cmd.upper() for cmd in stub.commands]
        c.check("MAIL FROM:<>" in upper and
                "RCPT TO:<BN-SUB1-12345@NOTIFY.EXAMPLE.TEST>" in upper,
                f"(d) xclient {xclient}: null sender and recipient replayed to the backend",
                str(stub.commands))
        c.check(len(stub.messages) == 1 and "smoke body line" in stub.messages[0],
                f"(d) xclient {xclient}: message body relayed", str(stub.messages))
        with open(auth_log, encoding="utf-8") as f:
            requests = [json.loads(l) for l in f if l.strip()]
        c.check(len(requests) == 1 and requests[0].get("Auth-SMTP-To", "").upper() ==
                "RCPT TO:<BN-SUB1-12345@NOTIFY.EXAMPLE.TEST>" and
                requests[0].get("Client-IP") == "127.0.0.1",
                f"(d) xclient {xclient}: nginx asked auth_http with the envelope", str(requests))
        with open(os.path.join(tmp, f"xclient-{xclient}-commands.txt"), "w") as f:
            f.write("\n".join(stub.commands) + "\n")
    finally:
        stop(proc)
        stop(auth)
        stub.close()


def main() -> int:
    c = Checks()
    for tool in ("nginx", "haproxy", "openssl"):
        if shutil.which(tool) is None:
            print(f"FAIL  {tool} not installed: run scripts/ensure-proxies.sh")
            print("0 passed, 1 failed")
            return 1
    keep = os.environ.get("PROXY_SMOKE_KEEP")
    tmp = tempfile.mkdtemp(prefix="proxy-smoke-")
    try:
        certdir = os.path.join(tmp, "cert")
        os.mkdir(certdir)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", f"/CN={SNI}", "-keyout", f"{certdir}/tls.key",
                        "-out", f"{certdir}/tls.crt"], check=True, capture_output=True)
        c.case("(a) nginx stream + proxy_ssl", lambda: nginx_stream(c, tmp, certdir))
        c.case("(b) haproxy SNI passthrough", lambda: haproxy_sni(c, tmp, certdir))
        c.case("(c) haproxy send-proxy", lambda: haproxy_send_proxy(c, tmp, 1))
        c.case("(c) haproxy send-proxy-v2", lambda: haproxy_send_proxy(c, tmp, 2))
        c.case("(d) nginx mail xclient off", lambda: nginx_mail(c, tmp, "off"))
        c.case("(d) nginx mail xclient on", lambda: nginx_mail(c, tmp, "on"))
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed or not c.passed else 0


if __name__ == "__main__":
    sys.exit(main())
