"""Lab 05 — orchestration with Docker Swarm: desired state, scaling, self-healing, updates.

Each exercise below is one unit: sub-checks with points, student-facing text, then
the check (live swarm state, task history and the engine's event log only) and the
reference solution. The swarm itself comes from :mod:`kernel_helpers.swarm`, which
never leaves a swarm Dockyard did not create. Every exercise's cleanup removes its
own services and then, once no service at all is left, lets go of a swarm Dockyard
created (``swarm.leave_if_ours``), so a full reset leaves the engine as it was found.

Publishing note: the routing mesh (``-p 8080:8000`` on a service) needs the kernel's
IPVS, which some Linux hosts lack; every check here therefore reaches services from
container to container, never through a published port.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checkers import CheckContext, Exercise, SolveContext, SolveError, Text, Unmet
from kernel_helpers import engine as eng
from kernel_helpers import swarm, workspace

if TYPE_CHECKING:
    from docker.models.services import Service

LAB = "05-orchestration-swarm"
SECOND_NS = 1_000_000_000
GOOD_IMAGE, NEW_IMAGE = "dockyard/api:1", "dockyard/api:2"
API_PORT = 8000
#: A short grace period keeps the solutions quick: `sleep` as PID 1 ignores SIGTERM.
QUICK_STOP = 1 * SECOND_NS
ZONE_KEY, ZONE_VALUE = "dy-sw-zone", "lab"
STACK = "dy-sw-stack"
STACK_FILE = "stack.yaml"
REPO_LAB_DIR = Path(__file__).resolve().parent.parent / "labs" / LAB

#: Reasons every exercise of this lab may give; each Text adds its own.
SWARM_REASONS = {
    "no_swarm": (
        "This engine is not a swarm manager (its swarm state is '{state}'). Start with the first "
        "exercise: `docker swarm init --advertise-addr 127.0.0.1`."
    ),
    "missing_service": (
        "There is no service named '{name}' yet. Create it with exactly that name "
        "(`docker service ls` lists what exists)."
    ),
    "wrong_service_image": "'{name}' runs image '{actual}', but this step needs '{expected}'.",
}


def _reasons(**own: str) -> dict[str, str]:
    return {**SWARM_REASONS, **own}


# --- shared check helpers -------------------------------------------------------------------


def _manager(ctx: CheckContext) -> swarm.SwarmState:
    """``docker info``: stop the check with a clear reason unless this is a swarm manager."""
    current = swarm.state(ctx.engine)
    ctx.evidence["swarm"] = {"state": current.local_node_state, "node": current.node_id}
    if not current.manager:
        raise Unmet("no_swarm", state=current.local_node_state)
    return current


def _grade_service(ctx: CheckContext, service: Service) -> None:
    created = eng.parse_time(service.attrs["CreatedAt"])
    ctx.grade("service", service.id, created)
    ctx.evidence.setdefault("services", {})[service.name] = {
        "id": service.id, "created": service.attrs["CreatedAt"],
        "version": service.attrs.get("Version", {}).get("Index"),
        "image": swarm.service_image(service),
    }


def _service(ctx: CheckContext, name: str) -> Service:
    """``docker service inspect NAME``, recorded as graded; stops the check if absent."""
    _manager(ctx)
    service = swarm.find_service(ctx.engine, name)
    if service is None:
        raise Unmet("missing_service", name=name)
    _grade_service(ctx, service)
    return service


def _state(task: dict[str, Any]) -> str:
    return str(task.get("Status", {}).get("State", ""))


def _container_id(task: dict[str, Any]) -> str:
    return str(task.get("Status", {}).get("ContainerStatus", {}).get("ContainerID", ""))


def _created(task: dict[str, Any]) -> datetime:
    return eng.parse_time(str(task.get("CreatedAt", "1970-01-01T00:00:00Z")))


def _brief(task: dict[str, Any]) -> dict[str, Any]:
    """The fields of a task a person reads in ``docker service ps``."""
    status = task.get("Status", {})
    return {
        "task": task.get("ID", "")[:12], "slot": task.get("Slot"),
        "image": swarm.task_image(task), "desired": task.get("DesiredState"),
        "state": status.get("State"), "created": task.get("CreatedAt"),
        "container": _container_id(task)[:12],
        "exit": status.get("ContainerStatus", {}).get("ExitCode"), "error": status.get("Err", ""),
    }


def _service_events(ctx: CheckContext, since: datetime, kind: str,
                    **filters: Any) -> list[dict[str, Any]]:
    """``docker events --since T --until now --filter type=KIND``, read once."""
    stream = ctx.client.events(
        since=f"{since.timestamp():.6f}", until=f"{time.time():.6f}", decode=True,
        filters={"type": kind, **filters},
    )
    try:
        return list(stream)
    finally:
        stream.close()


# --- shared solve and cleanup helpers ---------------------------------------------------------


def _wait(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.5)
    raise SolveError(f"{what} did not happen within {timeout:.0f} s")


def _owned_by_exercise(ctx: SolveContext, service: Service) -> bool:
    labels = service.attrs.get("Spec", {}).get("Labels") or {}
    recorded = {o.resource_id for o in ctx.store.owned(exercise=ctx.exercise.id)}
    return labels.get(eng.EXERCISE_LABEL) == ctx.exercise.id or service.id in recorded


def _fresh_service(ctx: SolveContext, name: str, image: str, command: Any = None,
                   **kwargs: Any) -> Service:
    """``docker service create --name NAME --label dockyard.lab=... IMAGE COMMAND``.

    Replaces a same-named service only if this exercise owns it; refuses otherwise.
    """
    from docker.errors import ImageNotFound

    try:
        ctx.client.images.get(image)
    except ImageNotFound:
        from checkers._core.context import image_missing_message

        raise SolveError(image_missing_message(image)) from None
    try:
        swarm.ensure_swarm(ctx.engine, ctx.store)
    except swarm.SwarmError as exc:
        raise SolveError(str(exc)) from None
    existing = swarm.find_service(ctx.engine, name)
    if existing is not None:
        if not _owned_by_exercise(ctx, existing):
            raise SolveError(
                f"a service named '{name}' exists that Dockyard did not create or grade, so it "
                f"will not be touched. Remove it yourself (`docker service rm {name}`) or rename "
                "it, then run the solution again."
            )
        swarm.remove_services(ctx.engine, [existing])
    kwargs.setdefault("stop_grace_period", QUICK_STOP)
    return ctx.client.services.create(
        image, command, name=name, labels=ctx.labels, container_labels=ctx.labels, **kwargs
    )


def _reload(ctx: SolveContext, service: Service) -> Service:
    return ctx.client.services.get(service.id)


def _running(ctx: SolveContext, service: Service, count: int, image: str = "") -> bool:
    tasks = swarm.running_tasks(_reload(ctx, service))
    return len(tasks) == count and all(not image or swarm.task_image(t) == image for t in tasks)


def _replicas(count: int) -> Any:
    from docker.types import ServiceMode

    return ServiceMode("replicated", replicas=count)


def _leave_when_idle(ctx: SolveContext) -> None:
    """Let go of a swarm Dockyard created once no service at all is left on it."""
    if swarm.state(ctx.engine).manager and not swarm.services(ctx.engine):
        swarm.leave_if_ours(ctx.engine, ctx.store)


def _cleanup_services(ctx: SolveContext) -> list[eng.Removal]:
    """Remove this exercise's services (labelled, or graded after the lab started)."""
    try:
        engine = ctx.engine
    except eng.EngineUnavailable:
        return []
    if not swarm.state(engine).manager:
        swarm.leave_if_ours(engine, ctx.store)  # forgets a stale record, never leaves
        return []
    recorded = {o.resource_id for o in ctx.store.owned(exercise=ctx.exercise.id)
                if o.kind == "service"}
    doomed = [s for s in swarm.services(engine)
              if s.id in recorded
              or (s.attrs.get("Spec", {}).get("Labels") or {}).get(eng.EXERCISE_LABEL)
              == ctx.exercise.id]
    swarm.remove_services(engine, doomed)
    ctx.store.forget_owned([s.id for s in doomed])
    _leave_when_idle(ctx)
    return [eng.Removal("service", s.name, s.id,
                        "graded" if s.id in recorded else "labelled") for s in doomed]


# --- 1. A one-node swarm ----------------------------------------------------------------------

init = Exercise(
    id="orchestration.init",
    lab=LAB,
    subchecks={"manager": 2, "label": 1},
    text=Text(
        title="Start (or reuse) a one-node swarm",
        task=(
            "Turn your engine into a one-node swarm with `docker swarm init`, advertising on "
            "127.0.0.1 (if `docker info` already says `Swarm: active`, keep that swarm). Then "
            f"give your node the label `{ZONE_KEY}={ZONE_VALUE}`, the kind of label that "
            "placement constraints read."
        ),
        subchecks={
            "manager": "this engine is an active swarm manager",
            "label": f"the node carries the label {ZONE_KEY}={ZONE_VALUE}",
        },
        hints=(
            "`docker swarm init --advertise-addr 127.0.0.1` starts a swarm of one manager.",
            "`docker node ls` lists the nodes; `self` also works wherever a node is expected.",
            "`docker node update --help` shows how to add a label to a node.",
        ),
        reasons=_reasons(
            manager=(
                "This engine is not an active swarm manager (state '{state}'"
                "{control}). Run `docker swarm init --advertise-addr 127.0.0.1`."
            ),
            label="The node's labels are {labels}; add {wanted}.",
        ),
    ),
)


@init.check
def _check_init(ctx: CheckContext) -> None:
    current = swarm.state(ctx.engine)
    ctx.evidence.update(swarm_state=current.local_node_state, node_id=current.node_id,
                        control_available=current.control_available)
    control = ", and it is a worker, not a manager" if current.active else ""
    if not ctx.result("manager", current.manager, "manager",
                      state=current.local_node_state, control=control):
        raise ctx.blocked_by("manager")
    node = ctx.client.nodes.get(current.node_id)
    spec, status = node.attrs.get("Spec", {}), node.attrs.get("Status", {})
    labels = spec.get("Labels") or {}
    ctx.evidence["node"] = {
        "id": node.id, "hostname": node.attrs.get("Description", {}).get("Hostname"),
        "role": spec.get("Role"), "availability": spec.get("Availability"),
        "status": status.get("State"), "labels": labels,
    }
    ours = swarm.created_by_dockyard(ctx.engine)
    ctx.evidence["created_by"] = "dockyard" if ours else "you (or it was already there)"
    ctx.notes.append(
        f"Node {current.node_id[:12]}: Dockyard initialised this swarm, so a reset leaves it "
        "again." if ours else
        f"Node {current.node_id[:12]}: this swarm was not initialised by Dockyard (you made it, "
        "or it was already there), so Dockyard will never leave it."
    )
    ctx.result("label", labels.get(ZONE_KEY) == ZONE_VALUE, "label",
               labels=labels or "none", wanted=f"{ZONE_KEY}={ZONE_VALUE}")


@init.solve
def _solve_init(ctx: SolveContext) -> None:
    try:
        result = swarm.ensure_swarm(ctx.engine, ctx.store)
    except swarm.SwarmError as exc:
        raise SolveError(str(exc)) from None
    node = ctx.client.nodes.get(result.node_id)
    spec = dict(node.attrs["Spec"])
    spec["Labels"] = {**(spec.get("Labels") or {}), ZONE_KEY: ZONE_VALUE}
    node.update(spec)


@init.cleanup
def _cleanup_init(ctx: SolveContext) -> None:
    try:
        current = swarm.state(ctx.engine)
    except eng.EngineUnavailable:
        return
    if current.manager:
        # Only the lab's own label key goes; the node's other labels are the student's.
        node = ctx.client.nodes.get(current.node_id)
        spec = dict(node.attrs["Spec"])
        labels = dict(spec.get("Labels") or {})
        if labels.pop(ZONE_KEY, None) is not None:
            spec["Labels"] = labels
            node.update(spec)
    _cleanup_services(ctx)


# --- 2. Desired state: a service with three replicas ------------------------------------------

WEB, WEB_REPLICAS = "dy-sw-web", 3

replicas = Exercise(
    id="orchestration.replicas",
    lab=LAB,
    images=("api-v1",),
    subchecks={"image": 1, "desired": 1, "running": 2, "answers": 1},
    text=Text(
        title="Describe a desired state: three replicas",
        task=(
            f"Create a service `{WEB}` from `{GOOD_IMAGE}` with {WEB_REPLICAS} replicas. Compare "
            "what you asked for (`docker service ls`, the REPLICAS column) with what runs "
            "(`docker service ps`): the swarm works until the two agree."
        ),
        subchecks={
            "image": f"{WEB} runs {GOOD_IMAGE}",
            "desired": f"its desired state is {WEB_REPLICAS} replicas",
            "running": f"{WEB_REPLICAS} of its tasks are actually running",
            "answers": f"a task answers /api/version on port {API_PORT}, from inside",
        },
        hints=(
            "`docker service create --help` lists `--name` and `--replicas`.",
            "A service's tasks take a moment to start; `docker service ps dy-sw-web` shows "
            "each task's current state next to its desired one.",
            "The API listens on port 8000 inside each task; no port needs publishing.",
        ),
        reasons=_reasons(
            desired="{name} wants {actual} replica(s); it should want " + str(WEB_REPLICAS) + ".",
            running="{running} of {name}'s tasks run, but " + str(WEB_REPLICAS)
                    + " should. Task states: {states}.",
            answers="Asking a task for /api/version from inside gave {answer!r}.",
        ),
    ),
)


def _ask_inside(ctx: CheckContext, task: dict[str, Any]) -> str:
    """``docker exec CONTAINER wget -qO- http://127.0.0.1:8000/api/version``.

    (busybox wget's own ``-T`` timeout crashes it, so ``timeout`` bounds the call.)
    """
    from docker.errors import APIError, NotFound

    try:
        container = ctx.client.containers.get(_container_id(task))
        result = container.exec_run(
            ["timeout", "3", "wget", "-qO-", f"http://127.0.0.1:{API_PORT}/api/version"])
    except (NotFound, APIError) as exc:
        return f"no answer ({exc})"
    text = (result.output or b"").decode("utf-8", "replace").strip()
    try:
        return str(json.loads(text).get("version", text))
    except ValueError:
        return text or f"exit code {result.exit_code}"


@replicas.check
def _check_replicas(ctx: CheckContext) -> None:
    service = _service(ctx, WEB)
    image = swarm.service_image(service)
    ctx.result("image", image == GOOD_IMAGE, "wrong_service_image", name=WEB,
               expected=GOOD_IMAGE, actual=image)
    desired = swarm.desired_replicas(service)
    tasks = swarm.tasks(service)
    running = [t for t in tasks if _state(t) == "running" and t.get("DesiredState") == "running"]
    ctx.evidence.update(desired=desired, running=len(running),
                        tasks=[_brief(t) for t in tasks])
    ctx.notes.append(f"{WEB}: desired {desired if desired is not None else 'global'} / "
                     f"running {len(running)}")
    ctx.result("desired", desired == WEB_REPLICAS, "desired", name=WEB,
               actual="global" if desired is None else desired)
    states = ", ".join(f"{t.get('Slot')}: {_state(t)}" for t in tasks
                       if t.get("DesiredState") == "running") or "none"
    if not ctx.result("running", len(running) == WEB_REPLICAS, "running", name=WEB,
                      running=len(running), states=states):
        raise ctx.blocked_by("running")
    answer = _ask_inside(ctx, running[0])
    ctx.evidence["answer"] = answer
    ctx.result("answers", answer == "1", "answers", answer=answer)


@replicas.solve
def _solve_replicas(ctx: SolveContext) -> None:
    service = _fresh_service(ctx, WEB, GOOD_IMAGE, mode=_replicas(WEB_REPLICAS))
    _wait(lambda: _running(ctx, service, WEB_REPLICAS), 60, f"{WEB_REPLICAS} running tasks")


replicas.cleanup(_cleanup_services)


# --- 3. Scale up, scale down ------------------------------------------------------------------

SCALE, SCALE_PEAK, SCALE_FINAL = "dy-sw-scale", 5, 2

scale = Exercise(
    id="orchestration.scale",
    lab=LAB,
    subchecks={"up": 1, "down": 1, "final": 2},
    text=Text(
        title="Scale up, then down",
        task=(
            f"Create a service `{SCALE}` from `busybox:latest` running `sleep 3600` with "
            f"{SCALE_FINAL} replicas. Scale it up to {SCALE_PEAK}, wait until all "
            f"{SCALE_PEAK} run, then scale it back down to {SCALE_FINAL}. Watch "
            "`docker service ps` while the swarm stops the extra tasks."
        ),
        subchecks={
            "up": f"it was scaled to {SCALE_PEAK} and {SCALE_PEAK} tasks really started",
            "down": f"it was then scaled back down to {SCALE_FINAL}",
            "final": f"it wants {SCALE_FINAL} replicas now and {SCALE_FINAL} run",
        },
        hints=(
            "`docker service scale NAME=N` changes only the number of replicas.",
            "`sleep` ignores the polite stop signal, so stopping takes 10 s unless the service "
            "has a shorter `--stop-grace-period`.",
            "The engine's event log (`docker events --filter type=service`) records each "
            "scaling step with the old and new replica counts.",
        ),
        reasons=_reasons(
            up="The swarm's records show at most {peak} replica(s) wanted and {started} task "
               "container(s) started; scale it up to " + str(SCALE_PEAK) + " first.",
            down="No scale-down to " + str(SCALE_FINAL) + " after the peak was recorded "
                 "(scaling steps: {steps}).",
            final="{name} wants {desired} replica(s) and {running} run; both should be "
                  + str(SCALE_FINAL) + ".",
        ),
    ),
)


@scale.check
def _check_scale(ctx: CheckContext) -> None:
    service = _service(ctx, SCALE)
    since = eng.parse_time(service.attrs["CreatedAt"]) - timedelta(seconds=1)
    events = _service_events(ctx, since, "service", service=service.id)
    steps = []
    for event in events:
        attributes = event.get("Actor", {}).get("Attributes", {})
        if "replicas.new" in attributes:
            with contextlib.suppress(ValueError):
                steps.append((int(attributes.get("replicas.old", 0)),
                              int(attributes["replicas.new"])))
    starts = _service_events(ctx, since, "container", event="start",
                             label=f"{swarm.SERVICE_ID_LABEL}={service.id}")
    started = len({e.get("id") for e in starts})
    desired = swarm.desired_replicas(service) or 0
    tasks = swarm.tasks(service)
    running = [t for t in tasks if _state(t) == "running" and t.get("DesiredState") == "running"]
    stopping = [_brief(t) for t in tasks if t.get("DesiredState") in ("shutdown", "remove")]
    ctx.evidence.update(scaling_steps=steps, containers_started=started, desired=desired,
                        running=len(running), stopped_by_scale_down=stopping)
    peak_at = next((i for i, (_, new) in enumerate(steps) if new >= SCALE_PEAK), None)
    peak = max([new for _, new in steps] + [old for old, _ in steps] + [desired])
    up = (peak_at is not None or (steps and steps[0][0] >= SCALE_PEAK)) and started >= SCALE_PEAK
    ctx.result("up", bool(up), "up", peak=peak, started=started)
    first_peak = peak_at if peak_at is not None else -1
    down = any(old >= SCALE_PEAK and new == SCALE_FINAL for old, new in steps[first_peak + 1:])
    history = " → ".join(str(n) for n in [steps[0][0], *(new for _, new in steps)]) \
        if steps else "none"
    ctx.notes.append(f"{SCALE} replicas over time: {history}; desired {desired} / running "
                     f"{len(running)}; {started} task container(s) started in all.")
    ctx.result("down", down, "down", steps=history)
    ctx.result("final", desired == SCALE_FINAL and len(running) == SCALE_FINAL, "final",
               name=SCALE, desired=desired, running=len(running))


@scale.solve
def _solve_scale(ctx: SolveContext) -> None:
    service = _fresh_service(ctx, SCALE, "busybox:latest", ["sleep", "3600"],
                             mode=_replicas(SCALE_FINAL))
    _wait(lambda: _running(ctx, service, SCALE_FINAL), 60, f"{SCALE_FINAL} running tasks")
    _reload(ctx, service).scale(SCALE_PEAK)
    _wait(lambda: _running(ctx, service, SCALE_PEAK), 60, f"{SCALE_PEAK} running tasks")
    _reload(ctx, service).scale(SCALE_FINAL)
    _wait(lambda: _running(ctx, service, SCALE_FINAL), 60, f"back to {SCALE_FINAL} tasks")


scale.cleanup(_cleanup_services)


# --- 4. Self-healing --------------------------------------------------------------------------

HEAL, HEAL_REPLICAS = "dy-sw-heal", 2
DEAD_STATES = ("failed", "complete", "rejected", "orphaned")

self_heal = Exercise(
    id="orchestration.self-heal",
    lab=LAB,
    subchecks={"killed": 1, "replaced": 2, "healed": 1},
    text=Text(
        title="Kill a task and watch the swarm heal",
        task=(
            f"Create a service `{HEAL}` from `busybox:latest` running `sleep 3600` with "
            f"{HEAL_REPLICAS} replicas. Find one of its task containers with `docker ps` and "
            "kill it behind the swarm's back (`docker kill`). Then look at "
            f"`docker service ps {HEAL}`: the swarm notices and starts a replacement."
        ),
        subchecks={
            "killed": "one of its task containers died without the swarm asking",
            "replaced": "a newer task runs in the same slot as the dead one",
            "healed": f"all {HEAL_REPLICAS} replicas run again",
        },
        hints=(
            "Task containers are named `SERVICE.SLOT.TASKID`; "
            "`docker ps --filter name=dy-sw-heal` finds them.",
            "Kill the container itself, not the service: `docker service rm` would tell the "
            "swarm you no longer want it.",
            "The replacement starts after the restart delay (5 s by default).",
        ),
        reasons=_reasons(
            killed="None of {name}'s tasks has died on its own yet (task states: {states}). "
                   "Kill one of its containers.",
            replaced="Slot {slot} lost task {task}, but no newer task runs in that slot yet.",
            healed="{running} of {desired} replicas run.",
        ),
    ),
)


def _container_gone(ctx: CheckContext, container_id: str) -> bool:
    from docker.errors import NotFound

    if not container_id:
        return True
    try:
        return ctx.client.containers.get(container_id).status != "running"
    except NotFound:
        return True


@self_heal.check
def _check_self_heal(ctx: CheckContext) -> None:
    service = _service(ctx, HEAL)
    tasks = sorted(swarm.tasks(service), key=_created)
    ctx.evidence["tasks"] = [_brief(t) for t in tasks]
    dead = [t for t in tasks if _state(t) in DEAD_STATES and _container_gone(ctx, _container_id(t))]
    states = ", ".join(f"{t.get('Slot')}: {_state(t)}" for t in tasks) or "none"
    if not ctx.result("killed", bool(dead), "killed", name=HEAL, states=states):
        raise ctx.blocked_by("killed")
    running = [t for t in tasks if _state(t) == "running" and t.get("DesiredState") == "running"]
    pair = next(((d, r) for d in reversed(dead) for r in running
                 if r.get("Slot") == d.get("Slot") and _created(r) > _created(d)), None)
    if pair:
        gone, fresh = pair
        seconds = (_created(fresh) - eng.parse_time(
            str(gone.get("Status", {}).get("Timestamp") or gone.get("CreatedAt")))
        ).total_seconds()
        ctx.evidence["healing"] = {"dead": _brief(gone), "replacement": _brief(fresh)}
        ctx.notes.append(
            f"Slot {gone.get('Slot')}: task {gone['ID'][:12]} died ({_state(gone)}, exit "
            f"{_brief(gone)['exit']}); task {fresh['ID'][:12]} replaced it "
            f"{max(seconds, 0):.1f} s later."
        )
    last = dead[-1]
    ctx.result("replaced", pair is not None, "replaced", slot=last.get("Slot"),
               task=last.get("ID", "")[:12])
    desired = swarm.desired_replicas(service) or 0
    ctx.result("healed", desired > 0 and len(running) == desired, "healed",
               running=len(running), desired=desired)


@self_heal.solve
def _solve_self_heal(ctx: SolveContext) -> None:
    service = _fresh_service(ctx, HEAL, "busybox:latest", ["sleep", "3600"],
                             mode=_replicas(HEAL_REPLICAS))
    _wait(lambda: _running(ctx, service, HEAL_REPLICAS), 60, f"{HEAL_REPLICAS} running tasks")
    victim = min(swarm.running_tasks(_reload(ctx, service)), key=lambda t: t.get("Slot", 0))
    ctx.client.containers.get(_container_id(victim)).kill()

    def replaced() -> bool:
        running = swarm.running_tasks(_reload(ctx, service))
        return len(running) == HEAL_REPLICAS and any(
            t.get("Slot") == victim.get("Slot") and t["ID"] != victim["ID"] for t in running)

    _wait(replaced, 60, "a replacement task")


self_heal.cleanup(_cleanup_services)


# --- 5. A rolling update ----------------------------------------------------------------------

ROLL, ROLL_REPLICAS, ROLL_DELAY = "dy-sw-roll", 3, 2

rolling = Exercise(
    id="orchestration.rolling-update",
    lab=LAB,
    images=("api-v1", "api-v2"),
    subchecks={"config": 1, "updated": 1, "batches": 2},
    text=Text(
        title="Roll out a new version in batches",
        task=(
            f"Create a service `{ROLL}` from `{GOOD_IMAGE}` with {ROLL_REPLICAS} replicas and an "
            f"update policy that replaces one task at a time, waiting at least {ROLL_DELAY} s "
            f"between batches. Then update it to `{NEW_IMAGE}` and watch the tasks change one "
            "by one."
        ),
        subchecks={
            "config": f"its update policy replaces fewer than all tasks at once, with a delay "
                      f"of at least {ROLL_DELAY} s",
            "updated": f"the update to {NEW_IMAGE} completed and every task runs it",
            "batches": "the task history shows replacements started in separate batches",
        },
        hints=(
            "`docker service create --help | grep update` lists the update options.",
            "`docker service update --image IMAGE NAME` starts a rolling update; "
            "`docker service inspect --pretty` shows its progress.",
            "`docker service ps dy-sw-roll` lists old and new tasks per slot with their times.",
        ),
        reasons=_reasons(
            config="The update policy is parallelism {parallelism}, delay {delay} s, for "
                   "{replicas} replicas; replace fewer tasks than there are replicas at a time, "
                   "with a delay of at least " + str(ROLL_DELAY) + " s (and keep at least "
                   + str(ROLL_REPLICAS) + " replicas).",
            updated="The service runs {image}, its update state is {state}, and {running} "
                    "task(s) run " + NEW_IMAGE + " out of {replicas}.",
            batches="The new tasks started at {offsets}: that is {batches} batch(es), but a "
                    "rolling update of {replicas} tasks, {parallelism} at a time, needs at least "
                    "{needed}.",
        ),
    ),
)


def batches(times: list[datetime], gap: float) -> list[list[datetime]]:
    """Group start times into batches: a new batch begins after a pause of ``gap`` seconds."""
    groups: list[list[datetime]] = []
    for moment in sorted(times):
        if groups and (moment - groups[-1][-1]).total_seconds() < gap:
            groups[-1].append(moment)
        else:
            groups.append([moment])
    return groups


@rolling.check
def _check_rolling(ctx: CheckContext) -> None:
    service = _service(ctx, ROLL)
    spec = service.attrs.get("Spec", {})
    config = spec.get("UpdateConfig") or {}
    # No update config at all means the swarm's default (1 at a time); a config without
    # Parallelism means 0, all at once (the API omits zero values).
    parallelism = int(config.get("Parallelism", 0 if config else 1))
    delay = int(config.get("Delay", 0)) / SECOND_NS
    desired = swarm.desired_replicas(service) or 0
    ctx.evidence["update_config"] = config
    ctx.result("config", desired >= ROLL_REPLICAS and 0 < parallelism < desired
               and delay >= ROLL_DELAY, "config", parallelism=parallelism or "all",
               delay=f"{delay:g}", replicas=desired)
    status = service.attrs.get("UpdateStatus") or {}
    tasks = swarm.tasks(service)
    running = [t for t in tasks if _state(t) == "running" and t.get("DesiredState") == "running"]
    on_new = [t for t in running if swarm.task_image(t) == NEW_IMAGE]
    image = swarm.service_image(service)
    ctx.evidence.update(update_status=status, tasks=[_brief(t) for t in tasks])
    if not ctx.result("updated", image == NEW_IMAGE and status.get("State") == "completed"
                      and len(on_new) == len(running) == desired, "updated", image=image,
                      state=status.get("State", "never updated"), running=len(on_new),
                      replicas=desired):
        raise ctx.blocked_by("updated")
    # The replacements are the tasks made for the new image; their creation times show
    # when the swarm started each one.
    starts = sorted(_created(t) for t in tasks if swarm.task_image(t) == NEW_IMAGE)
    groups = batches(starts, gap=max(1.0, 0.75 * delay))
    first = starts[0]
    offsets = ", ".join(f"+{(s - first).total_seconds():.1f} s" for s in starts)
    spacing = [round((b[0] - a[0]).total_seconds(), 2) for a, b in itertools.pairwise(groups)]
    needed = max(2, math.ceil(desired / max(parallelism, 1)))
    ctx.evidence.update(replacement_starts=[s.isoformat() for s in starts],
                        batch_spacing_s=spacing)
    ctx.notes.append(f"Replacements started at {offsets} ({len(groups)} batch(es); "
                     f"parallelism {parallelism}, delay {delay:g} s).")
    ctx.result("batches", len(groups) >= needed, "batches", offsets=offsets,
               batches=len(groups), replicas=desired, parallelism=parallelism, needed=needed)


@rolling.solve
def _solve_rolling(ctx: SolveContext) -> None:
    from docker.types import UpdateConfig

    service = _fresh_service(
        ctx, ROLL, GOOD_IMAGE, mode=_replicas(ROLL_REPLICAS),
        update_config=UpdateConfig(parallelism=1, delay=ROLL_DELAY * SECOND_NS),
    )
    _wait(lambda: _running(ctx, service, ROLL_REPLICAS), 60, f"{ROLL_REPLICAS} running tasks")
    _update_container_spec(ctx, service, Image=NEW_IMAGE)

    def completed() -> bool:
        current = _reload(ctx, service)
        return (current.attrs.get("UpdateStatus") or {}).get("State") == "completed" and \
            _running(ctx, service, ROLL_REPLICAS, NEW_IMAGE)

    _wait(completed, 120, f"the rolling update to {NEW_IMAGE}")


def _update_container_spec(ctx: SolveContext, service: Service, **changes: Any) -> None:
    """``docker service update --image ... --health-cmd ... NAME``: change the task template."""
    current = _reload(ctx, service)
    container_spec = {**current.attrs["Spec"]["TaskTemplate"]["ContainerSpec"], **changes}
    ctx.client.api.update_service(
        current.id, current.version, task_template={"ContainerSpec": container_spec},
        fetch_current_spec=True,
    )


rolling.cleanup(_cleanup_services)


# --- 6. A rollback after a bad update ---------------------------------------------------------

ROLLBACK, ROLLBACK_REPLICAS = "dy-sw-rollback", 2
ENDED_STATES = ("failed", "shutdown", "rejected", "complete")

rollback = Exercise(
    id="orchestration.rollback",
    lab=LAB,
    images=("api-v1", "api-v2"),
    subchecks={"bad-update": 1, "rolled-back": 2, "good": 1},
    text=Text(
        title="Roll back a bad update",
        task=(
            f"Create a service `{ROLLBACK}` from `{GOOD_IMAGE}` with {ROLLBACK_REPLICAS} replicas. "
            f"Then update it to `{NEW_IMAGE}` together with a health check that always fails "
            "(`--health-cmd false`), so the new tasks never become healthy. Let the swarm roll "
            "back by itself (an update failure action of `rollback`), or run "
            "`docker service rollback` yourself, until the good version runs again."
        ),
        subchecks={
            "bad-update": "the task history holds a task from the bad update that ended",
            "rolled-back": "the service's update status says the rollback completed",
            "good": f"all its running tasks use {GOOD_IMAGE} again",
        },
        hints=(
            "`docker service update --help` lists `--health-cmd`, `--health-interval`, "
            "`--health-retries` and `--update-failure-action`.",
            "A short health interval (1 s) with one retry makes the failure show quickly; "
            "`--update-monitor` is how long the swarm watches each new task.",
            "`docker service inspect --format '{{json .UpdateStatus}}' dy-sw-rollback` (in a "
            "terminal or a %%bash cell) shows what the check reads.",
        ),
        reasons=_reasons(
            **{
                "bad-update": "No task of {name} from a different (bad) spec has ended yet "
                              "(tasks: {states}). Update it with a health check that fails.",
                "rolled-back": "The update status is {state!r} ({message}); it should be "
                               "'rollback_completed'.",
                "good": "{name} runs {image} and {count} of {replicas} running task(s) use "
                        + GOOD_IMAGE + ".",
            }
        ),
    ),
)


def _spec_signature(container_spec: dict[str, Any]) -> tuple[str, str]:
    health = json.dumps(container_spec.get("Healthcheck") or {}, sort_keys=True)
    return str(container_spec.get("Image", "")).split("@", 1)[0], health


@rollback.check
def _check_rollback(ctx: CheckContext) -> None:
    service = _service(ctx, ROLLBACK)
    current = _spec_signature(service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"])
    tasks = swarm.tasks(service)
    bad = [t for t in tasks if _state(t) in ENDED_STATES
           and _spec_signature(t.get("Spec", {}).get("ContainerSpec", {})) != current]
    status = service.attrs.get("UpdateStatus") or {}
    ctx.evidence.update(update_status=status, tasks=[_brief(t) for t in tasks],
                        bad_tasks=[_brief(t) for t in bad])
    states = ", ".join(f"{swarm.task_image(t)} {_state(t)}" for t in tasks) or "none"
    ctx.result("bad-update", bool(bad), "bad-update", name=ROLLBACK, states=states)
    ctx.result("rolled-back", status.get("State") == "rollback_completed", "rolled-back",
               state=status.get("State", "never updated"),
               message=status.get("Message", "no message"))
    running = [t for t in tasks if _state(t) == "running" and t.get("DesiredState") == "running"]
    good = [t for t in running if swarm.task_image(t) == GOOD_IMAGE]
    desired = swarm.desired_replicas(service) or 0
    image = swarm.service_image(service)
    if status.get("StartedAt") and status.get("CompletedAt"):
        took = (eng.parse_time(status["CompletedAt"]) - eng.parse_time(status["StartedAt"]))
        ctx.notes.append(f"The update and its rollback took {took.total_seconds():.1f} s; "
                         f"{len(bad)} task(s) of the bad version ended.")
    ctx.result("good", image == GOOD_IMAGE and desired > 0 and len(good) == len(running) == desired,
               "good", name=ROLLBACK, image=image, count=len(good), replicas=desired)


@rollback.solve
def _solve_rollback(ctx: SolveContext) -> None:
    from docker.types import UpdateConfig

    service = _fresh_service(
        ctx, ROLLBACK, GOOD_IMAGE, mode=_replicas(ROLLBACK_REPLICAS),
        update_config=UpdateConfig(parallelism=1, failure_action="rollback",
                                   monitor=4 * SECOND_NS),
    )
    _wait(lambda: _running(ctx, service, ROLLBACK_REPLICAS), 60, "the good tasks")
    failing = {"Test": ["CMD", "false"], "Interval": SECOND_NS, "Timeout": SECOND_NS,
               "Retries": 1, "StartPeriod": 0}
    _update_container_spec(ctx, service, Image=NEW_IMAGE, Healthcheck=failing)

    def rolled_back() -> bool:
        status = _reload(ctx, service).attrs.get("UpdateStatus") or {}
        return status.get("State") == "rollback_completed" and \
            _running(ctx, service, ROLLBACK_REPLICAS, GOOD_IMAGE)

    _wait(rolled_back, 120, "the automatic rollback")


rollback.cleanup(_cleanup_services)


# --- 7. A stack from a compose file -----------------------------------------------------------

#: Lab 04's three tiers, plus a probe that asks the front end; the probe is last.
STACK_TIERS = ("web", "api", "db", "probe")
STACK_SERVICES = tuple(f"{STACK}_{tier}" for tier in STACK_TIERS)
STACK_IMAGES = ("mc-web", "mc-api", "mc-db")

stack = Exercise(
    id="orchestration.stack",
    lab=LAB,
    images=STACK_IMAGES,
    subchecks={"deployed": 1, "replicas": 1, "talks": 2},
    text=Text(
        title="Deploy a stack from a compose file",
        task=(
            f"Your lab folder has `{LAB}/{STACK_FILE}`: lab 04's three-tier app (web, api with "
            "2 replicas, db) and a probe that asks the front end for /api/visits every 2 s. "
            f"Deploy it as a stack named `{STACK}`, check that the probe gets answers, and when "
            "you are done remove the whole stack again with one command."
        ),
        subchecks={
            "deployed": f"the stack {STACK} has its services web, api, db and probe",
            "replicas": "every service of the stack runs as many tasks as it wants",
            "talks": "the probe's requests go through web and api to db and back",
        },
        hints=(
            "`docker stack deploy --help`: the compose file goes after `-c`, the stack's name "
            "last.",
            "`docker stack services dy-sw-stack` and `docker stack ps dy-sw-stack` show the "
            "desired and actual state of every service in the stack.",
            "`docker service logs dy-sw-stack_probe` shows what the probe received.",
        ),
        reasons=_reasons(
            deployed="The stack {stack} has services {found}; it needs {wanted}. Deploy "
                     + STACK_FILE + " with that stack name.",
            replicas="Not every service runs its tasks yet: {counts}.",
            talks="The probe's recent output is {output!r}; it should show visit counts "
                  "from the API.",
        ),
    ),
)


@stack.check
def _check_stack(ctx: CheckContext) -> None:
    _manager(ctx)
    found = {s.name: s for s in swarm.services(
        ctx.engine, label=f"{swarm.STACK_LABEL}={STACK}")}
    for service in found.values():
        _grade_service(ctx, service)
    for network in ctx.client.networks.list(filters={"label": f"{swarm.STACK_LABEL}={STACK}"}):
        created = network.attrs.get("Created")
        if created:
            ctx.grade("network", network.id, eng.parse_time(created))
    missing = [n for n in STACK_SERVICES if n not in found]
    if not ctx.result("deployed", not missing, "deployed", stack=STACK,
                      found=", ".join(sorted(found)) or "none", wanted=", ".join(STACK_SERVICES)):
        raise ctx.blocked_by("deployed")
    counts: dict[str, str] = {}
    running_by_service: dict[str, list[dict[str, Any]]] = {}
    for name in STACK_SERVICES:
        running_by_service[name] = swarm.running_tasks(found[name])
        counts[name] = f"{len(running_by_service[name])}/{swarm.desired_replicas(found[name])}"
    ctx.evidence["replicas"] = counts
    ctx.notes.append("Stack " + STACK + ": " + ", ".join(
        f"{name} desired {c.split('/')[1]} / running {c.split('/')[0]}"
        for name, c in counts.items()))
    ok = all(len(running_by_service[n]) == (swarm.desired_replicas(found[n]) or 0) > 0
             for n in STACK_SERVICES)
    if not ctx.result("replicas", ok, "replicas", counts=counts):
        raise ctx.blocked_by("replicas")
    probe = ctx.client.containers.get(_container_id(running_by_service[STACK_SERVICES[-1]][0]))
    output = probe.logs(tail=5).decode("utf-8", "replace").strip()
    ctx.evidence["probe_output"] = output.splitlines()[-3:]
    ctx.result("talks", '"visits"' in output, "talks", output=output[-200:] or "nothing")


def stack_file() -> Path:
    """The student's copy of the stack file, put in place from the repo's if missing."""
    target = workspace.lab_folder(LAB) / STACK_FILE
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_LAB_DIR / STACK_FILE, target)
    return target


def docker_cli(ctx: SolveContext, *args: str, timeout: float = 60) -> str:
    """Run the docker CLI against the engine Dockyard is connected to."""
    binary = shutil.which("docker")
    if binary is None:
        raise SolveError("the `docker` command-line tool is not installed here; "
                         "`docker stack deploy` needs it.")
    command = [binary, "--host", ctx.engine.endpoint.url, *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SolveError(f"`docker {' '.join(args)}` did not finish within {timeout:.0f} s") \
            from None
    if done.returncode != 0:
        raise SolveError(f"`docker {' '.join(args)}` failed: {done.stderr.strip()[:300]}")
    return done.stdout


@stack.setup
def _setup_stack(ctx: SolveContext) -> None:
    stack_file()


@stack.solve
def _solve_stack(ctx: SolveContext) -> None:
    try:
        swarm.ensure_swarm(ctx.engine, ctx.store)
    except swarm.SwarmError as exc:
        raise SolveError(str(exc)) from None
    present = swarm.services(ctx.engine, label=f"{swarm.STACK_LABEL}={STACK}")
    foreign = [s.name for s in present if not _owned_by_exercise(ctx, s)]
    if foreign:
        raise SolveError(
            f"the stack {STACK} already has services Dockyard did not create or grade "
            f"({', '.join(foreign)}); remove it yourself (`docker stack rm {STACK}`) first."
        )
    docker_cli(ctx, "stack", "deploy", "-c", str(stack_file()), STACK)

    def talking() -> bool:
        services = {s.name: s for s in swarm.services(
            ctx.engine, label=f"{swarm.STACK_LABEL}={STACK}")}
        if set(STACK_SERVICES) - set(services):
            return False
        runs = {n: swarm.running_tasks(services[n]) for n in STACK_SERVICES}
        if not all(len(runs[n]) == swarm.desired_replicas(services[n]) for n in STACK_SERVICES):
            return False
        probe = ctx.client.containers.get(_container_id(runs[STACK_SERVICES[-1]][0]))
        return b'"visits"' in probe.logs(tail=5)

    _wait(talking, 90, f"the stack {STACK} answering")


stack.cleanup(_cleanup_services)
