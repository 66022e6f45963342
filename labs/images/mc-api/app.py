"""Lab 04's API: counts visits in redis and says which container answered.

Standard library only. It speaks just enough of redis's wire protocol (RESP) to
send one command and read one reply, so the image needs nothing beyond python3.

GET /api/visits   add one to the counter 'visits' in redis; answer {"visits": N, "served_by": HOST}
GET /api/whoami   {"served_by": HOST}, without touching the database
GET /health       200 when redis answers PING, 503 otherwise

`python3 app.py health` asks a running API for /health and exits 0 or 1: a healthcheck.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REDIS_HOST = os.environ.get("REDIS_HOST", "db")
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6379"))
PORT = int(os.environ.get("PORT", "8000"))
HOSTNAME = socket.gethostname()


class RedisError(RuntimeError):
    """The database did not answer, or answered with an error."""


def redis(*words: str) -> str:
    """Send one command to redis and return its reply as text (`redis-cli WORDS...`)."""
    request = f"*{len(words)}\r\n" + "".join(
        f"${len(w.encode())}\r\n{w}\r\n" for w in words
    )
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2) as conn:
            conn.sendall(request.encode())
            reply = conn.makefile("rb").readline().decode().rstrip("\r\n")
    except OSError as exc:
        raise RedisError(f"cannot reach redis at {REDIS_HOST}:{REDIS_PORT}: {exc}") from exc
    if not reply or reply[0] == "-":
        raise RedisError(f"redis answered {reply!r}")
    return reply[1:]


class Handler(BaseHTTPRequestHandler):
    server_version = "dockyard-api/1"

    def answer(self, status: int, body: dict) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # the method name http.server calls
        try:
            if self.path == "/api/visits":
                self.answer(200, {"visits": int(redis("INCR", "visits")), "served_by": HOSTNAME})
            elif self.path == "/api/whoami":
                self.answer(200, {"served_by": HOSTNAME})
            elif self.path == "/health":
                self.answer(200, {"status": "ok", "redis": redis("PING")})
            else:
                self.answer(404, {"error": f"no route {self.path}"})
        except RedisError as exc:
            self.answer(503, {"error": str(exc), "served_by": HOSTNAME})


def health() -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=2) as reply:
            return 0 if reply.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    if sys.argv[1:] == ["health"]:
        sys.exit(health())
    print(f"API {HOSTNAME} listening on :{PORT}, database {REDIS_HOST}:{REDIS_PORT}")
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
