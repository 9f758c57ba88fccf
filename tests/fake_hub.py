"""A local stand-in for the Hugging Face hub (the lab and the tests have no hub).

Serves ``/api/models/<owner>/<name>/revision/<rev>`` (commit, files with sizes and LFS
SHA-256) and ``/<owner>/<name>/resolve/<commit>/<path>`` with HTTP Range, from directories
on disk. ``/resolve/`` answers with a redirect to the second listening address ("the CDN",
another host name) so that tests see what a redirect carries. Every request's path and
Authorization header is recorded.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
import urllib.parse


class FakeHub:
    def __init__(self, repos, commit="c" * 40, token=None):
        """``repos``: repo id -> directory. ``token``: required when given (else 401)."""
        self.repos = repos
        self.commit = commit
        self.token = token
        self.requests = []
        self.cut_after = None  # bytes after which a download is cut (one time)
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hub.requests.append((self.headers.get("Host"), self.path,
                                     self.headers.get("Authorization")))
                hub.handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.cdn = "http://localhost:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _send(self, handler, code, body=b"", headers=None):
        handler.send_response(code)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def handle(self, handler):
        path = urllib.parse.urlsplit(handler.path).path
        parts = path.strip("/").split("/")
        cdn = handler.headers.get("Host", "").startswith("localhost")
        if not cdn and self.token and handler.headers.get("Authorization") != "Bearer " + self.token:
            return self._send(handler, 401, b"{}")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "revision":
            repo = "/".join(parts[2:4])
            if repo not in self.repos:
                return self._send(handler, 404, b"{}")
            siblings = []
            for root, dummy, names in os.walk(self.repos[repo]):
                for name in sorted(names):
                    full = os.path.join(root, name)
                    rel = os.path.relpath(full, self.repos[repo])
                    with open(full, "rb") as f:
                        digest = hashlib.sha256(f.read()).hexdigest()
                    entry = {"rfilename": rel, "size": os.path.getsize(full), "blobId": digest[:40]}
                    if rel.endswith(".safetensors"):
                        entry["lfs"] = {"sha256": digest, "size": os.path.getsize(full)}
                    siblings.append(entry)
            body = json.dumps({"sha": self.commit, "siblings": siblings}).encode()
            return self._send(handler, 200, body, {"Content-Type": "application/json"})
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, rel = "/".join(parts[:2]), urllib.parse.unquote("/".join(parts[4:]))
            if not cdn:
                return self._send(handler, 302, b"", {"Location": self.cdn + handler.path})
            full = os.path.join(self.repos.get(repo, "/nonexistent"), rel)
            if parts[3] != self.commit or not os.path.isfile(full):
                return self._send(handler, 404)
            with open(full, "rb") as f:
                data = f.read()
            start = 0
            rng = handler.headers.get("Range")
            if rng:
                start = int(rng.split("=")[1].split("-")[0])
            body = data[start:]
            if self.cut_after is not None:
                body, self.cut_after = body[:self.cut_after], None
                handler.send_response(206 if rng else 200)
                handler.send_header("Content-Length", str(len(data) - start))
                handler.end_headers()
                handler.wfile.write(body)
                handler.close_connection = True
                return None
            return self._send(handler, 206 if rng else 200, body)
        return self._send(handler, 404)
