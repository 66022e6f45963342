"""Lab 01 — containers compared with virtual machines.

Each exercise below is one unit: its sub-checks and points, its student-facing text,
then its check and reference solution. Checks read the engine's live state only.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from checkers import CheckContext, Exercise, SolveContext, Text, Unmet
from kernel_helpers import engine as eng

if TYPE_CHECKING:
    from docker.models.containers import Container

LAB = "01-containers-vs-vms"
GREETING = "Hello, Dockyard!"
START_COUNT = 10
START_PREFIX = "dy-start-"
DENSE_COUNT = 20
DENSE_PREFIX = "dy-dense-"
#: A container this light should stay under this much memory (busybox `sleep` needs < 1 MiB).
DENSE_MAX_MIB = 8


def _exited_ok(ctx: CheckContext, key: str, container: Container) -> bool:
    state = container.attrs["State"]
    return ctx.result(
        key, container.status == "exited" and state.get("ExitCode") == 0, "not_exited_ok",
        name=container.name, status=container.status, code=state.get("ExitCode"),
    )


def _image_is(container: Container, *names: str) -> bool:
    """True when the container was created from one of ``names``.

    The name the student typed usually matches; otherwise (a digest, another tag of the
    same image) compare image ids, which costs one more API call.
    """
    if container.attrs.get("Config", {}).get("Image") in names:
        return True
    return any(container.attrs.get("Image") == _image_id(container, name) for name in names)


def _image_id(container: Container, name: str) -> str:
    from docker.errors import ImageNotFound

    try:
        return str(container.client.images.get(name).id)
    except ImageNotFound:
        return ""


EXITED_REASON = (
    "'{name}' should have finished with exit code 0, but it is {status} (exit code {code}). "
    "Run a command that ends, and do not use --rm, so the finished container stays to be checked."
)

# --- 1. A first container ---------------------------------------------------------------

first_container = Exercise(
    id="containers.first-container",
    lab=LAB,
    subchecks={"exists": 1, "image": 1, "exited-ok": 1, "greeting": 2},
    text=Text(
        title="Run your first container",
        task=(
            f"Run a container named `dy-hello` from the `busybox` image that prints exactly "
            f"`{GREETING}` and exits. Keep the finished container (no `--rm`)."
        ),
        subchecks={
            "exists": "a container named dy-hello exists",
            "image": "it was created from the busybox image",
            "exited-ok": "it ran to completion with exit code 0",
            "greeting": f"its output is exactly '{GREETING}'",
        },
        hints=(
            "`docker run` takes options first, then the image, then the command to run inside.",
            "The option that names a container is `--name`; busybox has an `echo` command.",
            "Quote the greeting so the shell passes it to echo as one argument.",
        ),
        reasons={
            "not_exited_ok": EXITED_REASON,
            "wrong_image": "'dy-hello' was created from '{actual}', not from 'busybox'.",
            "greeting": "dy-hello printed {actual!r}; the exercise expects {expected!r}.",
        },
    ),
)


@first_container.check
def _check_first_container(ctx: CheckContext) -> None:
    container = ctx.container("dy-hello")
    ctx.result("exists", True)
    ctx.result(
        "image", _image_is(container, "busybox", "busybox:latest"),
        "wrong_image", actual=container.attrs["Config"]["Image"],
    )
    _exited_ok(ctx, "exited-ok", container)
    output = ctx.output(container)
    ctx.evidence["output"] = output
    ctx.result("greeting", output == GREETING, "greeting", actual=output, expected=GREETING)


@first_container.solve
def _solve_first_container(ctx: SolveContext) -> None:
    ctx.wait(ctx.run("busybox:latest", ["echo", GREETING], name="dy-hello"))


# --- 2. One kernel, many userlands -------------------------------------------------------

shared_kernel = Exercise(
    id="containers.shared-kernel",
    lab=LAB,
    subchecks={"busybox": 1, "debian": 1, "same-kernel": 2},
    text=Text(
        title="Show that containers share the host's kernel",
        task=(
            "Run `uname -r` in two containers from different distributions: `dy-kernel-busybox` "
            "from `busybox` and `dy-kernel-debian` from `debian:bookworm-slim`. Keep both. "
            "A VM would boot a kernel of its own; what do the containers report?"
        ),
        subchecks={
            "busybox": "dy-kernel-busybox ran uname -r from busybox and exited 0",
            "debian": "dy-kernel-debian ran uname -r from debian:bookworm-slim and exited 0",
            "same-kernel": "both report the Docker host's own kernel release",
        },
        hints=(
            "`uname -r` prints the release of the kernel that runs the process.",
            "Both containers are separate `docker run` commands with a `--name` each.",
            "Compare with `docker info --format '{{.KernelVersion}}'`: that is the host's kernel.",
        ),
        reasons={
            "not_exited_ok": EXITED_REASON,
            "wrong_image": "'{name}' was created from '{actual}', not from '{expected}'.",
            "same-kernel": (
                "The containers printed {outputs}, but the engine's kernel is '{kernel}'. Each "
                "container should print only the output of `uname -r`."
            ),
        },
    ),
)

KERNEL_CONTAINERS = {"busybox": ("dy-kernel-busybox", "busybox:latest"),
                     "debian": ("dy-kernel-debian", "debian:bookworm-slim")}
#: Other spellings of the same images that a student may type.
IMAGE_ALIASES = {"busybox:latest": ("busybox",), "debian:bookworm-slim": ()}


@shared_kernel.check
def _check_shared_kernel(ctx: CheckContext) -> None:
    kernel = ctx.engine.info().get("KernelVersion", "")
    outputs: dict[str, str] = {}
    for key, (name, image) in KERNEL_CONTAINERS.items():
        container = ctx.find(name)
        if container is None:
            ctx.result(key, False, "missing_container", name=name)
            continue
        if not _image_is(container, image, *IMAGE_ALIASES[image]):
            ctx.result(key, False, "wrong_image", name=name, expected=image,
                       actual=container.attrs["Config"]["Image"])
            continue
        if _exited_ok(ctx, key, container):
            outputs[name] = ctx.output(container)
    ctx.evidence.update(engine_kernel=kernel, outputs=outputs)
    if len(outputs) < len(KERNEL_CONTAINERS):
        raise Unmet("blocked", first="both containers ran")
    ctx.result(
        "same-kernel", all(out == kernel for out in outputs.values()), "same-kernel",
        outputs=outputs, kernel=kernel,
    )


@shared_kernel.solve
def _solve_shared_kernel(ctx: SolveContext) -> None:
    for name, image in KERNEL_CONTAINERS.values():
        ctx.wait(ctx.run(image, ["uname", "-r"], name=name))


# --- 3. Start-up time ---------------------------------------------------------------------


def startup_seconds(container: Container) -> float:
    """Seconds from ``docker create`` to the process running (Created → State.StartedAt)."""
    created = eng.parse_time(container.attrs["Created"])
    started = eng.parse_time(container.attrs["State"]["StartedAt"])
    return max(0.0, (started - created).total_seconds())


def startup_times(engine: eng.Engine | None = None) -> dict[str, float]:
    """Start-up seconds of every ``dy-start-N`` container, for the notebook's plot."""
    engine = engine or eng.connect()
    times = {}
    for index in range(START_COUNT):
        container = eng.find_container(engine, f"{START_PREFIX}{index}")
        if container is not None and container.attrs["State"].get("StartedAt", "").startswith("2"):
            times[container.name] = startup_seconds(container)
    return times


startup_time = Exercise(
    id="containers.startup-time",
    lab=LAB,
    subchecks={"count": 2, "exited-ok": 1, "fast": 1},
    text=Text(
        title="Start ten containers and time them",
        task=(
            f"Start {START_COUNT} containers named `{START_PREFIX}0` … "
            f"`{START_PREFIX}{START_COUNT - 1}` from `busybox`, each running `true`. Keep them. "
            "The notebook then plots their start-up times against a VM's boot time."
        ),
        subchecks={
            "count": f"all {START_COUNT} containers {START_PREFIX}0 … {START_COUNT - 1} exist",
            "exited-ok": "every one of them ran `true` and exited 0",
            "fast": "their median start-up time is under 5 seconds",
        },
        hints=(
            "A shell loop saves typing: `for i in $(seq 0 9); do ...; done`.",
            "Inside the loop, the container name can use the loop variable: dy-start-$i.",
            "`true` is a command that does nothing and succeeds: perfect for timing the start.",
        ),
        reasons={
            "count": "Missing: {missing}. Found {found} of {wanted}.",
            "exited-ok": "These did not exit 0: {bad}. Each should run `true`.",
            "fast": "The median start-up was {median:.2f} s; a container normally starts in "
                    "well under a second. Is the machine overloaded?",
        },
    ),
)


@startup_time.check
def _check_startup_time(ctx: CheckContext) -> None:
    found: list[Container] = []
    missing = []
    for index in range(START_COUNT):
        name = f"{START_PREFIX}{index}"
        container = ctx.find(name)
        if container is None:
            missing.append(name)
        else:
            found.append(container)
    if not ctx.result("count", not missing, "count", missing=", ".join(missing),
                      found=len(found), wanted=START_COUNT):
        raise ctx.blocked_by("count")
    bad = [c.name for c in found if c.status != "exited" or c.attrs["State"]["ExitCode"] != 0]
    ctx.result("exited-ok", not bad, "exited-ok", bad=", ".join(bad))
    times = {c.name: startup_seconds(c) for c in found}
    median = statistics.median(times.values())
    ctx.evidence.update(startup_seconds=times, median_seconds=median)
    ctx.notes.append(f"Measured: the median start-up took {median * 1000:.0f} ms.")
    ctx.result("fast", median < 5.0, "fast", median=median)


@startup_time.solve
def _solve_startup_time(ctx: SolveContext) -> None:
    started = [ctx.run("busybox:latest", ["true"], name=f"{START_PREFIX}{i}")
               for i in range(START_COUNT)]
    for container in started:
        ctx.wait(container)


# --- 4. The lifecycle ----------------------------------------------------------------------

lifecycle = Exercise(
    id="containers.lifecycle",
    lab=LAB,
    subchecks={"running": 1, "restarted": 2, "removed": 1},
    text=Text(
        title="Walk a container through its lifecycle",
        task=(
            "Run `dy-life` from `busybox` in the background with `sleep 3600`. Stop it, then "
            "start the same container again. Separately, create a container `dy-scratch` and "
            "remove it. The check reads the engine's event log."
        ),
        subchecks={
            "running": "dy-life exists and is running now",
            "restarted": "the engine saw dy-life stop and start again",
            "removed": "the engine saw dy-scratch being removed",
        },
        hints=(
            "`docker run -d` starts a container in the background.",
            "`docker stop` and `docker start` work on an existing container by name; "
            "`docker run` would create a new one.",
            "`docker rm` removes a stopped container; `docker events --since 10m` shows what "
            "the engine recorded.",
        ),
        reasons={
            "restarted": (
                "The engine's events show {starts} start(s) and {stops} stop(s) for this dy-life "
                "(id {id}). Stop it and start it again; do not create a new one."
            ),
            "removed": "The engine has no record of a container named dy-scratch being removed "
                       "since this lab started.",
        },
    ),
)


def _events(ctx: CheckContext, since: datetime, **filters: Any) -> list[dict[str, Any]]:
    # `until` must not lie in the future, or the engine holds the stream open until then.
    stream = ctx.client.events(
        since=f"{since.timestamp():.6f}", until=f"{time.time():.6f}", decode=True,
        filters={"type": "container", **filters},
    )
    try:
        return list(stream)
    finally:
        stream.close()


def _stopped_then_started(actions: list[str]) -> bool:
    """True when the event log has start, then die, then start again, in that order."""
    try:
        first_start = actions.index("start")
        stop = actions.index("die", first_start)
        actions.index("start", stop)
    except ValueError:
        return False
    return True


@lifecycle.check
def _check_lifecycle(ctx: CheckContext) -> None:
    from kernel_helpers import progress

    container = ctx.container("dy-life")
    ctx.result("running", container.status == "running", "not_running",
               name="dy-life", status=container.status)
    created = eng.container_created(container) - timedelta(seconds=1)
    started = progress.store().lab_started(LAB)
    lab_start = datetime.fromisoformat(started) if started else created
    # One read of the engine's event log covers both sub-checks.
    events = _events(ctx, min(created, lab_start))
    actions = [e.get("Action", e.get("status", "")) for e in events if e.get("id") == container.id]
    ctx.evidence["dy-life events"] = actions
    ctx.result("restarted", _stopped_then_started(actions), "restarted",
               starts=actions.count("start"), stops=actions.count("die"), id=container.short_id)
    removals = [e for e in events
                if e.get("Action") == "destroy" and eng.parse_time_ns(e) >= lab_start
                and e.get("Actor", {}).get("Attributes", {}).get("name") == "dy-scratch"]
    ctx.evidence["dy-scratch removals"] = [e.get("id", "") for e in removals]
    ctx.result("removed", bool(removals), "removed")


@lifecycle.solve
def _solve_lifecycle(ctx: SolveContext) -> None:
    life = ctx.run("busybox:latest", ["sleep", "3600"], name="dy-life")
    life.stop(timeout=1)
    life.start()
    scratch = ctx.run("busybox:latest", ["true"], name="dy-scratch")
    ctx.wait(scratch)
    scratch.remove()


# --- 5. Density ------------------------------------------------------------------------------

density = Exercise(
    id="containers.density",
    lab=LAB,
    subchecks={"count": 2, "light": 2},
    text=Text(
        title="Pack many containers onto one host",
        task=(
            f"Run {DENSE_COUNT} containers named `{DENSE_PREFIX}0` … "
            f"`{DENSE_PREFIX}{DENSE_COUNT - 1}` from `busybox`, each running `sleep 3600` in the "
            "background. The check measures how much memory they really use."
        ),
        subchecks={
            "count": f"all {DENSE_COUNT} containers are running",
            "light": f"each uses less than {DENSE_MAX_MIB} MiB of memory",
        },
        hints=(
            "Reuse the loop from the start-up exercise, with `-d` so each runs in the background.",
            "`docker stats --no-stream` shows what each container uses right now.",
        ),
        reasons={
            "count": "Not running: {missing}.",
            "light": "These use {DENSE_MAX_MIB} MiB or more: {heavy}. Run only `sleep 3600`.",
        },
    ),
)


def memory_usage_mib(container: Container) -> float:
    """Memory a container's cgroup uses right now (``docker stats --no-stream``), less cache."""
    stats = container.stats(stream=False, one_shot=True)
    memory = stats.get("memory_stats", {})
    usage = memory.get("usage", 0) - memory.get("stats", {}).get("cache", 0)
    return max(usage, 0) / 2**20


@density.check
def _check_density(ctx: CheckContext) -> None:
    running: list[Container] = []
    missing = []
    for index in range(DENSE_COUNT):
        name = f"{DENSE_PREFIX}{index}"
        container = ctx.find(name)
        if container is None or container.status != "running":
            missing.append(name)
        else:
            running.append(container)
    if not ctx.result("count", not missing, "count", missing=", ".join(missing)):
        raise ctx.blocked_by("count")
    # The engine samples stats about once a second, so ask for all of them at once.
    with ThreadPoolExecutor(max_workers=len(running)) as pool:
        measured = pool.map(memory_usage_mib, running)
    usage = {c.name: round(mib, 3) for c, mib in zip(running, measured, strict=True)}
    ctx.evidence.update(memory_mib=usage, total_mib=round(sum(usage.values()), 2))
    total = sum(usage.values())
    ctx.notes.append(f"Measured: {len(usage)} containers use {total:.1f} MiB of memory in all, "
                     f"{total / len(usage):.2f} MiB each.")
    heavy = [name for name, mib in usage.items() if mib >= DENSE_MAX_MIB]
    ctx.result("light", not heavy, "light", heavy=", ".join(heavy), DENSE_MAX_MIB=DENSE_MAX_MIB)


@density.solve
def _solve_density(ctx: SolveContext) -> None:
    for index in range(DENSE_COUNT):
        ctx.run("busybox:latest", ["sleep", "3600"], name=f"{DENSE_PREFIX}{index}")
