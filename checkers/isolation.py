"""Lab 02 — isolation: namespaces, resource limits, side-by-side versions, borrowed tools.

Each exercise below is one unit: sub-checks with points, student-facing text, then
the check (live engine state only) and the reference solution.
"""

from __future__ import annotations

import http.client
import json
import shutil
from typing import TYPE_CHECKING, Any

from checkers import CheckContext, Exercise, SolveContext, Text
from checkers._core import net

if TYPE_CHECKING:
    from docker.models.containers import Container

LAB = "02-isolation"
MiB = 2**20


def _exec(container: Container, *command: str) -> str:
    """``docker exec NAME COMMAND``: stdout of a command run inside the container."""
    result = container.exec_run(list(command), demux=False)
    return (result.output or b"").decode("utf-8", "replace").strip()


# --- 1. Namespaces seen from inside ------------------------------------------------------

namespaces = Exercise(
    id="isolation.namespaces",
    lab=LAB,
    subchecks={"uts": 1, "pid": 2, "net": 1},
    text=Text(
        title="See namespaces from the inside",
        task=(
            "Run `dy-ns` from `busybox` in the background (`sleep 3600`) with its own hostname "
            "`dy-box`. Then run `dy-ns-peer` (also `sleep 3600`) that joins dy-ns's PID and "
            "network namespaces, and look around inside both with `docker exec`."
        ),
        subchecks={
            "uts": "inside dy-ns, `hostname` answers dy-box (its own UTS namespace)",
            "pid": "dy-ns-peer shares dy-ns's PID namespace and sees its processes",
            "net": "dy-ns-peer shares dy-ns's network namespace",
        },
        hints=(
            "`docker run` has a `--hostname` option; the container must keep running.",
            "`--pid` and `--network` accept `container:<name>` to join another container's "
            "namespace instead of getting a new one.",
            "From inside dy-ns-peer, `ps` should list both `sleep` processes.",
        ),
        reasons={
            "uts": "Inside dy-ns, `hostname` printed {actual!r}, not 'dy-box'.",
            "pid": "dy-ns-peer's PID mode is {mode!r}; it should join dy-ns (container:dy-ns). "
                   "Its `ps` shows {count} process(es).",
            "net": "dy-ns-peer's network mode is {mode!r}; it should join dy-ns (container:dy-ns).",
        },
    ),
)


def _joins(mode: str, target: Container) -> bool:
    """True when a namespace mode like ``container:<id|name>`` points at ``target``."""
    kind, _, ref = mode.partition(":")
    return kind == "container" and ref in {target.id, target.name, target.id[:12]}


@namespaces.check
def _check_namespaces(ctx: CheckContext) -> None:
    box = ctx.container("dy-ns")
    ctx.require_running(box)
    hostname = _exec(box, "hostname")
    ctx.evidence["dy-ns hostname"] = hostname
    ctx.result("uts", hostname == "dy-box", "uts", actual=hostname)
    peer = ctx.container("dy-ns-peer")
    ctx.require_running(peer)
    host_config = peer.attrs["HostConfig"]
    pid_mode, net_mode = host_config.get("PidMode", ""), host_config.get("NetworkMode", "")
    processes = [line for line in _exec(peer, "ps", "-o", "pid,comm").splitlines()[1:] if line]
    ctx.evidence.update(peer_pid_mode=pid_mode, peer_net_mode=net_mode, peer_ps=processes)
    sleeps = sum(1 for line in processes if line.split()[-1] == "sleep")
    ctx.result("pid", _joins(pid_mode, box) and sleeps >= 2, "pid",
               mode=pid_mode, count=len(processes))
    ctx.result("net", _joins(net_mode, box), "net", mode=net_mode)


@namespaces.solve
def _solve_namespaces(ctx: SolveContext) -> None:
    ctx.run("busybox:latest", ["sleep", "3600"], name="dy-ns", hostname="dy-box")
    ctx.run("busybox:latest", ["sleep", "3600"], name="dy-ns-peer",
            pid_mode="container:dy-ns", network_mode="container:dy-ns")


# --- 2. A memory limit, and the OOM killer --------------------------------------------------

MEMORY_LIMIT = 32 * MiB
MEMORY_HOG = "x=a; while true; do x=$x$x; done"

memory_limit = Exercise(
    id="isolation.memory-limit",
    lab=LAB,
    subchecks={"limit": 1, "no-swap": 1, "oom-killed": 2},
    text=Text(
        title="Cap memory and watch the OOM killer act",
        task=(
            "Run `dy-oom` from `busybox` with a 32 MiB memory limit and no extra swap, running a "
            f"shell loop that keeps doubling a string: `sh -c '{MEMORY_HOG}'`. The kernel should "
            "kill it when it reaches the limit, while the host carries on."
        ),
        subchecks={
            "limit": "dy-oom's memory limit is 32 MiB",
            "no-swap": "its memory+swap limit equals its memory limit (no swap to escape into)",
            "oom-killed": "the kernel's OOM killer stopped it (exit code 137)",
        },
        hints=(
            "`docker run --help` lists `--memory`; its value takes a unit suffix like `m`.",
            "Without `--memory-swap` set to the same value, the container may swap instead of "
            "being killed.",
            "`docker inspect dy-oom --format '{{.State.OOMKilled}}'` (in a terminal or a %%bash "
            "cell) shows what the check reads.",
        ),
        reasons={
            "limit": "dy-oom's memory limit is {actual}; it should be 32 MiB (33554432 bytes).",
            "no-swap": "dy-oom's memory+swap limit is {actual}; set it equal to the memory limit.",
            "oom-killed": "dy-oom is {status} with exit code {code} and OOMKilled={oom}. It must "
                          "run the doubling loop until the kernel kills it.",
        },
    ),
)


def _bytes(value: int) -> str:
    return "unlimited" if not value or value < 0 else f"{value / MiB:g} MiB"


@memory_limit.check
def _check_memory_limit(ctx: CheckContext) -> None:
    container = ctx.container("dy-oom")
    host_config = container.attrs["HostConfig"]
    memory, swap = host_config.get("Memory", 0), host_config.get("MemorySwap", 0)
    state = container.attrs["State"]
    ctx.evidence.update(memory=memory, memory_swap=swap, oom_killed=state.get("OOMKilled"),
                        exit_code=state.get("ExitCode"), finished=state.get("FinishedAt"))
    ctx.result("limit", memory == MEMORY_LIMIT, "limit", actual=_bytes(memory))
    ctx.result("no-swap", swap == memory and memory > 0, "no-swap", actual=_bytes(swap))
    ctx.result(
        "oom-killed", bool(state.get("OOMKilled")) and state.get("ExitCode") == 137, "oom-killed",
        status=container.status, code=state.get("ExitCode"), oom=state.get("OOMKilled"),
    )


@memory_limit.solve
def _solve_memory_limit(ctx: SolveContext) -> None:
    hog = ctx.run("busybox:latest", ["sh", "-c", MEMORY_HOG], name="dy-oom",
                  mem_limit=MEMORY_LIMIT, memswap_limit=MEMORY_LIMIT)
    ctx.wait(hog, timeout=60)


# --- 3. A CPU quota ----------------------------------------------------------------------

CPU_SPIN = "while :; do :; done"

cpu_quota = Exercise(
    id="isolation.cpu-quota",
    lab=LAB,
    subchecks={"quota": 1, "running": 1, "throttled": 2},
    text=Text(
        title="Give a container half a CPU",
        task=(
            "Run `dy-cpu` from `busybox` in the background with a quota of half a CPU, running "
            f"a busy loop: `sh -c '{CPU_SPIN}'`. Watch it in `docker stats`: it cannot go past "
            "50 %, because the kernel throttles it."
        ),
        subchecks={
            "quota": "dy-cpu may use at most 0.5 CPU",
            "running": "dy-cpu is running the busy loop now",
            "throttled": "the kernel has throttled it (its cgroup counts throttled periods)",
        },
        hints=(
            "`docker run --cpus` takes a decimal number of CPUs.",
            "The loop must keep running, so start the container with `-d`.",
            "`docker stats dy-cpu` shows CPU % hovering around 50.",
        ),
        reasons={
            "quota": "dy-cpu may use {actual} CPU; it should be limited to 0.5.",
            "throttled": "The kernel has not throttled dy-cpu yet ({periods} periods, "
                         "{throttled} throttled). Is it running the busy loop?",
        },
    ),
)


def cpu_limit(host_config: dict[str, Any]) -> float | None:
    """The CPU limit from ``--cpus`` (NanoCpus) or ``--cpu-quota/--cpu-period``."""
    if host_config.get("NanoCpus"):
        return float(host_config["NanoCpus"]) / 1e9
    quota, period = host_config.get("CpuQuota") or 0, host_config.get("CpuPeriod") or 100_000
    return quota / period if quota > 0 else None


@cpu_quota.check
def _check_cpu_quota(ctx: CheckContext) -> None:
    container = ctx.container("dy-cpu")
    limit = cpu_limit(container.attrs["HostConfig"])
    ctx.evidence["cpus"] = limit
    ctx.result("quota", limit is not None and abs(limit - 0.5) < 1e-6, "quota",
               actual="unlimited" if limit is None else f"{limit:g}")
    ctx.require_running(container)
    ctx.result("running", True)
    stats = container.stats(stream=False, one_shot=True)
    throttling = stats.get("cpu_stats", {}).get("throttling_data", {})
    ctx.evidence["throttling"] = throttling
    ctx.result("throttled", throttling.get("throttled_periods", 0) > 0, "throttled",
               periods=throttling.get("periods", 0),
               throttled=throttling.get("throttled_periods", 0))


@cpu_quota.solve
def _solve_cpu_quota(ctx: SolveContext) -> None:
    import time

    container = ctx.run("busybox:latest", ["sh", "-c", CPU_SPIN], name="dy-cpu",
                        nano_cpus=500_000_000)
    # The quota is enforced per 100 ms period; a few periods make the throttling visible.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stats = container.stats(stream=False, one_shot=True)
        if stats.get("cpu_stats", {}).get("throttling_data", {}).get("throttled_periods", 0):
            return
        time.sleep(0.2)


# --- 4. A pids limit ------------------------------------------------------------------------

PIDS_LIMIT = 20
FORKER = "for i in $(seq 50); do (sleep 3600 &) || echo refused; done; exec sleep 3600"

pids_limit = Exercise(
    id="isolation.pids-limit",
    lab=LAB,
    subchecks={"limit": 1, "capped": 1, "refused": 2},
    text=Text(
        title="Stop a fork bomb with a pids limit",
        task=(
            f"Run `dy-pids` from `busybox` in the background with a limit of {PIDS_LIMIT} "
            f"processes, running a loop that tries to start 50 sleeping processes: "
            f"`sh -c '{FORKER}'`. The kernel refuses the extra forks and the host stays healthy."
        ),
        subchecks={
            "limit": f"dy-pids may run at most {PIDS_LIMIT} processes",
            "capped": f"it runs no more than {PIDS_LIMIT} processes right now",
            "refused": "its log shows the kernel refusing to fork",
        },
        hints=(
            "`docker run --help | grep pids` finds the option.",
            "Run it with `-d`; `docker logs dy-pids` then shows what the shell said.",
            "`docker top dy-pids` lists the processes the container runs.",
        ),
        reasons={
            "limit": "dy-pids has a pids limit of {actual}; it should be {PIDS_LIMIT}.",
            "capped": "dy-pids runs {current} processes, above the limit of {PIDS_LIMIT}.",
            "refused": "dy-pids's log has no \"can't fork\" message yet. Is it running the loop "
                       "that starts 50 sleeps?",
        },
    ),
)


@pids_limit.check
def _check_pids_limit(ctx: CheckContext) -> None:
    container = ctx.container("dy-pids")
    limit = container.attrs["HostConfig"].get("PidsLimit") or 0
    ctx.result("limit", limit == PIDS_LIMIT, "limit",
               actual=limit if limit > 0 else "unlimited", PIDS_LIMIT=PIDS_LIMIT)
    # `docker top` lists the container's processes in one quick call; stats waits for a tick.
    current = len(container.top().get("Processes") or []) if container.status == "running" else 0
    log = ctx.output(container, tail=200)
    refusals = [line for line in log.splitlines() if "can't fork" in line]
    ctx.evidence.update(pids_limit=limit, pids_current=current, refusals=len(refusals))
    if container.status == "running":
        ctx.result("capped", 0 < current <= PIDS_LIMIT, "capped", current=current,
                   PIDS_LIMIT=PIDS_LIMIT)
    else:
        ctx.result("capped", False, "not_running", name="dy-pids", status=container.status)
    ctx.result("refused", bool(refusals), "refused")


@pids_limit.solve
def _solve_pids_limit(ctx: SolveContext) -> None:
    import time

    container = ctx.run("busybox:latest", ["sh", "-c", FORKER], name="dy-pids",
                        pids_limit=PIDS_LIMIT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and b"can't fork" not in container.logs():
        time.sleep(0.2)


# --- 5. Two versions of one API, side by side ------------------------------------------------

API_PORT = 8000
API_VERSIONS = {
    "v1": ("dy-api-v1", "dockyard/api:1", "1"),
    "v2": ("dy-api-v2", "dockyard/api:2", "2"),
}

side_by_side = Exercise(
    id="isolation.side-by-side",
    lab=LAB,
    images=("api-v1", "api-v2"),
    subchecks={"v1": 1, "v2": 1, "ports": 1, "answers": 2},
    text=Text(
        title="Run two versions of an API side by side",
        task=(
            "Run `dy-api-v1` from `dockyard/api:1` and `dy-api-v2` from `dockyard/api:2` at the "
            f"same time. Both serve on port {API_PORT} inside; publish each on its own host "
            "port (8081 and 8082 work well) and ask each for `/api/version`."
        ),
        subchecks={
            "v1": "dy-api-v1 runs dockyard/api:1",
            "v2": "dy-api-v2 runs dockyard/api:2",
            "ports": f"each publishes its port {API_PORT} on a different host port",
            "answers": "each answers /api/version with its own version",
        },
        hints=(
            "`docker run -d -p HOST:CONTAINER` publishes a port; the container side is "
            f"{API_PORT} for both.",
            "Two containers cannot publish the same host port: if 8081 is taken, the engine "
            "says 'port is already allocated'; pick another.",
            "`curl http://localhost:8081/api/version` (or open it in a browser) shows the answer.",
        ),
        reasons={
            "ports": "Published host ports: {ports}. Each container needs its own host port "
                     f"mapped to {API_PORT}.",
            "answers": "Asking each container for /api/version gave: {answers}.",
        },
    ),
)


def _published_port(container: Container) -> tuple[str, int] | None:
    return net.published_port(container, API_PORT)


_engine_host = net.engine_host


def ask_version(host: str, port: int, timeout: float = 3.0) -> str:
    """GET /api/version; the version string, or a short description of what went wrong."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/api/version")
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
        if response.status != 200:
            return f"HTTP {response.status}"
        return str(json.loads(body).get("version", body))
    except (OSError, ValueError) as exc:
        return f"no answer ({exc})"
    finally:
        connection.close()


@side_by_side.check
def _check_side_by_side(ctx: CheckContext) -> None:
    ports: dict[str, tuple[str, int] | None] = {}
    answers: dict[str, str] = {}
    for key, (name, image, _version) in API_VERSIONS.items():
        container = ctx.find(name)
        if container is None:
            ctx.result(key, False, "missing_container", name=name)
            continue
        if container.attrs["Config"]["Image"] != image and image not in container.image.tags:
            ctx.result(key, False, "wrong_image", name=name, expected=image,
                       actual=container.attrs["Config"]["Image"])
            continue
        if container.status != "running":
            ctx.result(key, False, "not_running", name=name, status=container.status)
            continue
        ctx.result(key, True)
        ports[name] = published = _published_port(container)
        if published:
            host = _engine_host(ctx.engine, published[0])
            answers[name] = ask_version(host, published[1])
    ctx.evidence.update(ports=ports, answers=answers)
    if len(ports) < len(API_VERSIONS):
        raise ctx.blocked_by("v1" if "dy-api-v1" not in ports else "v2")
    host_ports = [p[1] for p in ports.values() if p]
    ctx.result("ports", len(host_ports) == 2 and len(set(host_ports)) == 2, "ports",
               ports={n: (p[1] if p else "none") for n, p in ports.items()})
    expected = {name: version for name, _, version in API_VERSIONS.values()}
    ctx.result("answers", answers == expected, "answers", answers=answers or "nothing")


_free_port = net.free_port


@side_by_side.solve
def _solve_side_by_side(ctx: SolveContext) -> None:
    import time

    for offset, (name, image, _) in enumerate(API_VERSIONS.values(), start=1):
        port = _free_port(8080 + offset)
        ctx.run(image, name=name, ports={f"{API_PORT}/tcp": ("127.0.0.1", port)})
    # busybox httpd binds within milliseconds; wait until both answer.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        running = [ctx.client.containers.get(n) for n, _, _ in API_VERSIONS.values()]
        if all((p := _published_port(c)) and ask_version("127.0.0.1", p[1], 1).isdigit()
               for c in running):
            return
        time.sleep(0.1)


# --- 6. A tool without installing it -----------------------------------------------------------

JQ_FILTER = '[.ships[] | select(.type == "container")] | length'
JQ_ANSWER = "5"

borrowed_tool = Exercise(
    id="isolation.borrowed-tool",
    lab=LAB,
    images=("tools",),
    subchecks={"image": 1, "ran-jq": 1, "answer": 2},
    text=Text(
        title="Use a tool without installing it",
        task=(
            "The `dockyard/tools:1` image has `jq` and a file `/data/fleet.json`. Without "
            "installing anything on your machine, run a container `dy-jq` from it that uses jq "
            "to count the ships whose type is \"container\", and keep the finished container."
        ),
        subchecks={
            "image": "dy-jq was created from dockyard/tools:1",
            "ran-jq": "it ran jq and exited 0",
            "answer": "it printed the right count",
        },
        hints=(
            "Everything after the image name in `docker run` is the command run inside: "
            "start it with `jq`.",
            "jq's `select(.type == \"container\")` keeps matching items; `length` counts an "
            "array.",
            "Put the filter in single quotes so your shell leaves the double quotes alone.",
        ),
        reasons={
            "ran-jq": "dy-jq ran {command!r} and is {status} with exit code {code}; it should "
                      "run jq and exit 0.",
            "answer": "dy-jq printed {actual!r}; that is not the number of container ships.",
        },
    ),
)


@borrowed_tool.check
def _check_borrowed_tool(ctx: CheckContext) -> None:
    container = ctx.container("dy-jq")
    image = container.attrs["Config"]["Image"]
    ctx.result("image", image == "dockyard/tools:1" or "dockyard/tools:1" in container.image.tags,
               "wrong_image", name="dy-jq", expected="dockyard/tools:1", actual=image)
    command = [container.attrs.get("Path", ""), *container.attrs.get("Args", [])]
    state = container.attrs["State"]
    ctx.evidence.update(command=command, exit_code=state.get("ExitCode"),
                        host_has_jq=shutil.which("jq") is not None)
    ran_jq = command[0].rsplit("/", 1)[-1] == "jq" and container.status == "exited" and \
        state.get("ExitCode") == 0
    ctx.result("ran-jq", ran_jq, "ran-jq", command=" ".join(command), status=container.status,
               code=state.get("ExitCode"))
    output = ctx.output(container, stderr=False)
    ctx.evidence["output"] = output
    ctx.result("answer", output == JQ_ANSWER, "answer", actual=output)


@borrowed_tool.solve
def _solve_borrowed_tool(ctx: SolveContext) -> None:
    ctx.wait(ctx.run("dockyard/tools:1", ["jq", JQ_FILTER, "/data/fleet.json"], name="dy-jq"))
