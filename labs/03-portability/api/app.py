"""A tiny JSON API for lab 03: one image, configured differently per environment.

It uses only Python's standard library. Configuration comes from, in order:

* a JSON config file, if one exists at $CONFIG_FILE (default /etc/api/config.json);
* environment variables APP_ENV, GREETING and PORT, which win over the file.

GET / answers with the version baked into the image and the configuration it runs with.
"""

from __future__ import annotations

import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "1.0"


def load_config() -> dict[str, object]:
    config: dict[str, object] = {"env": "unset", "greeting": "Hello from the API", "port": 8000}
    path = os.environ.get("CONFIG_FILE", "/etc/api/config.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            config.update(json.load(handle))
        config["config_file"] = path
    for key, variable in (("env", "APP_ENV"), ("greeting", "GREETING"), ("port", "PORT")):
        if os.environ.get(variable):
            config[key] = os.environ[variable]
    return config


CONFIG = load_config()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the name http.server calls
        body = json.dumps({
            "service": "dy-port-api",
            "version": VERSION,
            "hostname": socket.gethostname(),
            **CONFIG,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(str(CONFIG["port"]))
    print(f"dy-port-api {VERSION} ({CONFIG['env']}) listening on :{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
