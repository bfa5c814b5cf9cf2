"""
tests/integration/replica/s3_fake.py — a hostile S3 server for the replica
tests: a small file-backed S3 (path-style; HEAD of the bucket, GET, PUT,
DELETE, ListObjectsV2; signatures not checked) that misbehaves on demand
(FakeS3.mode).  A test fixture for what the real server (tools/s3-test-server)
cannot be made to do; the replica's own behaviour is tested against that.

Modes: "ok"; "bomb" (every GET answers 400 with an error document whose
Code is an internal entity referenced many times); "same-token" (every
listing page truncated, always the same NextContinuationToken);
"lost-token" (pages asked with a token truncated without a new one);
"repeat" (every page the same keys, a new token each time); "big" (rows,
snapshots/*, answered with a 64 MiB body); "stall" (objects answered with
headers and 10 bytes, then nothing); "trickle" (objects sent at 2 KiB/s);
"stall-put" (a PUT but a lock's read, never answered); "blackhole" (every
request read, never answered; FakeS3.unhold set closes their
connections).  A held request sets FakeS3.held and is
listed in FakeS3.held_paths (method and path); FakeS3.puts lists the keys
of every PUT.
"""

import http.server
import os
import socketserver
import threading
import urllib.parse

BUCKET = "bkt"
BIG = 64 << 20


def bomb():
    ent = "A" * 1000
    return ('<?xml version="1.0"?>\n<!DOCTYPE Error [<!ENTITY b "%s">]>\n'
            '<Error><Code>%s</Code><Message>m</Message></Error>'
            % (ent, "&b;" * 100)).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body=b"", ctype="application/xml"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def split(self):
        u = urllib.parse.urlsplit(self.path)
        parts = u.path.lstrip("/").split("/", 1)
        key = urllib.parse.unquote(parts[1]) if len(parts) > 1 else ""
        return key, urllib.parse.parse_qs(u.query)

    def hold(self):
        """Never answer (until the fake stops, or FakeS3.unhold is set:
        then the connection closes without an answer)."""
        with self.server.fake.lock:
            self.server.fake.held_paths.append(self.command + " " +
                                               self.path)
        self.server.fake.held.set()
        self.server.fake.unhold.wait()
        self.close_connection = True

    def body(self):
        n = int(self.headers.get("Content-Length", 0) or 0)
        return self.rfile.read(n) if n else b""

    def do_HEAD(self):
        if self.server.fake.mode == "blackhole":
            return self.hold()
        self.send(200)

    def do_GET(self):
        fake = self.server.fake
        key, q = self.split()
        if fake.mode == "blackhole":
            return self.hold()
        if fake.mode == "bomb":
            return self.send(400, bomb())
        if not key:
            return self.listing(q)
        if fake.mode == "stall":
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            return self.hold()
        if fake.mode == "trickle":
            return self.trickle()
        if fake.mode == "big" and "/snapshots/" in "/" + key:
            return self.big()
        if (fake.mode == "503-packs" and "/packs/" in "/" + key and
                not key.endswith(".idx")):
            return self.send(503, b"<Error><Code>ServiceUnavailable</Code>"
                             b"</Error>")
        if fake.mode == "503-index" and "/index/" in "/" + key:
            return self.send(503, b"<Error><Code>SlowDown</Code></Error>")
        if fake.mode == "503-rows" and "/snapshots/" in "/" + key:
            return self.send(503, b"<Error><Code>ServiceUnavailable</Code>"
                             b"<Message>Please reduce your request rate."
                             b"</Message></Error>")
        path = os.path.join(fake.root, key)
        if not os.path.isfile(path):
            return self.send(404, b"<Error><Code>NoSuchKey</Code></Error>")
        with open(path, "rb") as f:
            self.send(200, f.read(), "application/octet-stream")

    def trickle(self):
        """An object at 2 KiB/s: above the client's floor of 1 KiB/s, far
        below what its deadline allows; until the client gives up."""
        self.send_response(200)
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        try:
            while not self.server.fake.stopping.wait(0.25):  # the pace
                self.wfile.write(b"x" * 512)
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def big(self):
        """A 64 MiB row; whether it was all sent is recorded."""
        fake = self.server.fake
        with fake.lock:
            fake.big_asked += 1
            if fake.big_asked >= 2:
                fake.second.set()
        fake.second.wait(30)   # a prefetch is in flight with this one
        self.send_response(200)
        self.send_header("Content-Length", str(BIG))
        self.end_headers()
        chunk = b"\0" * (1 << 20)
        try:
            for _ in range(BIG >> 20):
                self.wfile.write(chunk)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return
        with fake.lock:
            fake.big_whole += 1

    def listing(self, q):
        fake = self.server.fake
        prefix = q.get("prefix", [""])[0]
        token = q.get("continuation-token", [None])[0]
        keys = []
        d = os.path.join(fake.root, prefix)
        if os.path.isdir(d):
            keys = sorted(prefix + n for n in os.listdir(d)
                          if os.path.isfile(os.path.join(d, n)))
        truncated, nxt = "false", None
        if token and fake.mode in ("same-token", "lost-token"):
            keys = []     # what goes round is the token, not the keys
        if fake.mode == "same-token":
            truncated, nxt = "true", "same"
        elif fake.mode == "lost-token":
            truncated, nxt = "true", (None if token else "T1")
        elif fake.mode == "repeat":
            fake.pages += 1
            truncated, nxt = "true", "T%d" % fake.pages
        out = ["<?xml version=\"1.0\"?><ListBucketResult>",
               "<IsTruncated>%s</IsTruncated>" % truncated]
        if nxt:
            out.append("<NextContinuationToken>%s</NextContinuationToken>"
                       % nxt)
        for k in keys:
            size = os.path.getsize(os.path.join(fake.root, k))
            out.append("<Contents><Key>%s</Key><Size>%d</Size></Contents>"
                       % (k, size))
        out.append("</ListBucketResult>")
        self.send(200, "".join(out).encode())

    def do_PUT(self):
        fake = self.server.fake
        if fake.mode == "blackhole":
            return self.hold()
        key, _ = self.split()
        data = self.body()
        with fake.lock:
            fake.puts.append(key)
        if fake.mode == "stall-put" and "/locks/" not in "/" + key:
            return self.hold()
        path = os.path.join(fake.root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        self.send(200)

    def do_DELETE(self):
        fake = self.server.fake
        if fake.mode == "blackhole":
            return self.hold()
        key, _ = self.split()
        try:
            os.unlink(os.path.join(fake.root, key))
        except FileNotFoundError:
            pass
        self.send(204)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class FakeS3:
    """The server on 127.0.0.1, objects under root; stop() when done."""

    def __init__(self, root):
        self.root = root
        self.mode = "ok"
        self.lock = threading.Lock()
        self.held = threading.Event()
        self.stopping = threading.Event()
        self.unhold = threading.Event()
        self.second = threading.Event()
        self.big_asked = 0
        self.big_whole = 0
        self.pages = 0
        self.puts = []
        self.held_paths = []
        self.srv = Server(("127.0.0.1", 0), Handler)
        self.srv.fake = self
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       daemon=True)
        self.thread.start()

    def env(self, base):
        e = dict(base)
        e.update({"AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % self.port,
                  "AWS_ACCESS_KEY_ID": "fake", "AWS_SECRET_ACCESS_KEY":
                  "fake", "AWS_REGION": "us-east-1"})
        return e

    def url(self, prefix="p"):
        return "s3://%s/%s" % (BUCKET, prefix)

    def stop(self):
        self.stopping.set()
        self.unhold.set()
        self.second.set()
        self.srv.shutdown()
        self.srv.server_close()
