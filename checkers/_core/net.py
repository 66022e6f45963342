"""Reaching what a container publishes: host ports, the engine's host, one HTTP GET.

Shared by lab checkers that talk to a student's server over a published port
(``docker run -p HOST:CONTAINER``) and by solutions that need a free host port.
"""

from __future__ import annotations

import http.client
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from checkers._core.context import SolveError

if TYPE_CHECKING:
    from docker.models.containers import Container

    from kernel_helpers.engine import Engine


def published_port(container: Container, port: int) -> tuple[str, int] | None:
    """``docker port NAME PORT``: (host ip, host port) of the first binding, or None."""
    bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(f"{port}/tcp")
    for binding in bindings or []:
        if binding.get("HostPort"):
            return binding.get("HostIp") or "", int(binding["HostPort"])
    return None


def engine_host(engine: Engine, bound_ip: str) -> str:
    """Where a published port can be reached from here: the engine's host for a TCP engine."""
    if engine.endpoint.url.startswith(("tcp://", "ssh://")):
        return urlparse(engine.endpoint.url).hostname or "127.0.0.1"
    return bound_ip if bound_ip and bound_ip not in ("0.0.0.0", "::") else "127.0.0.1"


def http_get(host: str, port: int, path: str = "/", timeout: float = 3.0,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """One GET; (status, headers, body). Status 0 means no answer (the body says why)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    except OSError as exc:
        return 0, {}, f"no answer ({exc})"
    finally:
        connection.close()


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens on it at 127.0.0.1, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return int(probe.getsockname()[1])
            except OSError:
                continue
    raise SolveError("no free host port on 127.0.0.1")
