"""Lab 04 — multi-container apps: a network, a volume, and three tiers run by Compose.

Each exercise below is one unit: sub-checks with points, student-facing text, then
the check and the reference solution. The first two read the engine's live state;
the Compose file is graded statically (PyYAML plus the Compose specification's keys,
:mod:`kernel_helpers.compose`), so it grades with no engine at all, and the stack it
describes is then graded live, end to end through its front end.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checkers import CheckContext, Exercise, SolveContext, SolveError, Text, Unmet
from checkers._core import net
from checkers._core import text as texts
from kernel_helpers import compose, workspace
from kernel_helpers import engine as eng

if TYPE_CHECKING:
    from docker.models.containers import Container

LAB = "04-multi-container"


def _exec(container: Container, *command: str) -> tuple[int, str]:
    """``docker exec NAME COMMAND``: exit code and output (stdout and stderr)."""
    result = container.exec_run(list(command), demux=False)
    return int(result.exit_code or 0), (result.output or b"").decode("utf-8", "replace").strip()


def _lab_start(ctx: CheckContext, fallback: datetime) -> datetime:
    from kernel_helpers import progress

    started = progress.store().lab_started(LAB)
    return datetime.fromisoformat(started) if started else fallback


def _events(ctx: CheckContext, since: datetime, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """``docker events --since T --until now --filter ...``, read once and closed."""
    stream = ctx.client.events(
        since=f"{since.timestamp():.6f}", until=f"{time.time():.6f}", decode=True,
        filters=filters,
    )
    try:
        return list(stream)
    finally:
        stream.close()


def _network_owned_or_refuse(ctx: SolveContext, name: str) -> Any:
    """The network ``name`` if Dockyard may reuse it; SolveError if a student made it."""
    for network in ctx.client.networks.list(names=[name]):
        if network.name != name:
            continue
        owned = {o.resource_id for o in ctx.store.owned(exercise=ctx.exercise.id)}
        if (network.attrs.get("Labels") or {}).get(eng.LAB_LABEL) == LAB or network.id in owned:
            return network
        raise SolveError(f"a network named '{name}' exists that Dockyard did not create, so it "
                         f"will not be touched. Remove it yourself (`docker network rm {name}`).")
    return None


# --- 1. A user-defined network ------------------------------------------------------------

NET = "dy-mc-net"
FRONT, BACK, OUTSIDER = "dy-mc-front", "dy-mc-back", "dy-mc-outsider"

network = Exercise(
    id="multi-container.network",
    lab=LAB,
    subchecks={"network": 1, "members": 1, "by-name": 2, "isolated": 2},
    text=Text(
        title="Let two containers find each other by name",
        task=(
            f"Create a network `{NET}`. Run `{FRONT}` and `{BACK}` from `busybox` "
            f"(`sleep 3600`, in the background) on it, and `{OUTSIDER}` (the same, but left on "
            f"the default network). Then try `ping -c1 {BACK}` from inside `{FRONT}` and from "
            f"inside `{OUTSIDER}`."
        ),
        subchecks={
            "network": f"{NET} exists and is a user-defined bridge network",
            "members": f"{FRONT} and {BACK} run on {NET}; {OUTSIDER} runs, but not on it",
            "by-name": f"from inside {FRONT}, the name {BACK} resolves and answers",
            "isolated": f"from inside {OUTSIDER}, {BACK} is reachable neither by name nor by IP",
        },
        hints=(
            "`docker network create NAME` makes a bridge network; `docker run --network NAME` "
            "puts a container on it.",
            "Docker's built-in DNS answers container names only on user-defined networks, "
            "not on the default `bridge`.",
            f"`docker exec {FRONT} ping -c1 -W1 {BACK}` runs the same test the check runs.",
        ),
        reasons={
            "network": f"There is no network named '{NET}' yet (`docker network ls`).",
            "driver": f"'{NET}' uses the '{{driver}}' driver; create it as a bridge network "
                      "(the default driver).",
            "not_member": "'{name}' is attached to {networks}, but it should be on " + NET + ".",
            "outsider_member": f"'{OUTSIDER}' is attached to {NET}; leave it on the default "
                               "network so it shows what isolation looks like.",
            "by-name": f"From inside {FRONT}, `ping -c1 -W1 {BACK}` failed: {{output}}",
            "isolated": f"From inside {OUTSIDER}, {BACK} answered ({{how}}), so the two networks "
                        f"are not apart. Is {OUTSIDER} really on another network?",
        },
    ),
)


def _network_names(container: Container) -> list[str]:
    return sorted((container.attrs.get("NetworkSettings", {}).get("Networks") or {}).keys())


@network.check
def _check_network(ctx: CheckContext) -> None:
    from docker.errors import NotFound

    try:
        net = ctx.client.networks.get(NET)
    except NotFound:
        net = None
    if net is None or net.name != NET:
        ctx.result("network", False, "network")
        raise ctx.blocked_by("network")
    ctx.grade("network", net.id, eng.parse_time(net.attrs.get("Created", "")))
    driver = net.attrs.get("Driver", "")
    ctx.evidence["network"] = {"id": net.id, "driver": driver, "created": net.attrs.get("Created")}
    if not ctx.result("network", driver == "bridge", "driver", driver=driver):
        raise ctx.blocked_by("network")
    members = {name: ctx.container(name) for name in (FRONT, BACK, OUTSIDER)}
    for container in members.values():
        ctx.require_running(container)
    attached = {name: _network_names(c) for name, c in members.items()}
    ctx.evidence["networks"] = attached
    for name in (FRONT, BACK):
        if NET not in attached[name]:
            raise Unmet("not_member", name=name, networks=", ".join(attached[name]) or "nothing")
    if NET in attached[OUTSIDER]:
        raise Unmet("outsider_member")
    ctx.result("members", True)
    code, output = _exec(members[FRONT], "ping", "-c1", "-W1", BACK)
    ctx.evidence["front → back by name"] = {"exit": code, "output": output}
    ctx.result("by-name", code == 0, "by-name", output=output.splitlines()[-1] if output else code)
    back_ip = (members[BACK].attrs["NetworkSettings"]["Networks"][NET] or {}).get("IPAddress", "")
    by_name, name_out = _exec(members[OUTSIDER], "ping", "-c1", "-W1", BACK)
    by_ip, ip_out = _exec(members[OUTSIDER], "ping", "-c1", "-W1", back_ip) if back_ip else (1, "")
    ctx.evidence["outsider → back"] = {
        "by name": {"exit": by_name, "output": name_out},
        "by ip": {"ip": back_ip, "exit": by_ip, "output": ip_out},
    }
    how = " and ".join(w for w, code in (("by name", by_name), (f"by IP {back_ip}", by_ip))
                       if code == 0)
    ctx.result("isolated", by_name != 0 and by_ip != 0, "isolated", how=how)


@network.solve
def _solve_network(ctx: SolveContext) -> None:
    if _network_owned_or_refuse(ctx, NET) is None:
        ctx.client.networks.create(NET, driver="bridge", labels=ctx.labels)
    for name in (FRONT, BACK):
        ctx.run("busybox:latest", ["sleep", "3600"], name=name, network=NET)
    ctx.run("busybox:latest", ["sleep", "3600"], name=OUTSIDER)


# --- 2. A named volume outlives its container ---------------------------------------------

VOLUME = "dy-mc-data"
WRITER, READER = "dy-mc-writer", "dy-mc-reader"
MESSAGE_FILE = "/data/message.txt"

volume = Exercise(
    id="multi-container.volume",
    lab=LAB,
    subchecks={"volume": 1, "writer-gone": 1, "reader": 1, "data": 2},
    text=Text(
        title="Keep data in a named volume across containers",
        task=(
            f"Create a volume `{VOLUME}`. Run `{WRITER}` from `busybox` with the volume at "
            f"`/data`, writing a line of text to `{MESSAGE_FILE}`; then remove `{WRITER}`. "
            f"Afterwards run `{READER}` (`sleep 3600`, in the background) with the same volume "
            "at `/data`: the file is still there."
        ),
        subchecks={
            "volume": f"the volume {VOLUME} exists",
            "writer-gone": f"a container that used {VOLUME} was removed (the engine saw it go)",
            "reader": f"{READER} runs with {VOLUME} at /data, created after that removal",
            "data": f"{READER} reads {MESSAGE_FILE}, written before {READER} existed",
        },
        hints=(
            "`docker volume create NAME`; `docker run -v NAME:/data ...` mounts it.",
            "The writer's command needs a shell for the redirection: `sh -c 'echo ... > FILE'`.",
            "`docker rm` removes the finished writer; the volume stays until you remove it with "
            "`docker volume rm`.",
        ),
        reasons={
            "volume": f"There is no volume named '{VOLUME}' yet (`docker volume ls`).",
            "writer-gone": f"The engine's recent events show no container that mounted "
                           f"{VOLUME} and was then removed{{since}}. Run the writer with the "
                           f"volume, then `docker rm` it. (The engine keeps only its most recent "
                           "events, so a long wait on a busy engine can lose them: repeat the "
                           "steps.)",
            "no_mount": f"'{READER}' does not mount {VOLUME} at /data; its mounts: {{mounts}}.",
            "reader_early": f"'{READER}' was created at {{created}}, before the writer was removed "
                            "at {removed}. Create the reader after removing the writer.",
            "data": f"Inside {READER}, `cat {MESSAGE_FILE}` gave: {{output}}",
            "data_late": f"{MESSAGE_FILE} was last changed at {{mtime}}, after the writer was "
                         "removed ({removed}): the data must come from the removed container.",
        },
    ),
)


def _mounts_volume(container: Container, name: str, destination: str) -> bool:
    return any(m.get("Type") == "volume" and m.get("Name") == name
               and m.get("Destination") == destination
               for m in container.attrs.get("Mounts") or [])


@volume.check
def _check_volume(ctx: CheckContext) -> None:
    from docker.errors import NotFound

    try:
        vol = ctx.client.volumes.get(VOLUME)
    except NotFound:
        ctx.result("volume", False, "volume")
        raise ctx.blocked_by("volume") from None
    vol_created = eng.parse_time(vol.attrs.get("CreatedAt", "").replace(" ", "T")) \
        if vol.attrs.get("CreatedAt") else datetime.now(timezone.utc)
    ctx.grade("volume", vol.name, vol_created)
    ctx.evidence["volume"] = {"name": vol.name, "created": vol.attrs.get("CreatedAt")}
    ctx.result("volume", True)
    reader = ctx.find(READER)
    since = min(vol_created, _lab_start(ctx, vol_created)) - timedelta(seconds=1)
    events = _events(ctx, since, {"type": ["volume", "container"]})
    mounted_by = {e.get("Actor", {}).get("Attributes", {}).get("container", "")
                  for e in events if e.get("Type") == "volume" and e.get("Action") == "mount"
                  and e.get("Actor", {}).get("ID") == VOLUME}
    removals = [e for e in events if e.get("Type") == "container"
                and e.get("Action") == "destroy" and e.get("id") in mounted_by
                and (reader is None or e.get("id") != reader.id)]
    ctx.evidence["removed after mounting"] = [
        {"id": e.get("id", "")[:12], "name": e.get("Actor", {}).get("Attributes", {}).get("name"),
         "destroyed": eng.parse_time_ns(e).isoformat()} for e in removals]
    if not ctx.result("writer-gone", bool(removals), "writer-gone",
                      since=f" since {since:%H:%M:%S} UTC"):
        raise ctx.blocked_by("writer-gone")
    if reader is None:
        raise Unmet("missing_container", name=READER)
    ctx.require_running(reader)
    if not _mounts_volume(reader, VOLUME, "/data"):
        mounts = [f"{m.get('Name') or m.get('Source')}:{m.get('Destination')}"
                  for m in reader.attrs.get("Mounts") or []]
        raise Unmet("no_mount", mounts=", ".join(mounts) or "none")
    created = eng.container_created(reader)
    before = [e for e in removals if eng.parse_time_ns(e) <= created]
    if not before:
        raise Unmet("reader_early", created=f"{created:%H:%M:%S.%f}",
                    removed=f"{eng.parse_time_ns(removals[-1]):%H:%M:%S.%f}")
    writer = before[-1]
    removed_at = eng.parse_time_ns(writer)
    ctx.result("reader", True)
    code, output = _exec(reader, "cat", MESSAGE_FILE)
    _, mtime_text = _exec(reader, "stat", "-c", "%Y", MESSAGE_FILE)
    ctx.evidence.update(reader_created=created.isoformat(), writer_removed=removed_at.isoformat(),
                        writer_id=writer.get("id", ""), content=output, mtime=mtime_text)
    if not ctx.result("data", code == 0 and bool(output), "data", output=output or "(empty)"):
        return
    with contextlib.suppress(ValueError):
        mtime = datetime.fromtimestamp(int(mtime_text), tz=timezone.utc)
        # mtime has whole seconds: written before the removal means mtime <= removal.
        if mtime > removed_at:
            ctx.result("data", False, "data_late", mtime=f"{mtime:%H:%M:%S}",
                       removed=f"{removed_at:%H:%M:%S}")
            return
    ctx.notes.append(f"The writer {writer.get('id', '')[:12]} was removed at "
                     f"{removed_at:%H:%M:%S.%f} UTC; {READER} was created "
                     f"{(created - removed_at).total_seconds():.2f} s later and reads {output!r}.")


@volume.solve
def _solve_volume(ctx: SolveContext) -> None:
    from docker.errors import NotFound

    try:
        vol = ctx.client.volumes.get(VOLUME)
        owned = {o.resource_id for o in ctx.store.owned(exercise=ctx.exercise.id)}
        if (vol.attrs.get("Labels") or {}).get(eng.LAB_LABEL) != LAB and vol.name not in owned:
            raise SolveError(f"a volume named '{VOLUME}' exists that Dockyard did not create; "
                             f"remove it yourself (`docker volume rm {VOLUME}`).")
    except NotFound:
        ctx.client.volumes.create(VOLUME, labels=ctx.labels)
    ctx.remove_container(READER)
    writer = ctx.run("busybox:latest",
                     ["sh", "-c", f"echo 'written by {WRITER}' > {MESSAGE_FILE}"],
                     name=WRITER, volumes={VOLUME: {"bind": "/data", "mode": "rw"}})
    if ctx.wait(writer) != 0:
        raise SolveError(f"{WRITER} could not write {MESSAGE_FILE}")
    writer.remove()
    ctx.run("busybox:latest", ["sleep", "3600"], name=READER,
            volumes={VOLUME: {"bind": "/data", "mode": "rw"}})


# --- 3. The three tiers as a Compose file (static) ----------------------------------------

PROJECT = "dy-mc"
COMPOSE_FILE = "compose.yaml"
TIERS = ("web", "api", "db")
#: Who must wait for whom to be healthy: service -> the service it depends on.
START_ORDER = {"api": "db", "web": "api"}
WEB_PORT = 8088
IMAGES = {"web": "dockyard/mc-web:1", "api": "dockyard/mc-api:1", "db": "dockyard/mc-db:1"}
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


def compose_path() -> Path:
    return workspace.lab_folder(LAB) / COMPOSE_FILE


def reference_compose(port: int = WEB_PORT, exercise_id: str = "multi-container.compose-up") -> str:
    """The reference Compose file: three lab images, healthchecks, start order, labels."""
    labels = (f'      dockyard.lab: "{LAB}"\n'
              f'      dockyard.exercise: "{exercise_id}"\n')
    return f"""\
# Three tiers as one unit: `-p {PROJECT} up -d` (with docker compose or docker-compose).
services:
  db:
    image: {IMAGES["db"]}
    volumes:
      - counts:/data
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 2s
      timeout: 5s
      retries: 20
    labels:
{labels}
  api:
    image: {IMAGES["api"]}
    environment:
      REDIS_HOST: db
    depends_on:
      db:
        condition: service_healthy
    healthcheck:
      test: ["CMD", "python3", "/app/app.py", "health"]
      interval: 2s
      timeout: 5s
      retries: 20
    labels:
{labels}
  web:
    image: {IMAGES["web"]}
    ports:
      - "127.0.0.1:{port}:80"
    depends_on:
      api:
        condition: service_healthy
    labels:
{labels}
volumes:
  counts:
    labels:
{labels}
networks:
  default:
    labels:
{labels}"""


@dataclass
class StaticResult:
    """One static sub-check of the Compose file: passed, and the reason's key and fields."""

    key: str
    passed: bool
    reason_key: str = ""
    fields: dict[str, Any] = field(default_factory=dict)


def _healthcheck_test(service: Any) -> bool:
    check = service.get("healthcheck") if isinstance(service, dict) else None
    return isinstance(check, dict) and bool(check.get("test")) and not check.get("disable")


def grade_compose_file(path: Path) -> tuple[list[StaticResult], compose.ComposeFile | None]:
    """Grade ``path`` without an engine: one :class:`StaticResult` per static sub-check.

    The order is parses, known-keys, tiers, healthchecks, start-order, ports; a file that
    does not parse stops the grading there (the later results are absent).
    """
    results: list[StaticResult] = []
    if not path.is_file():
        return [StaticResult("parses", False, "missing", {"path": path})], None
    try:
        parsed = compose.read(path)
    except compose.ComposeFileError as exc:
        where = f" (line {exc.line}, column {exc.column})" if exc.line else ""
        return [StaticResult("parses", False, "yaml", {"error": str(exc), "where": where})], None
    except (OSError, UnicodeDecodeError) as exc:
        return [StaticResult("parses", False, "unreadable", {"error": exc})], None
    results.append(StaticResult("parses", True))
    document, services = parsed.document, parsed.services

    unknown = compose.unknown_keys(document)
    if unknown:
        first = unknown[0]
        guess = f" (did you mean '{first.suggestion}'?)" if first.suggestion else ""
        more = f" ({len(unknown) - 1} more after it)" if len(unknown) > 1 else ""
        results.append(StaticResult("known-keys", False, "unknown_key",
                                    {"name": first.key, "where": first.where, "guess": guess,
                                     "more": more}))
    elif not isinstance(document.get("services"), dict) or not services:
        results.append(StaticResult("known-keys", False, "no_services"))
    else:
        results.append(StaticResult("known-keys", True))

    missing = [t for t in TIERS if not isinstance(services.get(t), dict)]
    no_image = [t for t in TIERS if t not in missing
                and not (services[t].get("image") or services[t].get("build"))]
    if missing:
        results.append(StaticResult("tiers", False, "tiers",
                                    {"missing": ", ".join(missing),
                                     "found": ", ".join(map(str, services)) or "none"}))
    elif no_image:
        results.append(StaticResult("tiers", False, "no_image", {"services": ", ".join(no_image)}))
    else:
        results.append(StaticResult("tiers", True))

    unchecked = [t for t in START_ORDER.values() if not _healthcheck_test(services.get(t))]
    results.append(StaticResult("healthchecks", not unchecked, "healthchecks",
                                {"services": ", ".join(unchecked)}))

    problems = []
    for service, on in START_ORDER.items():
        body = services.get(service)
        deps = {d.service: d for d in compose.dependencies(body if isinstance(body, dict) else {})}
        dep = deps.get(on)
        if dep is None:
            problems.append(f"'{service}' has no depends_on on '{on}'")
        elif dep.short_form:
            problems.append(f"'{service}' lists '{on}' in the short form of depends_on, which "
                            "waits only for the container to start")
        elif dep.condition != "service_healthy":
            problems.append(f"'{service}' waits for '{on}' with condition '{dep.condition}'")
    results.append(StaticResult("start-order", not problems, "start-order",
                                {"problems": "; ".join(problems)}))

    web = services.get("web") if isinstance(services.get("web"), dict) else {}
    web_ports = compose.published_ports(web) if isinstance(web, dict) else []
    inner = {t: compose.published_ports(services[t]) for t in ("api", "db")
             if isinstance(services.get(t), dict) and services[t].get("ports")}
    to_80 = [p for p in web_ports if p.target == "80"]
    if inner:
        results.append(StaticResult("ports", False, "inner_ports",
                                    {"services": ", ".join(inner)}))
    elif not to_80:
        results.append(StaticResult("ports", False, "web_port",
                                    {"ports": ", ".join(f"{p.published}:{p.target}"
                                                        for p in web_ports) or "none"}))
    elif any(p.host_ip != "127.0.0.1" or not p.published for p in to_80):
        bad = next(p for p in to_80 if p.host_ip != "127.0.0.1" or not p.published)
        results.append(StaticResult("ports", False, "web_loopback",
                                    {"ip": bad.host_ip or "every address",
                                     "port": bad.published or "a random port"}))
    else:
        results.append(StaticResult("ports", True))
    return results, parsed


COMPOSE_REASONS = {
    "missing": "There is no {path} yet. Write the Compose file there.",
    "unreadable": "The Compose file could not be read: {error}",
    "yaml": "The file is not valid YAML: {error}{where}. Compose would stop at the same place.",
    "unknown_key": "Unknown key '{name}' in {where}{guess}{more}. The Compose specification has "
                   "no such key, so Compose would refuse the file.",
    "no_services": "The file has no `services:` mapping with at least one service in it.",
    "tiers": "These services are missing: {missing} (the file has: {found}). Name them "
             "exactly web, api and db.",
    "no_image": "{services} has neither `image:` nor `build:`, so Compose cannot know what to "
                "run.",
    "healthchecks": "{services} has no `healthcheck:` with a `test:`, so Compose can never call "
                    "it healthy and the services that wait for it would never start.",
    "start-order": "The start order is not enforced: {problems}. Use the long form, "
                   "`depends_on: {{SERVICE: {{condition: service_healthy}}}}`.",
    "inner_ports": "{services} publishes ports on the host. Only the front end (web) should: "
                   "the other tiers talk over the project's own network.",
    "web_port": "web publishes no port for its container port 80 (found: {ports}).",
    "web_loopback": "web publishes port 80 on {ip}, host port {port}; publish it on "
                    "127.0.0.1 and a fixed host port, so only this machine can reach it.",
}

compose_file = Exercise(
    id="multi-container.compose-file",
    lab=LAB,
    needs_engine=False,
    static=True,
    subchecks={"parses": 1, "known-keys": 1, "tiers": 1, "healthchecks": 1, "start-order": 1,
               "ports": 1},
    text=Text(
        title="Describe three tiers in a Compose file",
        task=(
            f"Write `{LAB}/{COMPOSE_FILE}` in your workspace with three services: `web` "
            f"({IMAGES['web']}), `api` ({IMAGES['api']}) and `db` ({IMAGES['db']}). Give db "
            "and api a healthcheck, make api wait for a healthy db and web wait for a healthy "
            f"api, and publish only web's port 80, on 127.0.0.1:{WEB_PORT}."
        ),
        subchecks={
            "parses": f"{COMPOSE_FILE} exists and is valid YAML",
            "known-keys": "every key is one the Compose specification knows",
            "tiers": "services web, api and db each name an image (or a build)",
            "healthchecks": "db and api have healthchecks",
            "start-order": "api waits for a healthy db, web for a healthy api",
            "ports": "only web publishes a port: its port 80, on 127.0.0.1",
        },
        hints=(
            "A Compose file is YAML: indentation is made of spaces (never tabs), and a list "
            "item starts with `- `.",
            "A healthcheck's `test` is a command list, for example `[\"CMD\", \"redis-cli\", "
            "\"ping\"]` for redis; the API image answers `python3 /app/app.py health`.",
            "`depends_on` has a long form: under the service it depends on, put "
            "`condition: service_healthy`.",
            "A port entry `\"127.0.0.1:8088:80\"` reads HOST-ADDRESS:HOST-PORT:CONTAINER-PORT.",
        ),
        reasons=COMPOSE_REASONS,
    ),
)


def _apply_static(ctx: CheckContext, results: list[StaticResult]) -> bool:
    for item in results:
        ctx.result(item.key, item.passed, item.reason_key, **item.fields)
    return all(item.passed for item in results)


@compose_file.check
def _check_compose_file(ctx: CheckContext) -> None:
    path = compose_path()
    ctx.evidence["path"] = str(path)
    results, parsed = grade_compose_file(path)
    ok = _apply_static(ctx, results)
    if not results[0].passed:
        raise ctx.blocked_by("parses")
    if parsed is not None:
        ctx.evidence["services"] = sorted(parsed.services)
        if "name" in parsed.document:
            cli = compose.detect()
            if cli is not None and not cli.supports_name_key:
                ctx.notes.append(f"This machine's Compose ({cli.spelling} {cli.version}) does not "
                                 "know the top-level `name:` key and will refuse the file: remove "
                                 f"it and pass the project name with `-p {PROJECT}` instead.")
    if ok:
        ctx.notes.append(f"Graded statically, without an engine: {len(results)} rules hold.")


def _write_reference(path: Path, exercise_id: str, port: int | None = None) -> None:
    # The student's own file, if different, is kept beside it as compose.yaml.mine.
    workspace.write_keeping(path, reference_compose(port or _free_port(WEB_PORT), exercise_id))


_free_port = net.free_port


@compose_file.solve
def _solve_compose_file(ctx: SolveContext) -> None:
    _write_reference(compose_path(), "multi-container.compose-up")


@compose_file.cleanup
def _cleanup_compose_file(ctx: SolveContext) -> None:
    # The file is this exercise's own artefact, at the path the lab chose.
    compose_path().unlink(missing_ok=True)


# --- 4. The stack, up as one unit, end to end -----------------------------------------------

compose_up = Exercise(
    id="multi-container.compose-up",
    lab=LAB,
    needs_engine=False,  # the file grades statically first; the stack needs the engine
    images=("mc-web", "mc-api", "mc-db"),
    subchecks={"valid": 1, "running": 1, "healthy": 1, "end-to-end": 2},
    text=Text(
        title="Bring the three tiers up as one unit",
        task=(
            f"From the folder of your `{COMPOSE_FILE}`, bring the stack up in the background "
            f"as the Compose project `{PROJECT}`. Then open the front end's `/api/visits` a few "
            "times: each visit goes from nginx to the API, which counts it in redis."
        ),
        subchecks={
            "valid": f"{COMPOSE_FILE} passes the Compose file exercise",
            "running": f"project {PROJECT} runs web, api and db",
            "healthy": "db and api report healthy",
            "end-to-end": "the front end's /api/visits returns a count that lives in redis",
        },
        hints=(
            f"`dy.compose_cmd()` prints how Compose is spelled here; then `-p {PROJECT} up -d` "
            "starts everything in the file, in dependency order.",
            "`... ps` lists the project's containers with their health; `... logs api` shows "
            "one service's output.",
            "If the engine says a port 'is already allocated' or 'address already in use', "
            "something else holds that host port: pick another one in the file, then `up -d` "
            "again.",
        ),
        reasons={
            "valid": "Fix the Compose file first: {detail}",
            "no_project": f"No container belongs to the Compose project '{PROJECT}' yet. Bring "
                          f"the stack up with `-p {PROJECT} up -d`.",
            "other_project": f"Nothing runs as project '{PROJECT}', but project(s) {{others}} run "
                             f"the lab's images. Bring the stack up with `-p {PROJECT}`.",
            "service_missing": f"Project {PROJECT} has no container for: {{services}}.",
            "not_started": "'{name}' was created but did not start. The engine said: {error}",
            "not_running_all": "Not running: {details}.",
            "unhealthy": "Not healthy yet: {details}.",
            "no_port": "web publishes no host port for its port 80, so nothing can reach it.",
            "end-to-end": "Asking {url} twice gave {answers}. {detail}",
        },
    ),
)


def _project_containers(ctx: CheckContext) -> dict[str, list[Container]]:
    """The project's containers by service (``docker ps -a --filter label=...project=dy-mc``)."""
    found: dict[str, list[Container]] = {}
    for container in ctx.client.containers.list(
            all=True, filters={"label": f"{PROJECT_LABEL}={PROJECT}"}):
        service = (container.labels or {}).get(SERVICE_LABEL, "")
        ctx.grade("container", container.id, eng.container_created(container))
        found.setdefault(service, []).append(container)
    ctx.evidence["project containers"] = {
        s: [{"name": c.name, "id": c.id[:12], "status": c.status,
             "health": (c.attrs.get("State", {}).get("Health") or {}).get("Status", "")}
            for c in cs] for s, cs in sorted(found.items())}
    return found


def _grade_project_resources(ctx: CheckContext) -> None:
    """Record the project's networks and volumes, so reset may remove them later."""
    for network in ctx.client.networks.list(filters={"label": f"{PROJECT_LABEL}={PROJECT}"}):
        with contextlib.suppress(ValueError, KeyError):
            ctx.grade("network", network.id, eng.parse_time(network.attrs["Created"]))
    for vol in ctx.client.volumes.list(filters={"label": f"{PROJECT_LABEL}={PROJECT}"}):
        with contextlib.suppress(ValueError, KeyError):
            ctx.grade("volume", vol.name, eng.parse_time(vol.attrs["CreatedAt"].replace(" ", "T")))


def _other_projects(ctx: CheckContext) -> list[str]:
    others = set()
    for container in ctx.client.containers.list(all=True, filters={"label": PROJECT_LABEL}):
        image = container.attrs.get("Config", {}).get("Image", "")
        if image in IMAGES.values():
            others.add((container.labels or {}).get(PROJECT_LABEL, ""))
    return sorted(others - {PROJECT, ""})


def _web_port(container: Container) -> int | None:
    bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get("80/tcp")
    for binding in bindings or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def _get_json(port: int, path: str, timeout: float = 3.0) -> dict[str, Any] | str:
    """GET http://127.0.0.1:PORT/PATH: the JSON answer, or a short description of the failure."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
        if response.status != 200:
            return f"HTTP {response.status}: {body.strip()[:200]}"
        data = json.loads(body)
        return data if isinstance(data, dict) else f"unexpected answer {body[:100]!r}"
    except (OSError, ValueError) as exc:
        return f"no answer ({exc})"
    finally:
        connection.close()


def _health(container: Container) -> str:
    return str((container.attrs.get("State", {}).get("Health") or {}).get("Status", "none"))


def _stack_running(ctx: CheckContext) -> dict[str, list[Container]]:
    """Grade 'running' for the project; returns its containers by service or stops the check."""
    found = _project_containers(ctx)
    if not found:
        others = _other_projects(ctx)
        if others:
            raise Unmet("other_project", others=", ".join(others))
        raise Unmet("no_project")
    _grade_project_resources(ctx)
    missing = [t for t in TIERS if t not in found]
    if missing:
        raise Unmet("service_missing", services=", ".join(missing))
    for service in TIERS:
        for container in found[service]:
            error = container.attrs.get("State", {}).get("Error", "")
            if container.status != "running" and error:
                raise Unmet("not_started", name=container.name, error=error)
    stopped = [f"{c.name} is {c.status}" for t in TIERS for c in found[t] if c.status != "running"]
    if stopped:
        raise Unmet("not_running_all", details="; ".join(stopped))
    return found


@compose_up.check
def _check_compose_up(ctx: CheckContext) -> None:
    results, _ = grade_compose_file(compose_path())
    failed = [r for r in results if not r.passed]
    if failed:
        first = failed[0]
        detail = texts.reason(compose_file.localized(), first.reason_key, **first.fields)
        ctx.result("valid", False, "valid", detail=detail)
        raise ctx.blocked_by("valid")
    ctx.result("valid", True)
    found = _stack_running(ctx)
    ctx.result("running", True)
    sick = [f"{c.name} is {_health(c)}" for t in START_ORDER.values() for c in found[t]
            if _health(c) != "healthy"]
    ctx.result("healthy", not sick, "unhealthy", details="; ".join(sick))
    web = next(c for c in found["web"] if c.status == "running")
    port = _web_port(web)
    if port is None:
        raise Unmet("no_port")
    url = f"http://127.0.0.1:{port}/api/visits"
    answers = [_get_json(port, "/api/visits") for _ in range(2)]
    counts = [a.get("visits") if isinstance(a, dict) else None for a in answers]
    stored = ""
    db = next((c for c in found["db"] if c.status == "running"), None)
    if db is not None:
        _, stored = _exec(db, "redis-cli", "GET", "visits")
    ctx.evidence.update(url=url, answers=answers, redis_visits=stored)
    before, after = (c if isinstance(c, int) else None for c in counts)
    ok, detail = before is not None and after is not None, ""
    if before is not None and after is not None:
        if after <= before:
            ok, detail = False, "The count did not go up between the two visits."
        elif not (stored.isdigit() and int(stored) >= after):
            ok, detail = False, f"redis holds visits={stored or 'nothing'}, not the API's count."
    ctx.result("end-to-end", ok, "end-to-end", url=url, answers=answers, detail=detail)
    if ok:
        ctx.notes.append(f"{url} → {answers[1]}; redis (in {db.name if db else 'db'}) holds "
                         f"visits={stored}.")


def _docker_host(ctx: SolveContext) -> str:
    url = ctx.engine.endpoint.url
    return url if url.startswith(("unix://", "tcp://", "ssh://", "npipe://")) else ""


def _health_report(ctx: SolveContext) -> str:
    """The last healthcheck output of each unhealthy container of the project, for a message."""
    lines = []
    for container in ctx.client.containers.list(
            all=True, filters={"label": f"{PROJECT_LABEL}={PROJECT}"}):
        health = container.attrs.get("State", {}).get("Health") or {}
        if health.get("Status") not in (None, "healthy"):
            last = (health.get("Log") or [{}])[-1]
            lines.append(f"{container.name} is {health.get('Status')} (last check exit "
                         f"{last.get('ExitCode')}: {str(last.get('Output', '')).strip()[:200]})")
    return (" — " + "; ".join(lines)) if lines else ""


def _compose_up(ctx: SolveContext, scale: dict[str, int] | None = None) -> int:
    """Write the reference file if the student's does not pass, then ``up -d``; the web port."""
    path = compose_path()
    results, _ = grade_compose_file(path)
    if not all(r.passed for r in results):
        _write_reference(path, ctx.exercise.id)
    try:
        done = compose.up(path, PROJECT, scale=scale, docker_host=_docker_host(ctx), timeout=240)
    except compose.ComposeUnavailable as exc:
        raise SolveError(str(exc)) from None
    if not done.ok:
        raise SolveError(f"`{' '.join(done.argv[-6:])}` failed: {done.error}"
                         f"{_health_report(ctx)}")
    web = [c for c in ctx.client.containers.list(
        filters={"label": [f"{PROJECT_LABEL}={PROJECT}", f"{SERVICE_LABEL}=web"]})]
    web = [c for c in web if c.status == "running"]
    if not web:
        raise SolveError(f"`up` finished, but no web container of project {PROJECT} is running "
                         f"(did something stop it?){_health_report(ctx)}")
    port = _web_port(web[0])
    if port is None:
        raise SolveError("the stack came up, but web publishes no port")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if isinstance(_get_json(port, "/api/whoami", 2), dict):
            return port
        time.sleep(0.3)
    raise SolveError(f"the front end on 127.0.0.1:{port} did not answer /api/whoami in 30 s")


@compose_up.solve
def _solve_compose_up(ctx: SolveContext) -> None:
    port = _compose_up(ctx)
    _get_json(port, "/api/visits")  # a first visit, as the task asks


def owns_project(ctx: SolveContext) -> bool:
    """True when every container, network and volume of project dy-mc is the lab's.

    The lab's own are labelled ``dockyard.lab=04-multi-container`` (the reference file
    labels them) or were recorded by a check after the lab started. A project that
    holds anything else is the student's: it is never brought down.
    """
    owned = {o.resource_id for o in ctx.store.owned(LAB)}
    selector = {"label": f"{PROJECT_LABEL}={PROJECT}"}
    resources = [
        *((c.id, c.labels or {}) for c in ctx.client.containers.list(all=True, filters=selector)),
        *((n.id, n.attrs.get("Labels") or {}) for n in ctx.client.networks.list(filters=selector)),
        *((v.name, v.attrs.get("Labels") or {}) for v in ctx.client.volumes.list(filters=selector)),
    ]
    return bool(resources) and all(
        labels.get(eng.LAB_LABEL) == LAB or rid in owned for rid, labels in resources)


def _compose_down(ctx: SolveContext) -> None:
    """``docker compose -p dy-mc down -v --remove-orphans``, only for a project the lab owns."""
    if compose.detect() is None or not owns_project(ctx):
        return  # the default cleanup still removes what is labelled or graded
    with tempfile.TemporaryDirectory(prefix="dy-mc-") as tmp:
        path = Path(tmp) / COMPOSE_FILE
        path.write_text(reference_compose(WEB_PORT, ctx.exercise.id), encoding="utf-8")
        compose.down(path, PROJECT, volumes=True, docker_host=_docker_host(ctx), timeout=120)


compose_up.cleanup(_compose_down)


# --- 5. Scale the API and watch requests spread --------------------------------------------

REPLICAS = 3
SPREAD_REQUESTS = 12

scale = Exercise(
    id="multi-container.scale",
    lab=LAB,
    images=("mc-web", "mc-api", "mc-db"),
    subchecks={"replicas": 1, "spread": 2},
    text=Text(
        title="Scale the API and watch requests spread",
        task=(
            f"With the `{PROJECT}` stack up, scale the `api` service to {REPLICAS} containers "
            "without stopping the others. Then ask the front end for `/api/whoami` several "
            "times: which container answers?"
        ),
        subchecks={
            "replicas": f"project {PROJECT} runs at least {REPLICAS} api containers",
            "spread": f"{SPREAD_REQUESTS} requests through the front end reach at least 2 of them",
        },
        hints=(
            "`up -d` takes `--scale SERVICE=N`; run it again with the same `-p`.",
            "Two replicas cannot publish the same host port: that is why only web publishes one.",
            "nginx asks Docker's DNS for `api` again every second, and the answer lists every "
            "replica.",
        ),
        reasons={
            "no_project": f"No container belongs to the Compose project '{PROJECT}' yet. Bring "
                          "the stack up first (previous exercise).",
            "other_project": f"Nothing runs as project '{PROJECT}', but project(s) {{others}} run "
                             f"the lab's images. Use `-p {PROJECT}`.",
            "service_missing": f"Project {PROJECT} has no container for: {{services}}.",
            "not_started": "'{name}' was created but did not start. The engine said: {error}",
            "not_running_all": "Not running: {details}.",
            "replicas": f"{{count}} api container(s) run; scale the service to {REPLICAS}.",
            "no_port": "web publishes no host port for its port 80, so nothing can reach it.",
            "spread": "{count} requests to {url} were answered by {answered}. {detail}",
        },
    ),
)


@scale.check
def _check_scale(ctx: CheckContext) -> None:
    found = _stack_running(ctx)
    replicas = {c.attrs.get("Config", {}).get("Hostname", c.id[:12]): c for c in found["api"]}
    ctx.result("replicas", len(replicas) >= REPLICAS, "replicas", count=len(replicas))
    port = _web_port(found["web"][0])
    if port is None:
        raise Unmet("no_port")
    url = f"http://127.0.0.1:{port}/api/whoami"
    answered: dict[str, int] = {}
    failures: list[str] = []
    for _ in range(SPREAD_REQUESTS):
        answer = _get_json(port, "/api/whoami", 2)
        if isinstance(answer, dict):
            host = str(answer.get("served_by", "?"))
            answered[host] = answered.get(host, 0) + 1
        else:
            failures.append(answer)
    by_name = {replicas[h].name if h in replicas else f"unknown {h}": n
               for h, n in answered.items()}
    ctx.evidence.update(url=url, answered_by=by_name, failures=failures[:3])
    strangers = [h for h in answered if h not in replicas]
    detail = ""
    if failures:
        detail = f"{len(failures)} failed, e.g. {failures[0]}."
    elif strangers:
        detail = f"{', '.join(strangers)} is not an api container of project {PROJECT}."
    ok = not failures and not strangers and len(answered) >= 2
    ctx.result("spread", ok, "spread", count=SPREAD_REQUESTS, url=url,
               answered=by_name or "nobody", detail=detail)
    if ok:
        ctx.notes.append("Requests per api container: " +
                         ", ".join(f"{n}: {k}" for n, k in sorted(by_name.items())))


@scale.solve
def _solve_scale(ctx: SolveContext) -> None:
    _compose_up(ctx, scale={"api": REPLICAS})
    # nginx re-resolves `api` at most once a second; give it a moment to see the new replicas.
    time.sleep(1.5)


scale.cleanup(_compose_down)
