"""Lab 03 — portability: one image that runs anywhere, configured per environment.

Each exercise below is one unit: sub-checks with points, student-facing text, then
the check and the reference solution. The student builds images themselves (tags are
part of each task) and the checks inspect what was built; the one build a check may do
(to quote the engine's error for a Dockerfile that does not build) is bounded and
cached by the hash of the build context. Static parts of a Dockerfile (hadolint and
structure, see ``kernel_helpers.dockerfile``) grade without an engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tarfile
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checkers import CheckContext, Exercise, SolveContext, SolveError, Text, Unmet
from checkers._core import net
from kernel_helpers import dockerfile as df
from kernel_helpers import engine as eng
from kernel_helpers import workspace

if TYPE_CHECKING:
    from docker.models.containers import Container
    from docker.models.images import Image

LAB = "03-portability"
#: Starter files shipped with the repository; the workspace gets a copy.
SHIPPED = Path(__file__).resolve().parent.parent / "labs" / LAB
HADOLINT_CONFIG = SHIPPED / "hadolint.yaml"
API_PORT = 8000
API_REPO = "dy-port/api"
#: How long a check may spend building a Dockerfile the student has not built yet.
CHECK_BUILD_SECONDS = 18
SOLVE_BUILD_SECONDS = 280

REFERENCE_DOCKERFILE = """\
# The lab's API: Python from Debian, then the source, run as an unprivileged user.
FROM debian:bookworm-slim
# Dependencies first: this layer is rebuilt only when this line changes.
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3 \\
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt ./
# The source last: editing app.py rebuilds only the layers from here on.
COPY app.py ./
USER nobody
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \\
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/')"]
CMD ["python3", "app.py"]
"""

REFERENCE_MULTI = """\
# Stage 1 builds the page with Python; stage 2 ships only the result.
FROM debian:bookworm-slim AS build
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3 \\
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY build.py pages.json ./
RUN python3 build.py /srv/site

# busybox:latest is the one small base this lab has offline; pin a version in real life.
FROM busybox:latest
COPY --from=build /srv/site /srv/site
USER nobody
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/srv/site"]
"""


# --- shared helpers ---------------------------------------------------------------------


def lab_dir() -> Path:
    return workspace.lab_folder(LAB)


def api_dir() -> Path:
    return lab_dir() / "api"


def copy_starters(*folders: str) -> None:
    """Copy the shipped starter files into the workspace, never overwriting the student's."""
    for folder in folders:
        for source in sorted((SHIPPED / folder).rglob("*")):
            if not source.is_file() or "__pycache__" in source.parts:
                continue
            target = lab_dir() / source.relative_to(SHIPPED)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


def write_reference(path: Path, text: str) -> None:
    """Write a reference file; a different file already there is kept as NAME.mine."""
    workspace.write_keeping(path, text)


def remove_if_reference(path: Path, text: str) -> None:
    """Cleanup deletes a file only when it is exactly what the solution wrote."""
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == text:
            path.unlink()


def find_image(ctx: CheckContext | SolveContext, ref: str) -> Image | None:
    """``docker image inspect REF``, or None."""
    from docker.errors import ImageNotFound

    try:
        return ctx.client.images.get(ref)
    except ImageNotFound:
        return None


def need_image(ctx: CheckContext, ref: str, reason: str = "no_image") -> Image:
    image = find_image(ctx, ref)
    if image is None:
        raise Unmet(reason, image=ref)
    ctx.evidence.setdefault("images", {})[ref] = image.id
    return image


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def stopped_reason(container: Container) -> dict[str, Any]:
    """Fields for a 'not running' reason, with the engine's own error (a taken port...)."""
    state = container.attrs.get("State", {})
    error = (state.get("Error") or "").strip()
    return {"name": container.name, "status": container.status,
            "error": f" The engine said: {error}" if error else ""}


published = net.published_port
engine_host = net.engine_host
http_get = net.http_get


def ask_api(ctx: CheckContext, container: Container) -> dict[str, Any] | str:
    """GET / on the container's published API port: the JSON answer, or what went wrong."""
    port = published(container, API_PORT)
    if port is None:
        return f"{container.name} publishes no host port for {API_PORT}"
    status, _, body = http_get(engine_host(ctx.engine, port[0]), port[1])
    if status != 200:
        return body if status == 0 else f"HTTP {status}"
    try:
        answer = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:80]!r}"
    return answer if isinstance(answer, dict) else f"not a JSON object: {body[:80]!r}"


free_port = net.free_port


class BuildFailed(Exception):
    """The engine refused to build; the message is the engine's own."""


def build(ctx: CheckContext | SolveContext, context: Path, *, tag: str | None = None,
          dockerfile: str = "Dockerfile", labels: dict[str, str] | None = None,
          timeout: float = SOLVE_BUILD_SECONDS) -> str:
    """``docker build [-t TAG] -f DOCKERFILE CONTEXT`` through the API; returns the image id.

    Raises :class:`BuildFailed` with the engine's message (and the last lines of build
    output before it), or :class:`TimeoutError` when the build outlives ``timeout``.
    """
    import requests
    import urllib3
    from docker.errors import APIError

    tail: list[str] = []
    image_id = ""
    # Two limits: the whole build, and each read (apt can be silent while it downloads).
    deadline = time.monotonic() + timeout
    try:
        stream = ctx.client.api.build(
            path=str(context), dockerfile=dockerfile, tag=tag, rm=True, forcerm=True,
            pull=False, decode=True, labels=labels, timeout=max(5, int(timeout * 0.4)),
        )
        for chunk in stream:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the build took longer than {timeout:g} s")
            if "error" in chunk:
                before = " | ".join(line for line in tail[-3:] if line)
                detail = chunk["error"].strip()
                raise BuildFailed(f"{detail} (last output: {before})" if before else detail)
            line = str(chunk.get("stream", "")).strip()
            if line and not line.startswith(("--->", "Removing intermediate", "Running in")):
                tail.append(line[:200])
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    except APIError as exc:
        raise BuildFailed(str(exc.explanation or exc).strip()) from None
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
        # A read that outlives its timeout while streaming surfaces as urllib3's own error.
        if "timed out" in str(exc).lower():
            raise TimeoutError(f"the build took longer than {timeout:g} s") from None
        raise
    if not image_id:
        raise BuildFailed("the engine reported no image id: " + " | ".join(tail[-3:]))
    return image_id


def remove_lab_things(ctx: SolveContext) -> None:
    """Remove this exercise's labelled containers, then its labelled images tag by tag.

    An image with two tags cannot be removed by id without force; untagging each tag
    removes it once the last one goes. Nothing is chosen by name alone.
    """
    from docker.errors import APIError, NotFound

    label = f"{eng.EXERCISE_LABEL}={ctx.exercise.id}"
    for container in ctx.client.containers.list(all=True, filters={"label": label}):
        with contextlib.suppress(NotFound, APIError):
            container.remove(force=True, v=True)
    for image in ctx.client.images.list(filters={"label": label}):
        for ref in [*image.tags, image.id] if image.tags else [image.id]:
            with contextlib.suppress(NotFound, APIError):
                ctx.client.images.remove(ref, noprune=False)


def reference_context(version: str = "1.0") -> Path:
    """A temporary copy of the starter API with the reference Dockerfile and a VERSION."""
    folder = Path(tempfile.mkdtemp(prefix="dy-port-"))
    for source in (SHIPPED / "api").iterdir():
        if source.is_file():
            shutil.copy2(source, folder / source.name)
    app = folder / "app.py"
    app.write_text(app.read_text().replace('VERSION = "1.0"', f'VERSION = "{version}"'))
    (folder / "Dockerfile").write_text(REFERENCE_DOCKERFILE)
    return folder


def solve_build(ctx: SolveContext, context: Path, tag: str, dockerfile: str = "Dockerfile") -> str:
    try:
        return build(ctx, context, tag=tag, dockerfile=dockerfile, labels=ctx.labels)
    except (BuildFailed, TimeoutError) as exc:
        raise SolveError(f"building {tag} failed: {exc}") from None


def wait_answers(ctx: SolveContext, names: list[str], timeout: float = 20) -> None:
    """Wait (bounded) until each container answers GET / on its published API port."""
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            container = ctx.client.containers.get(name)
            port = published(container, API_PORT)
            if port and http_get("127.0.0.1", port[1], timeout=1)[0] == 200:
                pending.remove(name)
        if pending:
            time.sleep(0.2)
    if pending:
        raise SolveError(f"{', '.join(pending)} did not answer within {timeout:g} s")


def created(image: Image) -> datetime:
    return eng.parse_time(image.attrs["Created"])


# --- 1. Write a Dockerfile ---------------------------------------------------------------

API_TAG = f"{API_REPO}:1.0"

dockerfile = Exercise(
    id="portability.dockerfile",
    lab=LAB,
    needs_engine=False,
    subchecks={"exists": 1, "lint": 1, "pinned": 1, "non-root": 1, "cache-order": 1, "port": 1,
               "builds": 1, "tagged": 1, "answers": 2},
    text=Text(
        title="Write a Dockerfile for the API",
        task=(
            "Write `03-portability/api/Dockerfile` in your workspace for the small Python API "
            "beside it (`app.py`). Build it as `dy-port/api:1.0`, then run it as a container "
            f"`dy-port-api` that publishes its port {API_PORT} on a host port."
        ),
        subchecks={
            "exists": "the Dockerfile exists and parses",
            "lint": "hadolint finds no errors or warnings (with the lab's rules)",
            "pinned": "the base image has an explicit tag, not latest",
            "non-root": "the container runs as a user other than root",
            "cache-order": "dependencies are installed before the source is copied in",
            "port": "it declares its port (EXPOSE) or a HEALTHCHECK",
            "builds": "the engine builds it",
            "tagged": f"{API_TAG} exists, built after your last edit of the Dockerfile",
            "answers": f"dy-port-api runs {API_TAG} and answers JSON on its published port",
        },
        hints=(
            "The API needs only Python's standard library. debian:bookworm-slim has no "
            "Python, so install the `python3` package with apt-get in a RUN step.",
            "Order matters for the cache: FROM, then the RUN that installs packages, then "
            "COPY of app.py, then USER, EXPOSE and CMD.",
            "In the api folder, `hadolint -c ../hadolint.yaml Dockerfile` shows the findings "
            "the check reads, and `docker build -t dy-port/api:1.0 .` builds it.",
            f"`docker run -d --name dy-port-api -p 8000:{API_PORT} dy-port/api:1.0`, then "
            "`curl localhost:8000`.",
        ),
        reasons={
            "exists": "The Dockerfile cannot be graded: {detail}.",
            "lint": "hadolint reports: {findings}.",
            "lint_missing": "{detail}",
            "rule": "{detail}.",
            "builds": "The engine could not build it: {detail}",
            "build_slow": "Building it took longer than the check may wait ({seconds} s). Build "
                          "it yourself (`docker build -t dy-port/api:1.0 .` in the api folder); "
                          "the check then finds the image and does not build.",
            "no_image": "There is no image {image} yet. Build it with `docker build -t {image} .` "
                        "in the api folder.",
            "stale": "{image} was built at {built} UTC, before your last edit of the "
                     "{file} ({edited} UTC). Rebuild it so the image matches the file.",
            "not_running": "'{name}' is {status}; it should be running.{error}",
            "answers": "dy-port-api did not answer as expected: {answer}.",
        },
    ),
)

#: Build results of contexts a check built, by context hash: (image id, error).
_built: dict[str, tuple[str, str]] = {}


def context_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def grade_static(ctx: CheckContext, path: Path) -> list[df.Instruction]:
    """The engine-free half: parse, hadolint, and the four structural rules."""
    ctx.evidence["dockerfile"] = str(path)
    try:
        instructions = df.read(path)
    except df.DockerfileError as exc:
        ctx.result("exists", False, "exists", detail=exc)
        raise ctx.blocked_by("exists") from None
    ctx.result("exists", True)
    try:
        findings = df.lint(path, HADOLINT_CONFIG)
    except df.LintUnavailable as exc:
        ctx.result("lint", False, "lint_missing", detail=exc)
    else:
        bad = df.blocking(findings)
        ctx.evidence["hadolint"] = [str(f) for f in findings]
        ctx.notes.extend(f"hadolint advice: {f}" for f in findings if f not in bad)
        ctx.result("lint", not bad, "lint", findings="; ".join(str(f) for f in bad))
    for key, rule in (("pinned", df.rule_pinned_base), ("non-root", df.rule_non_root),
                      ("cache-order", df.rule_cache_order), ("port", df.rule_port)):
        outcome = rule(instructions)
        ctx.result(key, outcome.ok, "rule", detail=outcome.detail)
    return instructions


@dockerfile.check
def _check_dockerfile(ctx: CheckContext) -> None:
    folder = api_dir()
    grade_static(ctx, folder / "Dockerfile")
    # The live half: from here on a missing engine marks the rest "needs a Docker engine".
    image = find_image(ctx, API_TAG)
    # Only the Dockerfile counts: Exercise 2 edits app.py on purpose, and keeps this image.
    edited = folder / "Dockerfile"
    edited_at = datetime.fromtimestamp(edited.stat().st_mtime, tz=timezone.utc)
    fresh = image is not None and created(image) >= edited_at.replace(microsecond=0)
    if fresh:
        assert image is not None
        ctx.result("builds", True)
        ctx.notes.append(f"{API_TAG} ({short(image.id)}) was built after your last edit, so the "
                         "check did not build it again.")
    else:
        key = context_hash(folder)
        if key not in _built:
            try:
                built = build(ctx, folder, labels=eng.labels(LAB, dockerfile.id),
                              timeout=CHECK_BUILD_SECONDS)
                _built[key] = (built, "")
            except BuildFailed as exc:
                _built[key] = ("", str(exc))
            except TimeoutError:
                ctx.result("builds", False, "build_slow", seconds=CHECK_BUILD_SECONDS)
                raise ctx.blocked_by("builds") from None
        built, error = _built[key]
        ctx.evidence["check_build"] = {"context": key[:12], "image": built, "error": error}
        if not ctx.result("builds", not error, "builds", detail=error):
            raise ctx.blocked_by("builds")
    if image is None:
        raise Unmet("no_image", image=API_TAG)
    ctx.evidence["image"] = {"tag": API_TAG, "id": image.id, "created": image.attrs["Created"]}
    if not ctx.result("tagged", fresh, "stale", image=API_TAG, file=edited.name,
                      built=image.attrs["Created"][:19], edited=edited_at.isoformat()[:19]):
        raise ctx.blocked_by("tagged")
    container = ctx.container("dy-port-api")
    if container.attrs.get("Image") != image.id:
        raise Unmet("wrong_image", name="dy-port-api", expected=API_TAG,
                    actual=container.attrs["Config"]["Image"])
    if container.status != "running":
        raise Unmet("not_running", **stopped_reason(container))
    answer = ask_api(ctx, container)
    ctx.evidence["answer"] = answer
    ok = isinstance(answer, dict) and answer.get("service") == "dy-port-api"
    ctx.result("answers", ok, "answers", answer=answer)


@dockerfile.setup
def _setup_dockerfile(ctx: SolveContext) -> None:
    copy_starters("api")


@dockerfile.solve
def _solve_dockerfile(ctx: SolveContext) -> None:
    write_reference(api_dir() / "Dockerfile", REFERENCE_DOCKERFILE)
    solve_build(ctx, api_dir(), API_TAG)
    ctx.run(API_TAG, name="dy-port-api", ports={f"{API_PORT}/tcp": ("127.0.0.1", free_port(8000))})
    wait_answers(ctx, ["dy-port-api"])


@dockerfile.cleanup
def _cleanup_dockerfile(ctx: SolveContext) -> None:
    remove_if_reference(api_dir() / "Dockerfile", REFERENCE_DOCKERFILE)
    with contextlib.suppress(eng.EngineUnavailable):
        remove_lab_things(ctx)


# --- 2. Layers and the build cache ---------------------------------------------------------

NEXT_TAG = f"{API_REPO}:1.1"

layers = Exercise(
    id="portability.layers",
    lab=LAB,
    subchecks={"two-images": 1, "reused": 2, "source-only": 2},
    text=Text(
        title="Change the source, reuse the layers",
        task=(
            f"Keep `{API_TAG}`. Change only the source: set `VERSION = \"1.1\"` in "
            f"`app.py`. Rebuild as `{NEXT_TAG}` and watch the build output: the steps "
            "before the COPY of app.py say `Using cache`."
        ),
        subchecks={
            "two-images": f"{API_TAG} and {NEXT_TAG} are two different images",
            "reused": "they share the base and the dependency layers (the cache was used)",
            "source-only": "they differ only from the COPY of the source onwards",
        },
        hints=(
            "Edit app.py in the api folder, then `docker build -t dy-port/api:1.1 .`.",
            "`docker history dy-port/api:1.1` next to `docker history dy-port/api:1.0` shows "
            "which steps have the same IMAGE id in both.",
            "If the install step ran again, the Dockerfile copies the source before "
            "installing, or the RUN line itself changed.",
        ),
        reasons={
            "no_image": "There is no image {image} yet.",
            "same": "{old} and {new} are the same image ({id}): the rebuild changed nothing. "
                    "Edit app.py first.",
            "reused": "Only {shared} of {total} layers are shared, and the dependency step "
                      "({step}) was built again instead of coming from the cache.",
            "no-deps": "{new} has no RUN step (no dependency layer) to reuse.",
            "source-only": "The first step that differs is '{step}', not a COPY or ADD of the "
                           "source.",
        },
    ),
)


def _steps(image: Image) -> list[dict[str, Any]]:
    """``docker history IMAGE``, oldest step first."""
    return list(reversed(image.history()))


def _instruction_of(step: dict[str, Any]) -> str:
    text = re.sub(r"^/bin/sh -c (#\(nop\)\s*)?", "", str(step.get("CreatedBy", ""))).strip()
    text = re.sub(r"\b(file|dir):([0-9a-f]{12})[0-9a-f]{52}", r"\1:\2…", text)
    return re.sub(r"\s+", " ", text)[:90]


def _is_copy(step: dict[str, Any]) -> bool:
    return _instruction_of(step).split(" ", 1)[0] in ("COPY", "ADD")


def _is_run(step: dict[str, Any]) -> bool:
    created_by = str(step.get("CreatedBy", ""))
    return bool(created_by) and "#(nop)" not in created_by and not _is_copy(step)


def compare_builds(old: Image, new: Image) -> dict[str, Any]:
    """Which build steps and layers two images share, and the first step where they part.

    Steps are compared by what they did (``CreatedBy``; a COPY names its content's hash),
    layers by digest. The cache is proven by ids: a step the engine reused has the same
    intermediate image id in both histories. Images without local step ids (loaded from
    an archive, pulled, or built by BuildKit) fall back to the layer digests: Debian's
    install step writes logs with timestamps, so a rebuilt dependency layer never matches.
    """
    old_steps, new_steps = _steps(old), _steps(new)
    first = next((i for i, (a, b) in enumerate(zip(old_steps, new_steps, strict=False))
                  if a.get("CreatedBy") != b.get("CreatedBy")), None)
    if first is None and len(old_steps) != len(new_steps):
        first = min(len(old_steps), len(new_steps))
    same_id = 0
    for a, b in zip(old_steps, new_steps, strict=False):
        if a.get("Id") != b.get("Id") or a.get("Id") in (None, "", "<missing>"):
            if a.get("Id") == "<missing>" == b.get("Id") and a.get("CreatedBy") == b.get(
                    "CreatedBy"):
                same_id += 1  # base image steps: no local ids on either side
                continue
            break
        same_id += 1
    old_layers, new_layers = old.attrs["RootFS"]["Layers"], new.attrs["RootFS"]["Layers"]
    common_layers = 0
    for a, b in zip(old_layers, new_layers, strict=False):
        if a != b:
            break
        common_layers += 1
    runs = [i for i, s in enumerate(new_steps) if _is_run(s)]
    has_ids = all(any(s.get("Id") not in (None, "", "<missing>") for s in steps[:-1])
                  for steps in (old_steps, new_steps))
    shared = same_id if has_ids else (first if first is not None else len(new_steps))
    rebuilt = [i for i in runs if i >= shared] if has_ids else []
    reused = bool(runs) and not rebuilt and common_layers >= 2
    diff = new_steps[first] if first is not None and first < len(new_steps) else {}
    return {
        "shared_steps": shared, "steps": len(new_steps),
        "shared_layers": common_layers, "layers": len(new_layers),
        "reused_bytes": sum(int(s.get("Size") or 0) for s in new_steps[:shared]),
        "first_difference": _instruction_of(diff) if diff else "",
        "first_is_copy": bool(diff) and _is_copy(diff),
        "run_steps": len(runs), "reused": reused, "by": "step ids" if has_ids else "layers",
        "rebuilt_run": _instruction_of(new_steps[rebuilt[0]]) if rebuilt else "",
    }


@layers.check
def _check_layers(ctx: CheckContext) -> None:
    old = need_image(ctx, API_TAG)
    new = need_image(ctx, NEXT_TAG)
    if not ctx.result("two-images", old.id != new.id, "same", old=API_TAG, new=NEXT_TAG,
                      id=short(new.id)):
        raise ctx.blocked_by("two-images")
    found = compare_builds(old, new)
    ctx.evidence["comparison"] = found
    ctx.notes.append(
        f"{found['shared_steps']} of {found['steps']} build steps and {found['shared_layers']} "
        f"of {found['layers']} layers came from the cache "
        f"({found['reused_bytes'] / 2**20:.1f} MiB not rebuilt); the first new step is "
        f"'{found['first_difference']}'."
    )
    if not found["run_steps"]:
        ctx.result("reused", False, "no-deps", new=NEXT_TAG)
    else:
        ctx.result("reused", found["reused"], "reused",
                   shared=found["shared_layers"], total=found["layers"],
                   step=found["rebuilt_run"] or "the RUN step")
    ctx.result("source-only", found["first_is_copy"], "source-only",
               step=found["first_difference"] or "none")


@layers.solve
def _solve_layers(ctx: SolveContext) -> None:
    context = reference_context("1.0")
    try:
        solve_build(ctx, context, API_TAG)
        app = context / "app.py"
        app.write_text(app.read_text().replace('VERSION = "1.0"', 'VERSION = "1.1"'))
        solve_build(ctx, context, NEXT_TAG)
    finally:
        shutil.rmtree(context, ignore_errors=True)


@layers.cleanup
def _cleanup_layers(ctx: SolveContext) -> None:
    with contextlib.suppress(eng.EngineUnavailable):
        remove_lab_things(ctx)


# --- 3. Tags and ids -----------------------------------------------------------------------

STABLE_TAG = f"{API_REPO}:stable"
HEX_ID = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")

tags = Exercise(
    id="portability.tags",
    lab=LAB,
    subchecks={"stable": 1, "same-id": 1, "by-id": 2},
    text=Text(
        title="Two names, one image",
        task=(
            f"Give `{NEXT_TAG}` a second name, `{STABLE_TAG}`, without building anything. "
            "Then run a container `dy-port-byid` from that image by its **id** (from "
            "`docker images`), not by a name."
        ),
        subchecks={
            "stable": f"{STABLE_TAG} exists",
            "same-id": f"{STABLE_TAG} and {NEXT_TAG} are the same image id",
            "by-id": "dy-port-byid was created from that image, named by its id",
        },
        hints=(
            "`docker tag SOURCE TARGET` adds a name; it copies nothing.",
            "`docker images dy-port/api` lists both tags with the same IMAGE ID.",
            "`docker run -d --name dy-port-byid IMAGE_ID` accepts the short id.",
        ),
        reasons={
            "no_image": "There is no image {image} yet.",
            "same-id": "{stable} is {stable_id} but {next} is {next_id}: they are two images. "
                       "Tag, do not rebuild.",
            "by-id": "dy-port-byid was created from '{ref}' (image {actual}). It must be created "
                     "from image {expected}, written as its id.",
        },
    ),
)


@tags.check
def _check_tags(ctx: CheckContext) -> None:
    stable = need_image(ctx, STABLE_TAG)
    ctx.result("stable", True)
    nxt = need_image(ctx, NEXT_TAG)
    digests = stable.attrs.get("RepoDigests") or []
    ctx.evidence.update(stable_id=stable.id, next_id=nxt.id, tags=stable.tags,
                        repo_digests=digests)
    ctx.notes.append(f"Image {short(stable.id)} has {len(stable.tags)} name(s): "
                     f"{', '.join(sorted(stable.tags))}. Repo digests: "
                     f"{', '.join(digests) or 'none yet (only a registry gives one)'}.")
    if not ctx.result("same-id", stable.id == nxt.id, "same-id", stable=STABLE_TAG,
                      next=NEXT_TAG, stable_id=short(stable.id), next_id=short(nxt.id)):
        raise ctx.blocked_by("same-id")
    container = ctx.container("dy-port-byid")
    ref = str(container.attrs["Config"].get("Image", ""))
    actual = str(container.attrs.get("Image", ""))
    named_by_id = bool(HEX_ID.match(ref)) and stable.id.removeprefix("sha256:").startswith(
        ref.removeprefix("sha256:"))
    ctx.evidence["byid"] = {"ref": ref, "image": actual}
    ctx.result("by-id", actual == stable.id and named_by_id, "by-id", ref=ref,
               actual=short(actual), expected=short(stable.id))


@tags.solve
def _solve_tags(ctx: SolveContext) -> None:
    context = reference_context("1.1")
    try:
        image_id = solve_build(ctx, context, NEXT_TAG)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    ctx.client.images.get(image_id).tag(API_REPO, "stable")
    ctx.run(short(image_id), name="dy-port-byid")


@tags.cleanup
def _cleanup_tags(ctx: SolveContext) -> None:
    with contextlib.suppress(eng.EngineUnavailable):
        remove_lab_things(ctx)


# --- 4. One image, three environments ---------------------------------------------------

ENVIRONMENTS = ("dev", "qa", "prod")
CONFIG_PATH = "/etc/api/config.json"

environments = Exercise(
    id="portability.environments",
    lab=LAB,
    subchecks={"running": 1, "same-image": 2, "configured": 1, "answers": 2},
    text=Text(
        title="One image, three environments",
        task=(
            "Run three containers from the **same image** (`dy-port/api:stable`): "
            "`dy-port-dev`, `dy-port-qa` and `dy-port-prod`. Give each its environment "
            "name in `APP_ENV` and mount its own config file from `03-portability/config/` "
            f"read-only at `{CONFIG_PATH}`. Publish each one's port {API_PORT} on its own "
            "host port."
        ),
        subchecks={
            "running": "dy-port-dev, dy-port-qa and dy-port-prod are running",
            "same-image": "all three run the same image id",
            "configured": f"each has its own APP_ENV and its own file at {CONFIG_PATH}",
            "answers": "each answers with its own environment and greeting",
        },
        hints=(
            "`-e APP_ENV=dev` sets a variable; `-v HOST_FILE:/etc/api/config.json:ro` mounts "
            "one file (the host path must be absolute: use $PWD or the workspace path).",
            "Three containers cannot share a host port: 8101, 8102 and 8103 work.",
            "`curl localhost:8101` shows what the check reads.",
        ),
        reasons={
            "running": "'{name}' is {status}; it should be running.{error}",
            "same-image": "The three run different images: {images}. Start all three from the "
                          "same tag.",
            "configured": "{problems}.",
            "answers": "Asking each container gave: {answers}.",
        },
    ),
)


def _env(container: Container) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container.attrs["Config"].get("Env") or [] if "=" in e)


def _config_mount(container: Container) -> str:
    for mount in container.attrs.get("Mounts") or []:
        if mount.get("Destination") == CONFIG_PATH:
            return str(mount.get("Source", ""))
    return ""


@environments.check
def _check_environments(ctx: CheckContext) -> None:
    running: dict[str, Container] = {}
    for env in ENVIRONMENTS:
        container = ctx.container(f"dy-port-{env}")
        if container.status != "running":
            ctx.result("running", False, "running", **stopped_reason(container))
            raise ctx.blocked_by("running")
        running[env] = container
    ctx.result("running", True)
    images = {env: str(c.attrs.get("Image", "")) for env, c in running.items()}
    ctx.evidence["images"] = images
    if not ctx.result("same-image", len(set(images.values())) == 1, "same-image",
                      images={e: short(i) for e, i in images.items()}):
        raise ctx.blocked_by("same-image")
    problems = []
    mounts = {env: _config_mount(c) for env, c in running.items()}
    for env, container in running.items():
        if _env(container).get("APP_ENV") != env:
            problems.append(f"dy-port-{env} has APP_ENV={_env(container).get('APP_ENV')!r}")
        if not mounts[env]:
            problems.append(f"dy-port-{env} has nothing mounted at {CONFIG_PATH}")
    if all(mounts.values()) and len(set(mounts.values())) < len(ENVIRONMENTS):
        problems.append("two containers mount the same config file")
    ctx.evidence["mounts"] = mounts
    ctx.result("configured", not problems, "configured", problems="; ".join(problems))
    answers = {env: ask_api(ctx, c) for env, c in running.items()}
    ctx.evidence["answers"] = answers
    greetings = {a.get("greeting") for a in answers.values() if isinstance(a, dict)}
    ok = all(isinstance(a, dict) and a.get("env") == env and a.get("config_file") == CONFIG_PATH
             for env, a in answers.items()) and len(greetings) == len(ENVIRONMENTS)
    ctx.result("answers", ok, "answers", answers={
        env: ({k: a.get(k) for k in ("env", "greeting")} if isinstance(a, dict) else a)
        for env, a in answers.items()})
    if ok:
        ctx.notes.append(f"One image ({short(images['dev'])}), three answers: " + "; ".join(
            f"{env}: {answers[env]['greeting']!r}" for env in ENVIRONMENTS  # type: ignore[index]
        ))


@environments.setup
def _setup_environments(ctx: SolveContext) -> None:
    copy_starters("config")


@environments.solve
def _solve_environments(ctx: SolveContext) -> None:
    context = reference_context("1.1")
    try:
        solve_build(ctx, context, STABLE_TAG)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    for offset, env in enumerate(ENVIRONMENTS, start=1):
        config = lab_dir() / "config" / f"{env}.json"
        ctx.run(STABLE_TAG, name=f"dy-port-{env}", environment={"APP_ENV": env},
                volumes={str(config): {"bind": CONFIG_PATH, "mode": "ro"}},
                ports={f"{API_PORT}/tcp": ("127.0.0.1", free_port(8100 + offset))})
    wait_answers(ctx, [f"dy-port-{env}" for env in ENVIRONMENTS])


@environments.cleanup
def _cleanup_environments(ctx: SolveContext) -> None:
    with contextlib.suppress(eng.EngineUnavailable):
        remove_lab_things(ctx)


# --- 5. Ship it without a registry -----------------------------------------------------------

TARBALL = "api-1.0.tar"

tarball = Exercise(
    id="portability.ship-tarball",
    lab=LAB,
    subchecks={"tarball": 1, "loaded": 1, "round-trip": 2},
    text=Text(
        title="Ship an image as a file",
        task=(
            f"Save `{API_TAG}` to `03-portability/{TARBALL}` in your workspace. Then delete "
            "the image from the engine and load it back from the file, as if you had carried "
            "it to another machine. It must come back with the same id."
        ),
        subchecks={
            "tarball": f"{TARBALL} is an image archive that holds {API_TAG}",
            "loaded": f"{API_TAG} is on the engine again, with the archive's image id",
            "round-trip": "the engine deleted that image and later loaded it from a file",
        },
        hints=(
            "`docker save -o FILE IMAGE` writes the archive; `docker load -i FILE` reads it.",
            "`docker rmi` refuses to delete an image a container still uses: remove "
            "dy-port-api first (exercise 1 stays graded).",
            "`tar -tf api-1.0.tar` lists what is inside: manifest.json names the image config.",
        ),
        reasons={
            "tarball": "{detail}",
            "no_image": f"{API_TAG} is not on the engine. Load it back from the archive.",
            "loaded": f"{API_TAG} is image {{actual}}, but the archive holds {{expected}}.",
            "round-trip": "The engine's event log shows no {missing} of image {id} after the "
                          "archive was written ({when}). Delete the image (`docker rmi`) and "
                          "load it from the file. (The engine keeps only its latest events.)",
        },
    ),
)


def read_archive(path: Path) -> tuple[str, list[str]]:
    """The image id and tags an archive from ``docker save`` holds (its manifest.json)."""
    try:
        with tarfile.open(path) as archive:
            member = archive.extractfile("manifest.json")
            if member is None:
                raise ValueError("manifest.json is not a file")
            manifest = json.load(member)
    except FileNotFoundError:
        raise ValueError(f"There is no {path} yet.") from None
    except KeyError:
        raise ValueError(f"{path.name} has no manifest.json: it is not from `docker save`.") \
            from None
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise ValueError(f"{path.name} is not a readable image archive: {exc}") from None
    if not isinstance(manifest, list) or not manifest:
        raise ValueError(f"{path.name}'s manifest.json lists no image.")
    entry = manifest[0]
    config = str(entry.get("Config", "")).rsplit("/", 1)[-1].removesuffix(".json")
    return f"sha256:{config}", list(entry.get("RepoTags") or [])


def image_events(ctx: CheckContext, since: datetime, ids: set[str]) -> list[dict[str, Any]]:
    """``docker events --since T --until now --filter type=image``, for the given ids."""
    # Fractional timestamps: the SDK rounds datetimes down to whole seconds, which would
    # hide what happened during the last second.
    stream = ctx.client.events(since=f"{since.timestamp():.9f}", until=f"{time.time():.9f}",
                               filters={"type": "image"}, decode=True)
    return [e for e in stream if e.get("id") in ids or e.get("Actor", {}).get("ID") in ids]


@tarball.check
def _check_tarball(ctx: CheckContext) -> None:
    path = lab_dir() / TARBALL
    try:
        archived, repo_tags = read_archive(path)
    except ValueError as exc:
        ctx.result("tarball", False, "tarball", detail=exc)
        raise ctx.blocked_by("tarball") from None
    ctx.evidence["archive"] = {"path": str(path), "id": archived, "tags": repo_tags,
                               "bytes": path.stat().st_size}
    if not ctx.result("tarball", API_TAG in repo_tags, "tarball",
                      detail=f"{TARBALL} holds {repo_tags or 'an untagged image'}, "
                             f"not {API_TAG}."):
        raise ctx.blocked_by("tarball")
    image = find_image(ctx, API_TAG)
    if image is None:
        raise Unmet("no_image")
    if not ctx.result("loaded", image.id == archived, "loaded", actual=short(image.id),
                      expected=short(archived)):
        raise ctx.blocked_by("loaded")
    written = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    # A little slack for an engine whose clock runs apart from this one (Docker Desktop).
    events = image_events(ctx, written - timedelta(seconds=2), {archived})
    actions = [(e.get("Action") or e.get("status"), e.get("timeNano", 0)) for e in events]
    ctx.evidence["events"] = actions
    deleted = [t for a, t in actions if a == "delete"]
    loaded = [t for a, t in actions if a == "load" and deleted and t > min(deleted)]
    missing = "deletion" if not deleted else "load after the deletion"
    ctx.result("round-trip", bool(loaded), "round-trip", missing=missing, id=short(archived),
               when=written.isoformat()[:19])
    if loaded:
        ctx.notes.append(f"{TARBALL}: {path.stat().st_size / 2**20:.1f} MiB; image "
                         f"{short(archived)} went out and came back with the same id.")


@tarball.solve
def _solve_tarball(ctx: SolveContext) -> None:
    context = reference_context("1.0")
    try:
        image_id = solve_build(ctx, context, API_TAG)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    path = lab_dir() / TARBALL
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for chunk in ctx.client.api.get_image(API_TAG):
            out.write(chunk)
    for other in ctx.client.containers.list(all=True, filters={"ancestor": image_id}):
        ctx.remove_container(other.name)
    ctx.client.images.remove(API_TAG)
    with path.open("rb") as archive:
        ctx.client.images.load(archive.read())


@tarball.cleanup
def _cleanup_tarball(ctx: SolveContext) -> None:
    (lab_dir() / TARBALL).unlink(missing_ok=True)
    with contextlib.suppress(eng.EngineUnavailable):
        remove_lab_things(ctx)


# --- 6. Ship it through a registry ----------------------------------------------------------

REGISTRY_IMAGE = "dockyard/registry:2.8"
REGISTRY_PORT = 5000
MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))

registry = Exercise(
    id="portability.registry",
    lab=LAB,
    images=("registry",),
    subchecks={"registry": 1, "pushed": 1, "digest": 2, "pulled": 1},
    text=Text(
        title="Ship an image through your own registry",
        task=(
            f"Run your own registry: a container `dy-port-registry` from `{REGISTRY_IMAGE}`, "
            f"publishing its port {REGISTRY_PORT} on `127.0.0.1:5000` (or another free host "
            "port). Push `dy-port/api:stable` to it as `127.0.0.1:PORT/dy-port/api:1`, delete "
            "that name locally, then pull it back."
        ),
        subchecks={
            "registry": f"dy-port-registry runs {REGISTRY_IMAGE} with port {REGISTRY_PORT} "
                        "published",
            "pushed": "the registry lists the tag 1 for dy-port/api",
            "digest": "the registry's manifest digest is the one your engine recorded",
            "pulled": "the image was pulled back from the registry",
        },
        hints=(
            "`docker run -d --name dy-port-registry -p 127.0.0.1:5000:5000 "
            f"{REGISTRY_IMAGE}`. If the engine says the port is taken, pick another host port.",
            "An image's name says where it lives: `docker tag dy-port/api:stable "
            "127.0.0.1:5000/dy-port/api:1`, then `docker push` that name.",
            "`docker rmi 127.0.0.1:5000/dy-port/api:1` removes the name, `docker pull` brings "
            "it back; `docker inspect` shows its RepoDigests.",
            "`curl 127.0.0.1:5000/v2/dy-port/api/tags/list` asks the registry itself.",
        ),
        reasons={
            "missing_image": "The lab image {image} is not built: run `dockyard images build "
                             "registry`.",
            "registry": "dy-port-registry {problem}.",
            "not_running": "'{name}' is {status}; it should be running.{error}",
            "pushed": "The registry at {url} answered {answer} for dy-port/api's tags.",
            "no_local": "There is no local image {ref}: push it under that name, or pull it back.",
            "digest": "The registry serves {ref} as {remote}, but the engine's RepoDigests for "
                      "it are {local}.",
            "pulled": "The registry's log shows no pull of dy-port/api after the push. Delete the "
                      "local name and `docker pull` it.",
        },
    ),
)


def _registry_pulls(log: str) -> tuple[bool, bool]:
    """From the registry's access log: (manifest pushed, manifest pulled after the push)."""
    pushed = pulled = False
    for line in log.splitlines():
        if '"PUT /v2/dy-port/api/manifests/' in line and '" 201 ' in line:
            pushed, pulled = True, False
        elif pushed and '"GET /v2/dy-port/api/manifests/' in line and '" 200 ' in line and \
                '"docker/' in line:
            pulled = True
    return pushed, pulled


@registry.check
def _check_registry(ctx: CheckContext) -> None:
    lab_image = find_image(ctx, REGISTRY_IMAGE)
    if lab_image is None:
        raise Unmet("missing_image", image=REGISTRY_IMAGE)
    container = ctx.container("dy-port-registry")
    if container.attrs.get("Image") != lab_image.id:
        raise Unmet("wrong_image", name="dy-port-registry", expected=REGISTRY_IMAGE,
                    actual=container.attrs["Config"]["Image"])
    if container.status != "running":
        raise Unmet("not_running", **stopped_reason(container))
    port = published(container, REGISTRY_PORT)
    if not ctx.result("registry", port is not None, "registry",
                      problem=f"publishes no host port for {REGISTRY_PORT}"):
        raise ctx.blocked_by("registry")
    assert port is not None
    host = engine_host(ctx.engine, port[0])
    status, _, body = http_get(host, port[1], "/v2/dy-port/api/tags/list")
    ctx.evidence["tags_list"] = {"status": status, "body": body[:300]}
    try:
        listed = json.loads(body).get("tags") or [] if status == 200 else []
    except (ValueError, AttributeError):
        listed = []
    if not ctx.result("pushed", "1" in listed, "pushed", url=f"{host}:{port[1]}",
                      answer=f"HTTP {status} {body[:120].strip()}" if status else body):
        raise ctx.blocked_by("pushed")
    status, headers, _ = http_get(host, port[1], "/v2/dy-port/api/manifests/1",
                                  headers={"Accept": MANIFEST_TYPES})
    remote = headers.get("docker-content-digest", f"HTTP {status}")
    ref = f"127.0.0.1:{port[1]}/dy-port/api:1"
    local = find_image(ctx, ref)
    if local is None:
        raise Unmet("no_local", ref=ref)
    repo_digests = local.attrs.get("RepoDigests") or []
    ctx.evidence.update(remote_digest=remote, repo_digests=repo_digests, local_id=local.id)
    expected = f"127.0.0.1:{port[1]}/dy-port/api@{remote}"
    ctx.result("digest", expected in repo_digests, "digest", ref=ref, remote=remote,
               local=repo_digests or "empty (never pushed or pulled)")
    pushed, pulled = _registry_pulls(ctx.output(container, tail=2000))
    ctx.evidence.update(log_push=pushed, log_pull=pulled)
    ctx.result("pulled", pulled, "pulled")
    if pulled:
        ctx.notes.append(f"{ref} is {remote[:19]}…, the same digest on both sides.")


@registry.solve
def _solve_registry(ctx: SolveContext) -> None:
    port = free_port(5000)
    ctx.run(REGISTRY_IMAGE, name="dy-port-registry",
            ports={f"{REGISTRY_PORT}/tcp": ("127.0.0.1", port)})
    deadline = time.monotonic() + 20
    while http_get("127.0.0.1", port, "/v2/", timeout=1)[0] != 200:
        if time.monotonic() > deadline:
            raise SolveError("the registry did not answer on /v2/ within 20 s")
        time.sleep(0.2)
    context = reference_context("1.1")
    try:
        image_id = solve_build(ctx, context, STABLE_TAG)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    repo = f"127.0.0.1:{port}/dy-port/api"
    ctx.client.images.get(image_id).tag(repo, "1")
    for line in ctx.client.images.push(repo, tag="1", stream=True, decode=True):
        if "error" in line:
            raise SolveError(f"push failed: {line['error']}")
    ctx.client.images.remove(f"{repo}:1")
    ctx.client.images.pull(repo, tag="1")


@registry.cleanup
def _cleanup_registry(ctx: SolveContext) -> None:
    with contextlib.suppress(eng.EngineUnavailable):
        remove_lab_things(ctx)


# --- 7. A multi-stage build --------------------------------------------------------------

SINGLE_TAG, MULTI_TAG = "dy-port/site:single", "dy-port/site:multi"
SITE_FILE = "/srv/site/index.html"
TOOL_FILE = "/usr/bin/python3"
MAX_RATIO = 0.5

multi_stage = Exercise(
    id="portability.multi-stage",
    lab=LAB,
    needs_engine=False,
    subchecks={"stages": 1, "single": 1, "multi": 1, "no-tools": 1, "smaller": 2},
    text=Text(
        title="Build with the tools, ship without them",
        task=(
            "The folder `03-portability/site/` builds a static status page with Python. "
            f"Build its `Dockerfile.single` as `{SINGLE_TAG}`. Then write `Dockerfile.multi`: "
            "a build stage that runs `build.py`, and a final stage with only the built "
            f"folder (`{SITE_FILE.rsplit('/', 1)[0]}`), served by a small base. Build it as "
            f"`{MULTI_TAG}`."
        ),
        subchecks={
            "stages": "Dockerfile.multi has two stages and copies from the first",
            "single": f"{SINGLE_TAG} exists",
            "multi": f"{MULTI_TAG} exists and holds {SITE_FILE}",
            "no-tools": f"{MULTI_TAG} has no Python ({TOOL_FILE})",
            "smaller": f"{MULTI_TAG} is at most half the size of {SINGLE_TAG}",
        },
        hints=(
            "`FROM debian:bookworm-slim AS build` names a stage; a later "
            "`COPY --from=build SRC DST` takes files from it.",
            "busybox has a small web server: `httpd -f -p 8080 -h /srv/site`.",
            "`docker build -f Dockerfile.multi -t dy-port/site:multi .` in the site folder; "
            "`docker images dy-port/site` compares the sizes.",
        ),
        reasons={
            "stages": "{detail}.",
            "no_image": "There is no image {image} yet.",
            "multi": f"{MULTI_TAG} has no {SITE_FILE}: the final stage must copy the built site.",
            "no-tools": f"{MULTI_TAG} still contains {TOOL_FILE}: the final stage should start "
                        "from a small base, not from the build stage's.",
            "smaller": "{multi} is {multi_mb} MiB and {single} is {single_mb} MiB: the "
                       "multi-stage image should be at most half the size.",
        },
    ),
)


def grade_stages(path: Path) -> df.RuleResult:
    """Two or more stages, and a COPY --from that takes something out of an earlier one."""
    try:
        instructions = df.read(path)
    except df.DockerfileError as exc:
        return df.RuleResult(False, str(exc))
    found = df.stages(instructions)
    if len(found) < 2:
        return df.RuleResult(False, f"{path.name} has {len(found)} stage (FROM); it needs a "
                                    "build stage and a final stage")
    if not any(i.keyword == "COPY" and i.flags.get("from") for i in found[-1]):
        return df.RuleResult(False, "the final stage never copies from the build stage "
                                    "(COPY --from=...)")
    return df.RuleResult(True)


def image_has(ctx: CheckContext, image: Image, path: str) -> bool:
    """Whether ``path`` exists in the image: a created (never started) container's archive."""
    from docker.errors import NotFound

    probe = ctx.client.containers.create(image.id, command=["true"],
                                         labels=eng.labels(LAB, multi_stage.id))
    try:
        probe.get_archive(path)
        return True
    except NotFound:
        return False
    finally:
        probe.remove(force=True, v=True)


@multi_stage.check
def _check_multi_stage(ctx: CheckContext) -> None:
    path = lab_dir() / "site" / "Dockerfile.multi"
    ctx.evidence["dockerfile"] = str(path)
    outcome = grade_stages(path)
    if not ctx.result("stages", outcome.ok, "stages", detail=outcome.detail):
        raise ctx.blocked_by("stages")
    single = need_image(ctx, SINGLE_TAG)
    ctx.result("single", True)
    multi = need_image(ctx, MULTI_TAG)
    if not ctx.result("multi", image_has(ctx, multi, SITE_FILE), "multi"):
        raise ctx.blocked_by("multi")
    ctx.result("no-tools", not image_has(ctx, multi, TOOL_FILE), "no-tools")
    sizes = {SINGLE_TAG: int(single.attrs.get("Size", 0)), MULTI_TAG: int(multi.attrs.get("Size",
                                                                                        0))}
    ctx.evidence["sizes"] = sizes
    mb = {tag: f"{size / 2**20:.1f}" for tag, size in sizes.items()}
    ctx.notes.append(f"{SINGLE_TAG}: {mb[SINGLE_TAG]} MiB; {MULTI_TAG}: {mb[MULTI_TAG]} MiB.")
    ctx.result("smaller", 0 < sizes[MULTI_TAG] <= MAX_RATIO * sizes[SINGLE_TAG], "smaller",
               multi=MULTI_TAG, single=SINGLE_TAG, multi_mb=mb[MULTI_TAG],
               single_mb=mb[SINGLE_TAG])


@multi_stage.setup
def _setup_multi_stage(ctx: SolveContext) -> None:
    copy_starters("site")


@multi_stage.solve
def _solve_multi_stage(ctx: SolveContext) -> None:
    site = lab_dir() / "site"
    write_reference(site / "Dockerfile.multi", REFERENCE_MULTI)
    solve_build(ctx, site, SINGLE_TAG, dockerfile="Dockerfile.single")
    solve_build(ctx, site, MULTI_TAG, dockerfile="Dockerfile.multi")


@multi_stage.cleanup
def _cleanup_multi_stage(ctx: SolveContext) -> None:
    remove_if_reference(lab_dir() / "site" / "Dockerfile.multi", REFERENCE_MULTI)
    with contextlib.suppress(eng.EngineUnavailable):
        remove_lab_things(ctx)


