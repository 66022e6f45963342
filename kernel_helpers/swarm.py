"""Swarm mode: whether this engine is a manager, and starting or leaving a one-node swarm.

Lab 05 (``checkers.orchestration_swarm``) grades services from live swarm state
read through the client in :mod:`kernel_helpers.engine`. A swarm is bigger than any
one exercise: a student may already run one for their own work, so Dockyard only
ever *leaves* a swarm it initialised itself, which it remembers in the progress
store (:mod:`kernel_helpers.progress`, fact ``swarm.created_by_dockyard``), and only
while no service Dockyard does not own is left on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel_helpers import engine as eng
from kernel_helpers import progress

if TYPE_CHECKING:
    from docker.models.services import Service

#: The progress-store fact that holds the node id of a swarm Dockyard initialised.
CREATED_FACT = "swarm.created_by_dockyard"
#: Where a one-node lab swarm advertises and listens: loopback only, never the LAN.
ADVERTISE_ADDR = "127.0.0.1"
LISTEN_ADDR = "127.0.0.1:2377"
#: Labels the engine puts on every task container (``docker ps --filter label=...``).
SERVICE_ID_LABEL = "com.docker.swarm.service.id"
STACK_LABEL = "com.docker.stack.namespace"


class SwarmError(RuntimeError):
    """The swarm could not be started or used; the message says why and what to do."""


@dataclass(frozen=True)
class SwarmState:
    """``docker info --format '{{json .Swarm}}'``, the fields a lab needs."""

    local_node_state: str
    node_id: str
    control_available: bool
    error: str = ""

    @property
    def active(self) -> bool:
        return self.local_node_state == "active"

    @property
    def manager(self) -> bool:
        """An active node that can run ``docker service`` commands."""
        return self.active and self.control_available


@dataclass(frozen=True)
class EnsureResult:
    node_id: str
    #: True when this call ran ``docker swarm init``.
    created: bool


@dataclass(frozen=True)
class LeaveResult:
    left: bool
    why: str


def state(engine: eng.Engine | None = None) -> SwarmState:
    """``docker info --format '{{.Swarm.LocalNodeState}}'``: read fresh every time.

    ``Engine.info()`` is cached per connection, and swarm state changes under it.
    """
    engine = engine or eng.connect()
    swarm = engine.client.info().get("Swarm") or {}
    return SwarmState(
        local_node_state=str(swarm.get("LocalNodeState") or "inactive"),
        node_id=str(swarm.get("NodeID") or ""),
        control_available=bool(swarm.get("ControlAvailable")),
        error=str(swarm.get("Error") or ""),
    )


def _store(store: progress.Store | None) -> progress.Store:
    return store if store is not None else progress.store()


def created_by_dockyard(engine: eng.Engine | None = None,
                        store: progress.Store | None = None) -> bool:
    """Whether the active swarm is the one Dockyard initialised (same node id)."""
    current = state(engine)
    recorded = _store(store).fact(CREATED_FACT)
    return bool(current.active and recorded and recorded == current.node_id)


def ensure_swarm(engine: eng.Engine | None = None,
                 store: progress.Store | None = None) -> EnsureResult:
    """``docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377``.

    Reuses an active swarm as it is (a worker node cannot run services, so that is an
    error). Only a swarm this call initialises is recorded as Dockyard's.
    """
    engine = engine or eng.connect()
    current = state(engine)
    if current.active:
        if not current.control_available:
            raise SwarmError(
                "this engine is a swarm worker, not a manager, so it cannot create services. "
                "Run the lab on a manager node, or leave that swarm yourself first "
                "(`docker swarm leave`)."
            )
        return EnsureResult(current.node_id, created=False)
    if current.local_node_state not in ("inactive", ""):
        raise SwarmError(
            f"the engine's swarm state is '{current.local_node_state}'"
            + (f" ({current.error})" if current.error else "")
            + "; Dockyard will not touch it. `docker info` shows the details."
        )
    from docker.errors import APIError

    try:
        engine.client.swarm.init(advertise_addr=ADVERTISE_ADDR, listen_addr=LISTEN_ADDR)
    except APIError as exc:
        raise SwarmError(f"`docker swarm init` failed: {exc.explanation or exc}") from exc
    node_id = state(engine).node_id
    _store(store).set_fact(CREATED_FACT, node_id)
    return EnsureResult(node_id, created=True)


def services(engine: eng.Engine | None = None, **filters: Any) -> list[Service]:
    """``docker service ls --filter ...``; an empty list when this is no manager."""
    from docker.errors import APIError

    engine = engine or eng.connect()
    if not state(engine).manager:
        return []
    try:
        return list(engine.client.services.list(filters=filters or None))
    except APIError:
        return []


def find_service(engine: eng.Engine, name: str) -> Service | None:
    """``docker service inspect NAME`` by exact name (the API's name filter is a prefix)."""
    for service in services(engine, name=name):
        if service.name == name:
            return service
    return None


def owned_service_ids(engine: eng.Engine | None = None,
                      store: progress.Store | None = None) -> set[str]:
    """Services Dockyard owns: labelled ``dockyard.lab``, or recorded as graded."""
    engine = engine or eng.connect()
    labelled = {s.id for s in services(engine, label=eng.LAB_LABEL)}
    recorded = {o.resource_id for o in _store(store).owned() if o.kind == "service"}
    return labelled | recorded


def remove_services(engine: eng.Engine, doomed: list[Service], timeout: float = 20) -> None:
    """``docker service rm ID...``, then wait (bounded) until their task containers are gone.

    A network a service used can only be removed once its containers have left it.
    """
    from docker.errors import APIError, NotFound

    ids = []
    for service in doomed:
        try:
            service.remove()
            ids.append(service.id)
        except NotFound:
            continue
        except APIError as exc:
            raise SwarmError(f"could not remove service {service.name}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while ids and time.monotonic() < deadline:
        # The low-level list does not inspect each container, which races the removal.
        left = [i for i in ids if engine.client.api.containers(
            all=True, quiet=True, filters={"label": f"{SERVICE_ID_LABEL}={i}"})]
        if not left:
            return
        time.sleep(0.3)


def leave_if_ours(engine: eng.Engine | None = None,
                  store: progress.Store | None = None) -> LeaveResult:
    """``docker swarm leave --force``, but only for a swarm Dockyard created.

    Refuses when the swarm was there before Dockyard (or was re-created by someone
    else since), and when any service remains that Dockyard does not own; services it
    does own go with the swarm. Never raises for a refusal: the result says why.
    """
    engine = engine or eng.connect()
    store = _store(store)
    current = state(engine)
    recorded = store.fact(CREATED_FACT)
    if not current.active:
        if recorded:
            store.forget_fact(CREATED_FACT)
        return LeaveResult(False, "this engine is not in a swarm")
    if not recorded or recorded != current.node_id:
        if recorded:  # the swarm Dockyard made is gone; this one is someone else's
            store.forget_fact(CREATED_FACT)
        return LeaveResult(False, "this swarm was not created by Dockyard, so it stays")
    owned = owned_service_ids(engine, store)
    foreign = [s.name for s in services(engine) if s.id not in owned]
    if foreign:
        return LeaveResult(
            False, f"services Dockyard does not own still run on it: {', '.join(sorted(foreign))}"
        )
    from docker.errors import APIError

    try:
        engine.client.swarm.leave(force=True)
    except APIError as exc:
        return LeaveResult(False, f"`docker swarm leave` failed: {exc.explanation or exc}")
    store.forget_fact(CREATED_FACT)
    return LeaveResult(True, "Dockyard created this swarm and nothing else runs on it")


def tasks(service: Service) -> list[dict[str, Any]]:
    """``docker service ps NAME --no-trunc``: every task the manager still remembers."""
    return list(service.tasks())


def running_tasks(service: Service) -> list[dict[str, Any]]:
    """Tasks whose actual state is running (``docker service ps --filter desired-state=running``
    shows the wish; this is the fact)."""
    return [t for t in tasks(service) if t.get("Status", {}).get("State") == "running"
            and t.get("DesiredState") == "running"]


def desired_replicas(service: Service) -> int | None:
    """``docker service inspect --format '{{.Spec.Mode.Replicated.Replicas}}'``; None if global."""
    mode = service.attrs.get("Spec", {}).get("Mode", {})
    replicated = mode.get("Replicated")
    if replicated is None:
        return None
    return int(replicated.get("Replicas", 1))


def task_image(task: dict[str, Any]) -> str:
    """The image a task runs, without the ``@sha256:...`` pin the engine may add."""
    image = str(task.get("Spec", {}).get("ContainerSpec", {}).get("Image", ""))
    return image.split("@", 1)[0]


def service_image(service: Service) -> str:
    spec = service.attrs.get("Spec", {}).get("TaskTemplate", {}).get("ContainerSpec", {})
    return str(spec.get("Image", "")).split("@", 1)[0]
