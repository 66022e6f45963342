"""The Docker backend: connecting, labelling, and removing only what the lab owns.

Checkers (``checkers/``) read live state through the client this module hands out;
the progress store (``kernel_helpers.progress``) remembers which resources a check
graded, and :func:`remove_owned` uses both to reset a lab without touching anything
a student made on their own. The ``docker`` SDK is imported lazily so that
``import kernel_helpers`` stays cheap on Binder, where there is no engine at all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

LAB_LABEL = "dockyard.lab"
EXERCISE_LABEL = "dockyard.exercise"
#: The pseudo-lab that owns images built by ``dockyard images build``; reset keeps them.
IMAGES_LAB = "_images"
DEFAULT_API_TIMEOUT = 15

START_DOCKER_HELP = (
    "Start Docker and try again: on macOS/Windows open Docker Desktop and wait until it says "
    "'Engine running'; on Linux run `sudo systemctl start docker` (or `sudo dockerd &`). "
    "`dockyard doctor` shows what Dockyard sees."
)


class EngineUnavailable(RuntimeError):
    """No Docker engine answered. The message says what was tried and how to fix it."""


@dataclass(frozen=True)
class Endpoint:
    """One place a Docker engine may listen, and why Dockyard tried it."""

    url: str
    source: str


def labels(lab: str, exercise: str = "") -> dict[str, str]:
    """The labels every lab-created resource carries (``docker run --label ...``)."""
    return {LAB_LABEL: lab, EXERCISE_LABEL: exercise or lab}


def _context_endpoint(name: str) -> Endpoint | None:
    """The engine address stored for a docker context (``docker context inspect NAME``).

    Read from the context's ``meta.json`` directly: the SDK's ``ContextAPI`` returns
    None for contexts the current docker CLI writes.
    """
    import hashlib
    import json

    config_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    digest = hashlib.sha256(name.encode()).hexdigest()
    try:
        meta = json.loads((config_dir / "contexts" / "meta" / digest / "meta.json").read_text())
        host = meta["Endpoints"]["docker"]["Host"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Endpoint(str(host), f"docker context '{name}'") if host else None


def candidate_endpoints() -> list[Endpoint]:
    """Where to look for the engine, in the order the docker CLI itself uses.

    ``DOCKER_HOST`` wins, then ``DOCKER_CONTEXT``, then the config's current context,
    then (for the default context) the usual sockets: Linux, Docker Desktop, rootless.
    """
    if os.environ.get("DOCKER_HOST"):
        return [Endpoint(os.environ["DOCKER_HOST"], "DOCKER_HOST")]
    found: list[Endpoint] = []
    context_name = current_context()
    if context_name != "default":
        # Like the docker CLI: a chosen context is the only place to look.
        endpoint = _context_endpoint(context_name)
        # An empty url stands for a context that names no engine; connect() says so.
        return [endpoint or Endpoint("", f"docker context '{context_name}'")]
    sockets = [
        Path("/var/run/docker.sock"),
        Path.home() / ".docker/run/docker.sock",
        Path.home() / ".docker/desktop/docker.sock",
        Path(os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")) / "docker.sock",
    ]
    for sock in sockets:
        found.append(Endpoint(f"unix://{sock}", "default socket"))
    if os.name == "nt":
        found.insert(0, Endpoint("npipe:////./pipe/docker_engine", "Docker Desktop pipe"))
    return found


@dataclass
class Engine:
    """A connected engine: the SDK client plus where it came from."""

    client: docker.DockerClient
    endpoint: Endpoint
    _info: dict[str, Any] = field(default_factory=dict, repr=False)

    def info(self) -> dict[str, Any]:
        """``docker info``, fetched once per connection."""
        if not self._info:
            self._info = self.client.info()
        return self._info

    def ping(self) -> bool:
        """``docker version`` in its cheapest form: one round trip to ``/_ping``."""
        return bool(self.client.ping())


_lock = threading.Lock()
_cached: Engine | None = None
_cached_for: tuple[str, str] = ("", "")


def connect(*, timeout: int = DEFAULT_API_TIMEOUT, fresh: bool = False) -> Engine:
    """Return a live engine, reusing the last one while it still answers ``ping``.

    Raises :class:`EngineUnavailable` naming every endpoint tried and why it failed.
    """
    global _cached, _cached_for
    # A changed DOCKER_HOST or DOCKER_CONTEXT means another engine: do not reuse the old one.
    wanted = (os.environ.get("DOCKER_HOST", ""), os.environ.get("DOCKER_CONTEXT", ""))
    with _lock:
        if _cached is not None and not fresh and wanted == _cached_for:
            # No ping here: a check's own calls fail fast if the engine went away, and
            # forget() then makes the next connect() look again.
            return _cached
        try:
            import docker
        except ImportError as exc:  # pragma: no cover - docker is a hard dependency
            raise EngineUnavailable(f"the docker SDK is not installed ({exc})") from exc
        tried: list[str] = []
        for endpoint in candidate_endpoints():
            if not endpoint.url:
                tried.append(f"{endpoint.source}: no such context, or it has no docker endpoint "
                             "(`docker context ls` lists them)")
                continue
            local_socket = endpoint.source == "default socket"
            if local_socket and not Path(endpoint.url[len("unix://") :]).exists():
                tried.append(f"{endpoint.url} ({endpoint.source}): no such socket")
                continue
            try:
                client = docker.DockerClient(base_url=endpoint.url, timeout=timeout)
                client.ping()
            except Exception as exc:
                tried.append(f"{endpoint.url} ({endpoint.source}): {_short(exc)}")
                continue
            _cached, _cached_for = Engine(client=client, endpoint=endpoint), wanted
            return _cached
        raise EngineUnavailable(
            "no Docker engine answered. Tried: " + "; ".join(tried) + ". " + START_DOCKER_HELP
        )


def forget() -> None:
    """Drop the cached connection (after the engine stopped answering)."""
    global _cached
    with _lock:
        _cached = None


def available() -> bool:
    """True when an engine answers; never raises."""
    try:
        connect()
        return True
    except EngineUnavailable:
        return False


def _short(exc: BaseException) -> str:
    """One readable line for a connection failure, instead of urllib3's nested reprs."""
    raw = str(exc)
    if "FileNotFoundError" in raw or "No such file" in raw:
        return "no such socket (nothing listens there)"
    if "Permission denied" in raw or "PermissionError" in raw:
        return "permission denied (add yourself to the 'docker' group, or use Docker Desktop)"
    if "Connection refused" in raw or "ConnectionRefusedError" in raw:
        return "connection refused (the engine is not running)"
    if "timed out" in raw.lower():
        return "timed out (the engine did not answer)"
    text = raw.strip().splitlines()[0] if raw.strip() else type(exc).__name__
    return text[:200]


def current_context() -> str:
    """The docker context the CLI would use (``docker context show``)."""
    if os.environ.get("DOCKER_CONTEXT"):
        return os.environ["DOCKER_CONTEXT"]
    from docker.context.config import get_current_context_name

    return get_current_context_name() or "default"


def is_engine_fault(exc: BaseException) -> bool:
    """Whether ``exc`` means the engine went away (as opposed to a missing resource)."""
    import requests

    if isinstance(exc, EngineUnavailable | requests.exceptions.ConnectionError):
        return True
    if isinstance(exc, requests.exceptions.Timeout):
        return True
    from docker.errors import DockerException, NotFound

    return isinstance(exc, DockerException) and not isinstance(exc, NotFound) and (
        "Connection aborted" in str(exc) or "connection refused" in str(exc).lower()
    )


def parse_time(stamp: str) -> datetime:
    """Parse the engine's RFC 3339 nanosecond timestamps (``2024-01-02T03:04:05.123456789Z``)."""
    stamp = stamp.rstrip("Z")
    main, _, frac = stamp.partition(".")
    offset = ""
    for sign in ("+", "-"):
        if sign in frac:
            frac, _, offset = frac.partition(sign)
            offset = sign + offset
    if not frac:
        frac = "0"
    when = datetime.fromisoformat(f"{main}.{frac[:6].ljust(6, '0')}{offset}")
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def parse_time_ns(event: dict[str, Any]) -> datetime:
    """When an engine event happened (its ``timeNano`` field)."""
    return datetime.fromtimestamp(int(event.get("timeNano", 0)) / 1e9, tz=timezone.utc)


def find_container(engine: Engine, name: str) -> Container | None:
    """``docker inspect NAME`` for a container, or None when there is none by that name."""
    from docker.errors import NotFound

    try:
        container = engine.client.containers.get(name)
    except NotFound:
        return None
    # `get` also matches id prefixes; a student's name must match exactly.
    return container if container.name == name.lstrip("/") else None


def container_created(container: Container) -> datetime:
    return parse_time(container.attrs["Created"])


@dataclass
class Owned:
    """A resource a check graded: kind (container/volume/network/image) and full id."""

    kind: str
    resource_id: str
    lab: str
    exercise: str


@dataclass
class Removal:
    kind: str
    name: str
    resource_id: str
    why: str
    error: str = ""


def remove_owned(
    engine: Engine,
    lab: str | None,
    recorded: Iterable[Owned] = (),
    exercise: str | None = None,
    include_images: bool = False,
) -> list[Removal]:
    """Remove lab resources: those labelled by Dockyard and those a check recorded.

    ``docker rm -f $(docker ps -aq --filter label=dockyard.lab=LAB)``, plus the ids in
    ``recorded``, which the store only keeps for resources created after the lab
    started. Nothing is ever chosen by name. ``lab=None`` means every lab.
    """
    from docker.errors import APIError, NotFound

    client = engine.client
    if exercise:
        label_filter = [f"{EXERCISE_LABEL}={exercise}"]
    elif lab:
        label_filter = [f"{LAB_LABEL}={lab}"]
    else:
        label_filter = [LAB_LABEL]
    removed: list[Removal] = []

    def attempt(kind: str, name: str, rid: str, why: str, action: Any) -> None:
        try:
            action()
            removed.append(Removal(kind, name, rid, why))
        except NotFound:
            pass
        except APIError as exc:
            removed.append(Removal(kind, name, rid, why, error=_short(exc)))

    by_kind: dict[str, set[str]] = {"container": set(), "volume": set(), "network": set()}
    by_kind["image"] = set()
    by_kind["service"] = set()
    for own in recorded:
        if own.kind in by_kind:
            by_kind[own.kind].add(own.resource_id)

    # Services first: a swarm service keeps recreating its task containers.
    try:
        services = client.services.list(filters={"label": label_filter})
    except APIError:
        services = []  # not a swarm manager: there are no services to remove
    # Services a check graded (made after the lab started), found again by id.
    seen_services = {s.id for s in services}
    for rid in by_kind["service"] - seen_services:
        try:
            services.append(client.services.get(rid))
        except (NotFound, APIError):
            continue  # gone, or no longer a swarm manager
    for service in services:
        why = "labelled" if service.id in seen_services else "graded"
        attempt("service", service.name, service.id, why, service.remove)

    containers = client.containers.list(all=True, filters={"label": label_filter})
    seen = {c.id for c in containers}
    for rid in by_kind["container"] - seen:
        try:
            containers.append(client.containers.get(rid))
        except NotFound:
            continue
    for container in containers:
        recorded_here = container.id in by_kind["container"]
        # Containers inherit their image's labels: one run from a lab image is not ours
        # unless a check graded it.
        if (container.labels or {}).get(LAB_LABEL) == IMAGES_LAB and not recorded_here:
            continue
        why = "graded" if recorded_here else "labelled"
        attempt(
            "container", container.name, container.id, why,
            # v=True: the container's anonymous volumes (an image's VOLUME) go with it;
            # named volumes are never removed this way.
            lambda c=container: c.remove(force=True, v=True),
        )

    for network in client.networks.list(filters={"label": label_filter}) + [
        n for n in (_get_or_none(client.networks.get, rid) for rid in by_kind["network"]) if n
    ]:
        attempt("network", network.name, network.id, "labelled/graded", network.remove)

    volumes = client.volumes.list(filters={"label": label_filter}) + [
        v for v in (_get_or_none(client.volumes.get, rid) for rid in by_kind["volume"]) if v
    ]
    for volume in volumes:
        attempt("volume", volume.name, volume.id, "labelled/graded", volume.remove)

    from kernel_helpers.images import IMAGES

    lab_tags = {spec.tag for spec in IMAGES}
    images = client.images.list(filters={"label": label_filter})
    recorded_images = [
        i for i in (_get_or_none(client.images.get, rid) for rid in by_kind["image"]) if i
    ]
    for image in images + recorded_images:
        # Images built FROM a lab image inherit its labels: only the lab's own tags go.
        lab_image = (image.labels or {}).get(LAB_LABEL) == IMAGES_LAB
        wanted = include_images and bool(lab_tags & set(image.tags))
        if lab_image and image not in recorded_images and not wanted:
            continue
        attempt(
            "image", ",".join(image.tags) or image.short_id, image.id, "labelled/graded",
            lambda i=image: client.images.remove(i.id, force=False, noprune=False),
        )
    return removed


def _get_or_none(getter: Any, rid: str) -> Any:
    from docker.errors import NotFound

    try:
        return getter(rid)
    except NotFound:
        return None
