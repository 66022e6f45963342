"""Lab 07 — deployment patterns on Kubernetes: rolling update, rollback, blue/green, canary.

Every exercise works in the lab's namespace ``dockyard-deploy`` and is graded from live
state only: the Deployment, its ReplicaSets (the rollout history lives in their
``deployment.kubernetes.io/revision`` annotations), its pods, a Service's endpoints and,
for blue/green, the log of a traffic pod that asked the Service for its version the
whole time. When a Deployment is not ready, the reason carries the specific diagnosis
from :mod:`kernel_helpers.kube_diagnosis` (ImagePullBackOff, CrashLoopBackOff, Pending…).

The reference solutions apply complete manifests, built once below (``shop_deployment``
and friends; the starter files in ``labs/07-deployment-patterns/`` say the same), and
wait with deadlines. Exercises 1 and 2 share the Deployment ``shop``, so each solution
starts from whatever is there, an empty namespace included.
"""

from __future__ import annotations

import copy
import math
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from checkers import CheckContext, Exercise, SolveContext, SolveError, Text, Unmet, deleting
from kernel_helpers import kubernetes as kube
from kernel_helpers import workspace
from kernel_helpers.kube_diagnosis import PULL_REASONS

LAB = "07-deployment-patterns"
NAMESPACE = kube.LAB_NAMESPACES[LAB]
IMAGES = ("api-v1", "api-v2")
V1, V2 = "dockyard/api:1", "dockyard/api:2"
#: A tag that exists nowhere: the broken release of the rollback exercise.
BROKEN = "dockyard/api:404"
#: The lab's images and the version each one answers on /api/version.
VERSIONS = {V1: "1", V2: "2"}
API_PORT = 8000
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
REPO_LAB_DIR = Path(__file__).resolve().parent.parent / "labs" / LAB

# Exercises 1-2: one Deployment, updated in place.
SHOP, SHOP_REPLICAS = "shop", 4
SHOP_LABELS = {"app": "shop", "pattern": "rolling"}
# Exercise 3: two Deployments behind one Service, and a pod that makes traffic.
BLUE, GREEN, FRONT, TRAFFIC = "shop-blue", "shop-green", "shop", "traffic"
COLOUR_REPLICAS = 2
#: The traffic pod's loop: one request every 0.1 s, about 45 s in all.
TRAFFIC_REQUESTS = 400
#: Fewer answers than this cannot show two switches with any confidence.
MIN_REQUESTS = 50
# Exercise 4: a canary by replica ratio.
STABLE, CANARY, ALL = "shop-stable", "shop-canary", "shop-all"
STABLE_REPLICAS, CANARY_REPLICAS = 3, 1

T = TypeVar("T")


# --- reference manifests (the starter files hold the same objects) --------------------------


#: busybox httpd needs about a megabyte; the requests keep 13 pods light on three nodes.
RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"},
             "limits": {"cpu": "100m", "memory": "32Mi"}}


def api_container(image: str) -> dict[str, Any]:
    """The API container: Ready (and kept alive) only while /api/version answers on 8000."""
    return {
        "name": "api",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": API_PORT}],
        "readinessProbe": {
            "httpGet": {"path": "/api/version", "port": API_PORT},
            "periodSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/api/version", "port": API_PORT},
            "periodSeconds": 10,
        },
        "resources": copy.deepcopy(RESOURCES),
    }


def deployment(name: str, image: str, replicas: int, labels: Mapping[str, str],
               strategy: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A Deployment of the API whose selector is exactly its pods' ``labels``."""
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": dict(labels)},
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {
                # busybox httpd runs as PID 1 and ignores SIGTERM: without this, every old
                # pod would wait the default 30 s before it is killed.
                "terminationGracePeriodSeconds": 2,
                "containers": [api_container(image)],
            },
        },
    }
    if strategy is not None:
        spec["strategy"] = copy.deepcopy(dict(strategy))
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": spec}


ROLLING_STRATEGY = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def shop_deployment(image: str = V1) -> dict[str, Any]:
    """``shop.yaml``: 4 replicas, one extra pod at a time, never one fewer Ready."""
    return deployment(SHOP, image, SHOP_REPLICAS, SHOP_LABELS, ROLLING_STRATEGY)


def colour_deployment(colour: str) -> dict[str, Any]:
    """``shop-blue`` (api:1) or ``shop-green`` (api:2)."""
    name, image = (BLUE, V1) if colour == "blue" else (GREEN, V2)
    return deployment(name, image, COLOUR_REPLICAS, {"app": "shop", "color": colour})


def service(name: str, selector: Mapping[str, str]) -> dict[str, Any]:
    """A ClusterIP Service: port 80 in front of the pods' port 8000."""
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": dict(selector),
                 "ports": [{"name": "http", "port": 80, "targetPort": API_PORT}]},
    }


def front_service(colour: str = "blue") -> dict[str, Any]:
    return service(FRONT, {"app": "shop", "color": colour})


def traffic_script(requests: int | None = None, host: str = FRONT) -> str:
    """The traffic loop: one line per request, the answer or FAIL.

    busybox's own ``wget -T`` crashes in this image, so ``timeout`` bounds each request.
    """
    count = requests or TRAFFIC_REQUESTS
    return (
        f"for i in $(seq {count}); do "
        f"v=$(timeout 2 wget -qO- http://{host}/api/version 2>/dev/null) "
        '&& echo "$v" || echo FAIL; sleep 0.1; done'
    )


def traffic_pod(requests: int | None = None) -> dict[str, Any]:
    """``traffic.yaml``: a pod that runs the loop once and stops (restartPolicy Never)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": TRAFFIC, "labels": {"app": "traffic"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "traffic", "image": V1, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", traffic_script(requests)],
                "resources": copy.deepcopy(RESOURCES),
            }],
        },
    }


def track_deployment(track: str) -> dict[str, Any]:
    """``shop-stable`` (3 × api:1) or ``shop-canary`` (1 × api:2)."""
    if track == "stable":
        return deployment(STABLE, V1, STABLE_REPLICAS, {"app": "shop", "track": "stable"})
    return deployment(CANARY, V2, CANARY_REPLICAS, {"app": "shop", "track": "canary"})


def all_service() -> dict[str, Any]:
    """``shop-all``: selects on ``app`` only, so both tracks get traffic."""
    return service(ALL, {"app": "shop"})


def starter_file(name: str) -> Path:
    """The student's copy of a starter file, put in place from the repo's if missing."""
    target = workspace.lab_folder(LAB) / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_LAB_DIR / name, target)
    return target


# --- pure helpers (also used by the notebook) --------------------------------------------------


def resolve_count(value: Any, replicas: int, *, round_up: bool) -> int | None:
    """``maxSurge``/``maxUnavailable`` as a pod count: ``25%`` of 4 → 1; None if invalid.

    Kubernetes rounds a surge percentage up and an unavailable percentage down.
    """
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            exact = float(value.strip()[:-1]) * replicas / 100
        except ValueError:
            return None
        return math.ceil(exact) if round_up else math.floor(exact)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def rollout_steps(replicas: int, max_surge: int, max_unavailable: int,
                  ) -> list[tuple[int, int, int]]:
    """``(old Ready, new Ready, new starting)`` pods after each step of a rolling update.

    A simplified Deployment controller: it removes old pods while at least
    ``replicas - max_unavailable`` stay Ready, starts new ones while at most
    ``replicas + max_surge`` exist, and new pods become Ready one step after they start.
    """
    if max_surge < 0 or max_unavailable < 0 or max_surge == max_unavailable == 0:
        raise ValueError("maxSurge and maxUnavailable cannot both be 0")
    old, ready, starting = replicas, 0, 0
    steps = [(old, ready, starting)]
    for _ in range(4 * replicas + 4):
        if old == 0 and ready == replicas:
            break
        removable = max(0, old + ready - (replicas - max_unavailable))
        old -= min(old, removable)
        room = replicas + max_surge - (old + ready + starting)
        starting += max(0, min(room, replicas - ready - starting))
        steps.append((old, ready, starting))
        ready, starting = ready + starting, 0
        steps.append((old, ready, starting))
    deduped = [steps[0]]
    for step in steps[1:]:
        if step != deduped[-1]:
            deduped.append(step)
    return deduped


_VERSION = re.compile(r'"version"\s*:\s*"([^"]*)"')


@dataclass
class TrafficLog:
    """What the traffic pod saw: one entry per request, in order."""

    #: The answering version per request, or None for a failed request.
    requests: list[str | None] = field(default_factory=list)
    #: The first few failure lines, verbatim.
    failure_lines: list[str] = field(default_factory=list)

    @property
    def answers(self) -> list[str]:
        return [v for v in self.requests if v is not None]

    @property
    def failures(self) -> list[int]:
        """1-based numbers of the failed requests."""
        return [i + 1 for i, v in enumerate(self.requests) if v is None]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for version in self.answers:
            out[version] = out.get(version, 0) + 1
        return out

    def segments(self) -> list[tuple[str, int, int]]:
        """Runs of one version: ``(version, answers, number of its first request)``."""
        runs: list[tuple[str, int, int]] = []
        for index, version in enumerate(self.requests):
            if version is None:
                continue
            if runs and runs[-1][0] == version:
                runs[-1] = (version, runs[-1][1] + 1, runs[-1][2])
            else:
                runs.append((version, 1, index + 1))
        return runs


def parse_traffic(log: str) -> TrafficLog:
    """Read a traffic loop's output: JSON answers, ``FAIL`` lines and wget's own errors.

    A ``wget: ...`` error directly followed by ``FAIL`` is one failed request (the loop
    prints both when its stderr is not redirected).
    """
    parsed = TrafficLog()
    previous_error = False
    for raw in log.splitlines():
        line = raw.strip()
        if not line:
            continue
        versions = _VERSION.findall(line)
        if versions:
            parsed.requests.extend(versions)
            previous_error = False
            continue
        is_fail = line == "FAIL" or line.endswith(" FAIL")
        is_error = line.startswith("wget:") or "timed out" in line.lower()
        if is_fail and previous_error:
            previous_error = False
            continue
        if is_fail or is_error:
            parsed.requests.append(None)
            if len(parsed.failure_lines) < 3:
                parsed.failure_lines.append(line[:160])
            previous_error = is_error
    return parsed


# --- reading the cluster -------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict(obj.get("metadata") or {})


def _name(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name", ""))


def revision(obj: Mapping[str, Any]) -> int:
    """The ``deployment.kubernetes.io/revision`` of a Deployment or ReplicaSet (0: none)."""
    value = str((_meta(obj).get("annotations") or {}).get(REVISION, "0"))
    return int(value) if value.isdigit() else 0


def template_image(obj: Mapping[str, Any]) -> str:
    """The first container's image of a Deployment's or ReplicaSet's pod template."""
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers") or []
    return str(containers[0].get("image", "")) if containers else ""


def _controller(obj: Mapping[str, Any]) -> dict[str, Any]:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return {}


def _owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any], kind: str) -> bool:
    ref = _controller(obj)
    if ref.get("kind") != kind:
        return False
    uid = _meta(owner).get("uid")
    # A new object of the same name has a new uid: an old owner's leftovers are not ours.
    return ref.get("uid") == uid if uid and ref.get("uid") else ref.get("name") == _name(owner)


def owned_replica_sets(cluster: kube.Cluster, deployment: Mapping[str, Any],
                       ) -> list[dict[str, Any]]:
    """``kubectl rollout history``'s source: the Deployment's ReplicaSets, oldest revision first."""
    sets = [rs for rs in cluster.objects("ReplicaSet", NAMESPACE)
            if _owned_by(rs, deployment, "Deployment")]
    return sorted(sets, key=lambda rs: (revision(rs), _meta(rs).get("creationTimestamp", "")))


def current_replica_set(deployment: Mapping[str, Any], sets: list[dict[str, Any]],
                        ) -> dict[str, Any] | None:
    """The ReplicaSet whose revision the Deployment reports as its own."""
    wanted = revision(deployment)
    found = [rs for rs in sets if wanted and revision(rs) == wanted]
    return found[-1] if found else None


def _pods_of(pods: Iterable[dict[str, Any]], sets: Iterable[Mapping[str, Any]],
             ) -> list[dict[str, Any]]:
    sets = list(sets)
    return [p for p in pods if any(_owned_by(p, rs, "ReplicaSet") for rs in sets)]


def _rs_summary(rs: Mapping[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    status = rs.get("status") or {}
    mine = _pods_of(pods, [rs])
    return {
        "revision": revision(rs), "name": _name(rs), "uid": _meta(rs).get("uid", ""),
        "image": template_image(rs),
        "replicas": int((rs.get("spec") or {}).get("replicas", 0)),
        "current": int(status.get("replicas") or 0),
        "ready": int(status.get("readyReplicas") or 0),
        "created": _meta(rs).get("creationTimestamp", ""),
        "revision_history": (_meta(rs).get("annotations") or {}).get(REVISION_HISTORY, ""),
        "pods": [{"name": _name(p), "uid": _meta(p).get("uid", ""),
                  "node": (p.get("spec") or {}).get("nodeName"), "ready": kube.pod_ready(p)}
                 for p in mine],
    }


def _history_text(summaries: list[dict[str, Any]]) -> str:
    if not summaries:
        return "no ReplicaSets yet"
    return "; ".join(
        f"revision {s['revision']}: {s['image']} ({s['ready']}/{s['replicas']} Ready)"
        for s in summaries
    )


@dataclass
class _Rollout:
    """A Deployment with its history and pods, read once per check."""

    deployment: dict[str, Any]
    sets: list[dict[str, Any]]
    current: dict[str, Any] | None
    pods: list[dict[str, Any]]
    summaries: list[dict[str, Any]]

    @property
    def wanted(self) -> int:
        return int((self.deployment.get("spec") or {}).get("replicas", 1))

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.deployment.get("status") or {})


def _read_rollout(ctx: CheckContext, name: str) -> _Rollout:
    """``kubectl get deployment NAME`` + ``kubectl rollout history``, recorded as evidence."""
    found = ctx.kget("Deployment", name)
    sets = owned_replica_sets(ctx.cluster, found)
    pods = _pods_of(ctx.cluster.pods(NAMESPACE), sets)
    summaries = [_rs_summary(rs, pods) for rs in sets]
    status = found.get("status") or {}
    ctx.evidence.setdefault("deployments", {})[name] = {
        "uid": _meta(found).get("uid", ""),
        "generation": _meta(found).get("generation"),
        "observedGeneration": status.get("observedGeneration"),
        "revision": revision(found),
        "image": template_image(found),
        "replicas": (found.get("spec") or {}).get("replicas"),
        "status": {k: status.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas",
                                              "availableReplicas")},
        "history": summaries,
    }
    return _Rollout(found, sets, current_replica_set(found, sets), pods, summaries)


def _not_ready_hint(ctx: CheckContext, rollout: _Rollout) -> str:
    """The specific reason a Deployment is not fully rolled out (kube_diagnosis first)."""
    hint = ctx.diagnose(rollout.pods).strip()
    if hint:
        # The hint may end with the kubelet's own words; our sentence follows it.
        return hint if hint.endswith((".", "!", "?", ")")) else hint + "."
    for condition in rollout.status.get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return f"the Deployment cannot create pods: {condition.get('message', '')}"
        if condition.get("type") == "Progressing" and condition.get("status") == "False":
            return f"the rollout gave up: {condition.get('message', '')}"
    name = _name(rollout.deployment)
    return ("its pods are still starting; check again in a few seconds "
            f"(`kubectl -n {NAMESPACE} rollout status deployment/{name}` waits for them).")


def _ready_text(rollout: _Rollout) -> dict[str, Any]:
    status = rollout.status
    return {"ready": int(status.get("readyReplicas") or 0),
            "updated": int(status.get("updatedReplicas") or 0),
            "wanted": rollout.wanted}


def _readiness_problems(deploy: Mapping[str, Any]) -> list[str]:
    """What is missing from the readiness probe on /api/version:8000."""
    containers = (((deploy.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers") or []
    if not containers:
        return ["its pod template has no container"]
    container = containers[0]
    probe = container.get("readinessProbe") or {}
    get = probe.get("httpGet") or {}
    if not get:
        return ["its container has no HTTP readiness probe (readinessProbe.httpGet)"]
    port = get.get("port")
    named = {str(p.get("name")): p.get("containerPort") for p in container.get("ports") or []}
    number = named.get(str(port), port)
    problems = []
    if get.get("path") != "/api/version":
        problems.append(f"its readiness probe asks {get.get('path')!r}, not '/api/version'")
    if str(number) != str(API_PORT):
        problems.append(f"its readiness probe asks port {port!r}, not {API_PORT}")
    return problems


# --- waiting in solutions ------------------------------------------------------------------


def _poll(ready: Callable[[], T | None], timeout: float, what: str, every: float = 0.5) -> T:
    """Ask ``ready()`` until it returns a value; SolveError after ``timeout`` seconds.

    Only for what has no watch (a pod's log); objects are waited for with watches.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise SolveError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(every)


def _wait(ctx: SolveContext, kind: str, predicate: Callable[[dict[str, dict[str, Any]]], T | None],
          timeout: float, what: str, why: Callable[[], str] | None = None) -> T:
    try:
        return ctx.cluster.wait_for(kind, NAMESPACE, predicate, timeout=timeout, what=what,
                                    describe_failure=why)
    except kube.ClusterFault as exc:
        raise SolveError(str(exc)) from None


def service_backends(cluster: kube.Cluster, name: str) -> list[dict[str, Any]]:
    """``kubectl get endpointslices -l kubernetes.io/service-name=NAME``: one row per endpoint.

    Each row is ``{ip, pod, node, ready}``. Clusters without EndpointSlices fall back to
    the v1 Endpoints object.
    """
    slices = cluster.objects("EndpointSlice", NAMESPACE, {"kubernetes.io/service-name": name})
    rows = _slice_rows(slices)
    if rows or slices:
        return rows
    endpoints = cluster.get("Endpoints", name, NAMESPACE) or {}
    out = []
    for subset in endpoints.get("subsets") or []:
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(key) or []:
                out.append({"ip": address.get("ip"),
                            "pod": (address.get("targetRef") or {}).get("name"),
                            "node": address.get("nodeName"), "ready": ready})
    return out


def _slice_rows(slices: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for item in slices:
        for endpoint in item.get("endpoints") or []:
            ready = (endpoint.get("conditions") or {}).get("ready")
            for ip in endpoint.get("addresses") or []:
                rows.append({"ip": ip, "pod": (endpoint.get("targetRef") or {}).get("name"),
                             "node": endpoint.get("nodeName"), "ready": ready is not False})
    return rows


def _wait_backends(ctx: SolveContext, name: str, accept: Callable[[list[dict[str, Any]]], bool],
                   timeout: float, what: str) -> None:
    def done(objects: dict[str, dict[str, Any]]) -> bool | None:
        mine = [s for s in objects.values()
                if (_meta(s).get("labels") or {}).get("kubernetes.io/service-name") == name]
        return True if accept([r for r in _slice_rows(mine) if r["ready"]]) else None

    _wait(ctx, "EndpointSlice", done, timeout, what)


def _pod_labels(cluster: kube.Cluster) -> dict[str, dict[str, str]]:
    return {_name(p): dict(_meta(p).get("labels") or {}) for p in cluster.pods(NAMESPACE)}


# --- shared reasons ------------------------------------------------------------------------

KUBE_REASONS = {
    "not_ready": (
        "deployment {name} has {ready}/{wanted} Ready pods ({updated} on the current template): "
        "{hint}"
    ),
}


def _reasons(**own: str) -> dict[str, str]:
    return {**KUBE_REASONS, **own}


def strategy_verdict(deploy: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Whether a Deployment rolls with maxSurge 1 and maxUnavailable 0, and what it has.

    Unset fields get the API server's defaults (RollingUpdate, 25 % and 25 %), and
    percentages count pods the way the controller does, so ``25%`` of 4 is accepted as 1.
    """
    spec = deploy.get("spec") or {}
    replicas = int(spec.get("replicas", 1)) if str(spec.get("replicas", 1)).isdigit() else 1
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type", "RollingUpdate")
    params = strategy.get("rollingUpdate") or {}
    raw_surge, raw_unavailable = params.get("maxSurge", "25%"), params.get("maxUnavailable", "25%")
    surge = resolve_count(raw_surge, replicas, round_up=True)
    unavailable = resolve_count(raw_unavailable, replicas, round_up=False)
    fields = {"type": kind, "surge": raw_surge, "unavailable": raw_unavailable,
              "surge_n": surge, "unavailable_n": unavailable, "replicas": replicas}
    return kind == "RollingUpdate" and surge == 1 and unavailable == 0, fields


STRATEGY_REASON = (
    "shop's strategy is {type} with maxSurge {surge} and maxUnavailable {unavailable} (that "
    "is {surge_n} extra and {unavailable_n} missing pod(s) of {replicas}); it should be "
    "RollingUpdate with maxSurge: 1 and maxUnavailable: 0."
)


# --- 0. The strategy, written down (static: grades the file, on Binder too) ------------------

SHOP_FILE = "shop.yaml"
#: The starter's placeholder, and what the reference solution puts in its place.
STRATEGY_TODO = (
    "  # TODO: the update strategy goes here (exercise 1). Without one, Kubernetes uses a\n"
    "  # RollingUpdate with maxSurge 25% and maxUnavailable 25%.\n"
)
STRATEGY_YAML = (
    "  strategy:\n"
    "    type: RollingUpdate\n"
    "    rollingUpdate:\n"
    "      maxSurge: 1        # at most one pod more than replicas during an update\n"
    "      maxUnavailable: 0  # never fewer Ready pods than replicas\n"
)


def shop_path() -> Path:
    """``07-deployment-patterns/shop.yaml`` in the student's workspace."""
    return workspace.lab_folder(LAB) / SHOP_FILE


def reference_shop_yaml() -> str:
    """The starter shop.yaml with its TODO replaced by the strategy."""
    text = (REPO_LAB_DIR / SHOP_FILE).read_text(encoding="utf-8")
    if STRATEGY_TODO not in text:
        raise SolveError(f"the shipped {SHOP_FILE} lost its TODO line; reinstall Dockyard")
    return text.replace(STRATEGY_TODO, STRATEGY_YAML)


strategy_file = Exercise(
    id="deployment.strategy-file",
    lab=LAB,
    needs_engine=False,
    static=True,
    subchecks={"parses": 1, "schema": 1, "strategy": 2, "sound": 1},
    text=Text(
        title="Write the update strategy into shop.yaml",
        task=(
            f"Open `{LAB}/{SHOP_FILE}` in your workspace and replace its TODO line with a "
            "`strategy:` that updates with `maxSurge: 1` and `maxUnavailable: 0`: one extra "
            "pod at a time, and never fewer Ready pods than replicas. This check reads only "
            "the file, so it works without a cluster."
        ),
        subchecks={
            "parses": f"{SHOP_FILE} is valid YAML and holds the Deployment {SHOP}",
            "schema": "every field is one Kubernetes defines (strict schema check)",
            "strategy": "its strategy is RollingUpdate with maxSurge 1 and maxUnavailable 0",
            "sound": "selector, probes, resources and image tag are all in order",
        },
        hints=(
            "`strategy` sits under `spec`, at the same indentation as `replicas`; "
            "`rollingUpdate` sits under `strategy`.",
            "`kubectl explain deployment.spec.strategy.rollingUpdate` describes both fields "
            "(it needs a cluster); both take a number of pods or a percentage.",
            "YAML indents with spaces only. A field Kubernetes does not know, such as "
            "`maxUnavailible`, fails the schema sub-check with a did-you-mean.",
        ),
        reasons={
            "parses": "{path} cannot be read as a manifest: {detail}",
            "no_shop": "{path} holds {found}, but no Deployment named " + SHOP + ".",
            "schema": "Kubernetes would refuse the file: {problems}",
            "strategy": STRATEGY_REASON,
            "sound": "The file is valid, but: {problems}",
        },
    ),
)


@strategy_file.check
def _check_strategy_file(ctx: CheckContext) -> None:
    from kernel_helpers import manifests

    path = shop_path()
    ctx.evidence["path"] = str(path)
    try:
        documents = manifests.read(path)
    except manifests.ManifestError as exc:
        ctx.result("parses", False, "parses", path=f"{LAB}/{SHOP_FILE}", detail=exc)
        raise ctx.blocked_by("parses") from None
    shop = next((d for d in documents if d.kind == "Deployment" and d.name == SHOP), None)
    if shop is None:
        found = ", ".join(d.label for d in documents) or "no objects"
        ctx.result("parses", False, "no_shop", path=f"{LAB}/{SHOP_FILE}", found=found)
        raise ctx.blocked_by("parses")
    ctx.result("parses", True)
    try:
        schema = manifests.schema_problems(documents)
    except manifests.SchemaUnavailable as exc:
        raise Unmet("error", detail=exc) from None
    ctx.evidence["schema_problems"] = [str(p) for p in schema]
    ctx.result("schema", not schema, "schema", problems="; ".join(str(p) for p in schema[:3]))
    ok, fields = strategy_verdict(shop.data)
    ctx.evidence["strategy"] = fields
    ctx.result("strategy", ok, "strategy", **fields)
    sound = manifests.semantic_problems(documents)
    ctx.evidence["semantic_problems"] = [str(p) for p in sound]
    ctx.result("sound", not sound, "sound", problems="; ".join(str(p) for p in sound[:3]))


@strategy_file.setup
def _setup_strategy_file(ctx: SolveContext) -> None:
    starter_file(SHOP_FILE)


def _write_shop(text: str) -> None:
    """Write shop.yaml; a file of the student's own (not the starter, not the reference)
    is kept beside it as ``shop.yaml.mine``."""
    path = shop_path()
    ours = {(REPO_LAB_DIR / SHOP_FILE).read_text(encoding="utf-8"), reference_shop_yaml()}
    if path.exists() and path.read_text(encoding="utf-8", errors="replace") in ours:
        path.unlink()
    workspace.write_keeping(path, text)


@strategy_file.solve
def _solve_strategy_file(ctx: SolveContext) -> None:
    _write_shop(reference_shop_yaml())


@strategy_file.cleanup
def _cleanup_strategy_file(ctx: SolveContext) -> None:
    # Back to the starter, which `kubectl apply` in the later exercises expects.
    _write_shop((REPO_LAB_DIR / SHOP_FILE).read_text(encoding="utf-8"))


# --- 1. A rolling update with maxSurge / maxUnavailable -------------------------------------

rolling = Exercise(
    id="deployment.rolling-update",
    lab=LAB,
    needs_cluster=True,
    images=IMAGES,
    subchecks={"strategy": 1, "template": 1, "history": 2, "rolled-out": 1},
    text=Text(
        title="A rolling update that never drops below full strength",
        task=(
            f"Create the Deployment `{SHOP}` from `{LAB}/shop.yaml` ({SHOP_REPLICAS} replicas of "
            f"`{V1}` with a readiness probe on /api/version), after giving it a RollingUpdate "
            "strategy with `maxSurge: 1` and `maxUnavailable: 0`. Once all pods are Ready, "
            f"update it to `{V2}` and follow the rollout with `kubectl rollout status` and "
            "`kubectl rollout history`."
        ),
        subchecks={
            "strategy": "its strategy is RollingUpdate with maxSurge 1 and maxUnavailable 0",
            "template": f"its template runs {V2}, {SHOP_REPLICAS} replicas, with the readiness "
                        "probe",
            "history": f"the history holds an old ReplicaSet ({V1}, scaled to 0) and the current "
                       f"one ({V2}, full count)",
            "rolled-out": "every replica is updated and Ready",
        },
        hints=(
            "The strategy goes under `spec.strategy` in shop.yaml: `type: RollingUpdate` and a "
            "`rollingUpdate:` map with the two fields.",
            f"`kubectl -n {NAMESPACE} set image deployment/{SHOP} api={V2}` changes the image; "
            "so does editing shop.yaml and applying it again.",
            f"`kubectl -n {NAMESPACE} get rs -l app=shop` shows each ReplicaSet with its pod "
            "counts; `kubectl rollout history deployment/shop` lists the revisions.",
        ),
        reasons=_reasons(
            strategy=STRATEGY_REASON,
            template="shop's template is not the one asked for: {problems}.",
            history=(
                "The rollout history does not show an update from " + V1 + " to " + V2 + " yet: "
                "{problems}. History: {history}."
            ),
        ),
    ),
)


@rolling.check
def _check_rolling(ctx: CheckContext) -> None:
    roll = _read_rollout(ctx, SHOP)
    ok, fields = strategy_verdict(roll.deployment)
    ctx.evidence["strategy"] = fields
    ctx.result("strategy", ok, "strategy", **fields)

    image = template_image(roll.deployment)
    problems = _readiness_problems(roll.deployment)
    if image != V2:
        problems.insert(0, f"it runs {image or 'no image'}, not {V2}")
    if roll.wanted != SHOP_REPLICAS:
        problems.append(f"it wants {roll.wanted} replicas, not {SHOP_REPLICAS}")
    ctx.result("template", not problems, "template", problems="; ".join(problems))

    history_problems = []
    current = roll.current
    if not roll.sets:
        history_problems.append("shop has no ReplicaSets yet (the Deployment controller makes "
                                "them within a second or two)")
    elif current is None:
        history_problems.append("the Deployment has not recorded its current revision yet")
    else:
        mine = next(s for s in roll.summaries if s["uid"] == _meta(current).get("uid"))
        if mine["image"] != V2:
            history_problems.append(f"the current revision {mine['revision']} runs {mine['image']}")
        elif mine["replicas"] != roll.wanted:
            history_problems.append(f"the current ReplicaSet wants {mine['replicas']} of "
                                    f"{roll.wanted} pods")
        if mine["revision"] < 2:
            history_problems.append(f"the current revision is {mine['revision']}; an update "
                                    "makes revision 2 or later")
        olds = [s for s in roll.summaries if s["image"] == V1 and s["uid"] != mine["uid"]
                and s["revision"] < mine["revision"]]
        if not olds:
            history_problems.append(f"no earlier revision ran {V1}: create shop with {V1} "
                                    f"first, then update it to {V2}")
        elif not any(s["replicas"] == 0 and s["current"] == 0 for s in olds):
            busy = next(s for s in olds if s["replicas"] or s["current"])
            history_problems.append(f"the old ReplicaSet {busy['name']} still has "
                                    f"{busy['current']} pod(s)")
    if roll.summaries:
        ctx.notes.append("Rollout history: " + " → ".join(
            f"rev {s['revision']} {s['image']} ({s['ready']}/{s['replicas']})"
            for s in roll.summaries))
    ctx.result("history", not history_problems, "history",
               problems="; ".join(history_problems), history=_history_text(roll.summaries))

    done = kube.rollout_complete(roll.deployment)
    ctx.result("rolled-out", done, "not_ready", name=SHOP,
               hint="" if done else _not_ready_hint(ctx, roll), **_ready_text(roll))


@rolling.solve
def _solve_rolling(ctx: SolveContext) -> None:
    """``kubectl apply -f shop.yaml`` (api:1), wait, then the same with api:2, and wait."""
    ctx.apply(shop_deployment(V1))
    ctx.rollout(SHOP, timeout=120)
    ctx.apply(shop_deployment(V2))
    ctx.rollout(SHOP, timeout=180)


rolling.cleanup(deleting(("Deployment", SHOP)))


# --- 2. A broken release, and `kubectl rollout undo` ----------------------------------------

rollback = Exercise(
    id="deployment.rollback",
    lab=LAB,
    needs_cluster=True,
    images=IMAGES,
    subchecks={"broken": 1, "undone": 2, "ready": 1},
    text=Text(
        title="Roll back a release whose image does not exist",
        task=(
            f"Break `{SHOP}` on purpose: set its image to `{BROKEN}`, a tag that exists "
            "nowhere. Watch the new pod fail to pull its image while the old pods keep "
            f"serving, then go back with `kubectl rollout undo deployment/{SHOP}`."
        ),
        subchecks={
            "broken": "shop's history holds a ReplicaSet with the broken image, 0 pods Ready",
            "undone": "the rollout was undone: a working image in a newer revision than the "
                      "broken one",
            "ready": "every replica is Ready again",
        },
        hints=(
            f"`kubectl -n {NAMESPACE} set image deployment/{SHOP} api={BROKEN}`, then "
            f"`kubectl -n {NAMESPACE} get pods` a few times: look at the STATUS column.",
            f"`kubectl -n {NAMESPACE} rollout status deployment/{SHOP} --timeout=20s` gives up "
            "on a stuck rollout; `kubectl describe pod` shows the kubelet's pull errors.",
            f"`kubectl -n {NAMESPACE} rollout undo deployment/{SHOP}` goes back one revision "
            "(`--to-revision=N` to a chosen one).",
        ),
        reasons=_reasons(
            broken=(
                "No revision of shop uses an image that cannot be pulled yet ({history}). Set "
                "its image to " + BROKEN + "."
            ),
            still_broken=(
                "The rollout to {image} is stuck, as planned: {hint} Here no `kind load` can "
                "help, because the tag does not exist anywhere: undo the rollout with "
                f"`kubectl -n {NAMESPACE} rollout undo deployment/{SHOP}`. Meanwhile "
                "{ready} of {wanted} pods are still Ready and serving (maxUnavailable: 0)."
            ),
            not_lab_image=(
                "shop now runs {image}, which is not one of the lab's images ({images}). Undo "
                "back to the revision that worked."
            ),
            undone=(
                "shop's current revision {current} is not newer than the broken revision "
                "{broken}: the Deployment controller has not caught up yet, or the undo did "
                "not happen. History: {history}."
            ),
        ),
    ),
)


def _broken(summary: Mapping[str, Any]) -> bool:
    return summary["image"] not in VERSIONS


@rollback.check
def _check_rollback(ctx: CheckContext) -> None:
    roll = _read_rollout(ctx, SHOP)
    broken = [s for s in roll.summaries if _broken(s)]
    ctx.evidence["broken_revisions"] = broken
    history = _history_text(roll.summaries)
    if not ctx.result("broken", any(s["ready"] == 0 for s in broken), "broken", history=history):
        raise ctx.blocked_by("broken")

    image = template_image(roll.deployment)
    ready = _ready_text(roll)
    if image not in VERSIONS:
        # A ReplicaSet of a pullable image that is not the lab's has Ready pods: not stuck.
        serving = any(s["image"] == image and s["ready"] for s in roll.summaries)
        hint = "" if serving else _not_ready_hint(ctx, roll)
        ctx.evidence["stuck"] = {"image": image, **ready}
        ctx.result("undone", False, "not_lab_image" if serving else "still_broken", image=image,
                   hint=hint, images=", ".join(VERSIONS), ready=ready["ready"],
                   wanted=ready["wanted"])
        raise ctx.blocked_by("undone")
    current = roll.current
    current_rev = revision(current) if current else 0
    newest_broken = max(s["revision"] for s in broken)
    if current is not None:
        mine = next(s for s in roll.summaries if s["uid"] == _meta(current).get("uid"))
        if mine["revision_history"]:
            ctx.notes.append(f"ReplicaSet {mine['name']} came back as revision "
                             f"{mine['revision']} (it was revision {mine['revision_history']}): "
                             "an undo reuses the old ReplicaSet.")
    ctx.result("undone", current_rev > newest_broken and template_image(current or {}) == image,
               "undone", current=current_rev or "unknown", broken=newest_broken,
               history=history)

    done = kube.rollout_complete(roll.deployment)
    ctx.result("ready", done, "not_ready", name=SHOP,
               hint="" if done else _not_ready_hint(ctx, roll), **ready)


def _pull_failing(objects: dict[str, dict[str, Any]]) -> str | None:
    """The name of a pod of the broken image that failed to pull it, if there is one."""
    for pod in objects.values():
        containers = (pod.get("spec") or {}).get("containers") or []
        if not any(c.get("image") == BROKEN for c in containers):
            continue
        for state in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (state.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in PULL_REASONS:
                return _name(pod)
    return None


def undo(ctx: SolveContext, name: str) -> int:
    """``kubectl rollout undo deployment/NAME``: put back the previous revision's template.

    Returns the revision that was restored. Like kubectl, this copies the older
    ReplicaSet's pod template (without its ``pod-template-hash``) into the Deployment;
    the controller then reuses that ReplicaSet under a new revision number.
    """
    found = ctx.cluster.get("Deployment", name, NAMESPACE)
    if found is None:
        raise SolveError(f"there is no deployment {name} to undo")
    sets = owned_replica_sets(ctx.cluster, found)
    now = revision(found)
    older = [rs for rs in sets if 0 < revision(rs) < now]
    if not older:
        raise SolveError(f"deployment {name} has no revision before {now} to go back to")
    previous = older[-1]
    template = copy.deepcopy((previous.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop("pod-template-hash", None)
    # A merge patch keeps map keys it does not mention: remove the broken template's extras.
    before = ((found.get("spec") or {}).get("template") or {}).get("metadata") or {}
    for key in ("labels", "annotations"):
        extra = {k: None for k in before.get(key) or {} if k not in
                 ((template.get("metadata") or {}).get(key) or {})}
        if extra:
            template.setdefault("metadata", {}).setdefault(key, {}).update(extra)
    ctx.cluster.patch("Deployment", name, NAMESPACE, {"spec": {"template": template}})
    return revision(previous)


@rollback.solve
def _solve_rollback(ctx: SolveContext) -> None:
    """Start from a working shop, set the broken image, see the pull fail, undo, wait."""
    ctx.apply(shop_deployment(V2))
    ctx.rollout(SHOP, timeout=180)
    ctx.apply(shop_deployment(BROKEN))
    _wait(ctx, "Pod", _pull_failing, 120, f"a pod of {SHOP} failing to pull {BROKEN}")
    undo(ctx, SHOP)
    ctx.rollout(SHOP, timeout=180)


rollback.cleanup(deleting(("Deployment", SHOP)))


# --- 3. Blue/green: one Service switched in one step, and back ------------------------------

COLOURS = {"1": "blue", "2": "green"}

blue_green = Exercise(
    id="deployment.blue-green",
    lab=LAB,
    needs_cluster=True,
    images=IMAGES,
    subchecks={"deployments": 1, "service": 1, "switches": 2, "no-failures": 1},
    text=Text(
        title="Blue/green: switch the Service in one step, and back, without a failed request",
        task=(
            f"Apply `{LAB}/blue-green.yaml`: Deployments `{BLUE}` ({V1}) and `{GREEN}` ({V2}) "
            f"and the Service `{FRONT}` pointing at blue. Start the traffic pod from "
            f"`{LAB}/traffic.yaml`, then, while it runs, switch the Service to green with one "
            "`kubectl patch` of its selector, and later back to blue."
        ),
        subchecks={
            "deployments": f"{BLUE} runs {V1} and {GREEN} runs {V2}, every pod Ready",
            "service": f"Service {FRONT} (port 80 → {API_PORT}) points at blue again",
            "switches": "the traffic saw blue, then green, then blue: exactly two switches",
            "no-failures": f"not one request failed, over at least {MIN_REQUESTS} requests",
        },
        hints=(
            f"`kubectl -n {NAMESPACE} patch service {FRONT} -p "
            "'{\"spec\":{\"selector\":{\"app\":\"shop\",\"color\":\"green\"}}}'` switches in one "
            "step; the same with blue switches back.",
            "Wait until `kubectl logs traffic` shows version 1 answers before the first switch, "
            "and until it shows version 2 before the second.",
            f"A traffic pod runs only once: to try again, `kubectl -n {NAMESPACE} delete pod "
            f"{TRAFFIC}` and apply traffic.yaml again.",
        ),
        reasons=_reasons(
            deployments="The two colours are not ready to take traffic: {problems}.",
            service="Service " + FRONT + " is not as it should be at the end: {problems}.",
            no_traffic=(
                f"There is no pod named '{TRAFFIC}' in namespace '{NAMESPACE}': apply "
                f"traffic.yaml, and switch the Service while it runs."
            ),
            traffic_waiting="The traffic pod has not started: {hint}",
            switches="{problem} Versions seen, in order: {pattern}.",
            few=(
                "Only {count} request(s) are in the traffic pod's log; a fair test needs at "
                f"least {MIN_REQUESTS}. Let it run longer (it makes {TRAFFIC_REQUESTS})."
            ),
            failures=(
                "{count} of {total} requests failed (request(s) {numbers}; for example "
                "{example!r}). The Service pointed at pods that were not Ready, or at nothing, "
                "for a moment: make sure both colours are Ready before switching, and switch "
                "with one patch of the whole selector. Then delete the traffic pod and run "
                "it again."
            ),
        ),
    ),
)


def _colour_problems(ctx: CheckContext, name: str, image: str, colour: str) -> list[str]:
    roll = _read_rollout(ctx, name)
    found = roll.deployment
    problems = []
    if template_image(found) != image:
        problems.append(f"{name} runs {template_image(found) or 'no image'}, not {image}")
    labels = (((found.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "labels") or {}
    wanted = {"app": "shop", "color": colour}
    if any(labels.get(k) != v for k, v in wanted.items()):
        shown = ",".join(f"{k}={v}" for k, v in labels.items()) or "none"
        problems.append(f"{name}'s pods are labelled {shown}, not app=shop,color={colour}")
    if not kube.rollout_complete(found):
        state = _ready_text(roll)
        problems.append(f"{name} has {state['ready']}/{state['wanted']} Ready pods: "
                        f"{_not_ready_hint(ctx, roll)}")
    return problems


def _port_problems(svc: Mapping[str, Any]) -> list[str]:
    ports = (svc.get("spec") or {}).get("ports") or []
    if any(int(p.get("port", 0)) == 80 and str(p.get("targetPort", p.get("port")))
           in (str(API_PORT), "http") for p in ports):
        return []
    shown = ", ".join(f"{p.get('port')}→{p.get('targetPort', p.get('port'))}" for p in ports)
    return [f"its ports are {shown or 'none'}; it needs port 80 → targetPort {API_PORT}"]


def _endpoint_problems(ctx: CheckContext, svc: Mapping[str, Any]) -> list[str]:
    """A Service that selects the right labels but sends traffic nowhere: say why."""
    from kernel_helpers.kube_diagnosis import diagnose_service

    name = _name(svc)
    rows = service_backends(ctx.cluster, name)
    ctx.evidence.setdefault("endpoints", {})[name] = rows
    if any(r["ready"] for r in rows):
        return []
    hint = diagnose_service(svc, ctx.cluster.pods(NAMESPACE),
                            ctx.cluster.get("Endpoints", name, NAMESPACE),
                            ctx.cluster.events(NAMESPACE), NAMESPACE)
    return [f"it has no Ready endpoint: {hint or 'no pod it selects is Ready'}"]


@blue_green.check
def _check_blue_green(ctx: CheckContext) -> None:
    problems = _colour_problems(ctx, BLUE, V1, "blue") + _colour_problems(ctx, GREEN, V2, "green")
    ctx.result("deployments", not problems, "deployments", problems="; ".join(problems))

    svc = ctx.kget("Service", FRONT)
    selector = dict((svc.get("spec") or {}).get("selector") or {})
    ctx.evidence["selector"] = selector
    svc_problems = _port_problems(svc)
    wanted = {"app": "shop", "color": "blue"}
    if selector != wanted:
        shown = ",".join(f"{k}={v}" for k, v in selector.items()) or "nothing"
        if selector.get("color") == "green":
            svc_problems.append("it still selects green; switch it back to blue")
        else:
            svc_problems.append(f"it selects {shown}, not app=shop,color=blue")
    else:
        svc_problems.extend(_endpoint_problems(ctx, svc))
    ctx.result("service", not svc_problems, "service", problems="; ".join(svc_problems))

    pod = ctx.kfind("Pod", TRAFFIC)
    if pod is None:
        raise Unmet("no_traffic")
    status = pod.get("status") or {}
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    ctx.evidence["traffic"] = {"phase": status.get("phase"), "node": (pod.get("spec") or {}).get(
        "nodeName"), "command": containers[0].get("command"), "args": containers[0].get("args")}
    started = any("waiting" not in (s.get("state") or {}) for s in
                  status.get("containerStatuses") or [])
    if not started:
        from kernel_helpers.kube_diagnosis import diagnose_pod

        hint = diagnose_pod(pod, ctx.cluster.events(NAMESPACE), NAMESPACE) or \
            "it is still being created"
        raise Unmet("traffic_waiting", hint=hint)
    log = ctx.cluster.pod_log(TRAFFIC, NAMESPACE)
    traffic = parse_traffic(log)
    runs = traffic.segments()
    colours = [COLOURS.get(v, f"version {v}") for v, _, _ in runs]
    pattern = " → ".join(f"{c} ×{n}" for c, (_, n, _) in zip(colours, runs, strict=True)) or "none"
    ctx.evidence["traffic"].update(
        requests=len(traffic.requests), answers=traffic.counts(),
        failed=len(traffic.failures), failed_requests=traffic.failures[:20],
        segments=[{"version": v, "colour": c, "answers": n, "from_request": first}
                  for (v, n, first), c in zip(runs, colours, strict=True)],
        switch_points=[first for _, _, first in runs[1:]],
    )
    if len(runs) > 1:
        ctx.notes.append("Traffic: " + pattern + "; switches at request " + ", ".join(
            str(first) for _, _, first in runs[1:]) + f" of {len(traffic.requests)}.")
    expected = ["blue", "green", "blue"]
    if colours == expected:
        problem = ""
    elif not colours:
        problem = "The traffic pod has no answers in its log yet."
    elif colours[0] != "blue":
        problem = (f"The traffic started on {colours[0]}: the Service must point at blue "
                   "before the traffic pod starts.")
    elif colours == ["blue"]:
        problem = "The traffic only ever reached blue: switch the Service to green while it runs."
    elif colours == ["blue", "green"]:
        problem = "The traffic went from blue to green, but never back: switch back to blue."
    elif set(colours) - {"blue", "green"}:
        problem = "The traffic reached a version that is neither blue (1) nor green (2)."
    else:
        problem = (f"The versions changed {len(colours) - 1} times, not exactly twice: a switch "
                   "in one step never mixes the two colours. Delete the traffic pod and run it "
                   "again.")
    ctx.result("switches", not problem, "switches", problem=problem, pattern=pattern)

    if traffic.failures:
        numbers = ", ".join(str(n) for n in traffic.failures[:8]) + (
            "…" if len(traffic.failures) > 8 else "")
        ctx.result("no-failures", False, "failures", count=len(traffic.failures),
                   total=len(traffic.requests), numbers=numbers,
                   example=(traffic.failure_lines or ["FAIL"])[0])
    else:
        ctx.result("no-failures", len(traffic.requests) >= MIN_REQUESTS, "few",
                   count=len(traffic.requests))


def _log_tokens(ctx: SolveContext) -> list[str | None]:
    try:
        return parse_traffic(ctx.cluster.pod_log(TRAFFIC, NAMESPACE)).requests
    except Exception as exc:
        if kube.api_status(exc) in (400, 404):  # not started yet, or just replaced
            return []
        raise


def _await_answers(ctx: SolveContext, version: str, after: int, count: int = 5,
                   timeout: float = 60) -> int:
    """Wait until ``count`` answers of ``version`` follow request ``after``; their end index."""
    def seen() -> int | None:
        tokens = _log_tokens(ctx)
        return len(tokens) if tokens[after:].count(version) >= count else None

    colour = COLOURS[version]
    return _poll(seen, timeout, f"the traffic pod reaching {colour} (version {version})")


def switch(ctx: SolveContext, colour: str) -> None:
    """``kubectl patch service shop -p '{"spec":{"selector":{...,"color":COLOUR}}}'``."""
    ctx.cluster.patch("Service", FRONT, NAMESPACE,
                      {"spec": {"selector": {"app": "shop", "color": colour}}})


@blue_green.solve
def _solve_blue_green(ctx: SolveContext) -> None:
    """Both colours, the Service on blue, traffic; switch to green and back; wait for the end."""
    ctx.apply(front_service("blue"))
    ctx.apply(colour_deployment("blue"))
    ctx.apply(colour_deployment("green"))
    ctx.rollout(BLUE, timeout=120)
    ctx.rollout(GREEN, timeout=120)

    def only_blue(rows: list[dict[str, Any]]) -> bool:
        labels = _pod_labels(ctx.cluster)
        return bool(rows) and all(labels.get(str(r["pod"]), {}).get("color") == "blue"
                                  for r in rows)

    _wait_backends(ctx, FRONT, only_blue, 60, f"Service {FRONT} to send traffic to blue")
    # A pod runs its loop once: a finished (or foreign) traffic pod makes way for a new one.
    ctx.cluster.delete("Pod", TRAFFIC, NAMESPACE)
    _wait(ctx, "Pod", lambda pods: True if TRAFFIC not in pods else None, 60,
          "the old traffic pod to go away")
    ctx.apply(traffic_pod())
    mark = _await_answers(ctx, "1", 0, timeout=90)
    switch(ctx, "green")
    mark = _await_answers(ctx, "2", mark)
    switch(ctx, "blue")
    _await_answers(ctx, "1", mark)

    def finished(pods: dict[str, dict[str, Any]]) -> str | None:
        phase = str((pods.get(TRAFFIC, {}).get("status") or {}).get("phase", ""))
        return phase if phase in ("Succeeded", "Failed") else None

    _wait(ctx, "Pod", finished, TRAFFIC_REQUESTS * 0.3 + 60, "the traffic pod to finish")


blue_green.cleanup(deleting(("Pod", TRAFFIC), ("Service", FRONT), ("Deployment", BLUE),
                            ("Deployment", GREEN)))


# --- 4. A canary by replica ratio ----------------------------------------------------------

canary = Exercise(
    id="deployment.canary",
    lab=LAB,
    needs_cluster=True,
    images=IMAGES,
    subchecks={"deployments": 1, "service": 1, "ratio": 2},
    text=Text(
        title="A canary: one new pod among three old ones",
        task=(
            f"Run `{STABLE}` ({STABLE_REPLICAS} × {V1}, labels app=shop, track=stable) and "
            f"`{CANARY}` ({CANARY_REPLICAS} × {V2}, app=shop, track=canary) behind one Service "
            f"`{ALL}` that selects app=shop only, so that about a quarter of the requests reach "
            f"the new version. `{LAB}/canary.yaml` has the stable part; write the rest."
        ),
        subchecks={
            "deployments": f"{STABLE} runs {STABLE_REPLICAS} × {V1} and {CANARY} "
                           f"{CANARY_REPLICAS} × {V2}, labelled by track, every pod Ready",
            "service": f"Service {ALL} selects app=shop and nothing else, port 80 → {API_PORT}",
            "ratio": f"its endpoints are {STABLE_REPLICAS} stable and {CANARY_REPLICAS} canary "
                     "pods, and no other",
        },
        hints=(
            "Copy the stable Deployment in canary.yaml and change its name, track label (in "
            "the selector and the template), image and replicas.",
            f"`kubectl -n {NAMESPACE} get endpointslices -l kubernetes.io/service-name={ALL}` "
            "lists the pod addresses the Service sends traffic to; "
            f"`kubectl -n {NAMESPACE} get pods -L track` shows each pod's track.",
            "If other pods labelled app=shop are still running (blue/green), the Service picks "
            f"them too: `kubectl -n {NAMESPACE} delete deployment {BLUE} {GREEN} {SHOP}`.",
        ),
        reasons=_reasons(
            deployments="The two tracks are not as asked: {problems}.",
            service="Service " + ALL + " is not as asked: {problems}.",
            ratio=(
                "Service " + ALL + " has {stable} stable and {canary} canary Ready endpoint(s)"
                "{others}; it should have " + str(STABLE_REPLICAS) + " and "
                + str(CANARY_REPLICAS) + " ({share} of the traffic goes to the canary now)."
                "{hint}"
            ),
        ),
    ),
)


def _track_problems(ctx: CheckContext, track: str) -> tuple[list[str], dict[str, Any]]:
    reference = track_deployment(track)
    name, image = _name(reference), template_image(reference)
    replicas = reference["spec"]["replicas"]
    roll = _read_rollout(ctx, name)
    found = roll.deployment
    problems = []
    if template_image(found) != image:
        problems.append(f"{name} runs {template_image(found) or 'no image'}, not {image}")
    if roll.wanted != replicas:
        problems.append(f"{name} wants {roll.wanted} replica(s), not {replicas}")
    labels = (((found.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "labels") or {}
    if labels.get("app") != "shop" or labels.get("track") != track:
        shown = ",".join(f"{k}={v}" for k, v in labels.items()) or "none"
        problems.append(f"{name}'s pods are labelled {shown}, not app=shop,track={track}")
    if not kube.rollout_complete(found):
        state = _ready_text(roll)
        problems.append(f"{name} has {state['ready']}/{state['wanted']} Ready pods: "
                        f"{_not_ready_hint(ctx, roll)}")
    return problems, found


@canary.check
def _check_canary(ctx: CheckContext) -> None:
    stable_problems, stable = _track_problems(ctx, "stable")
    canary_problems, canary_found = _track_problems(ctx, "canary")
    problems = stable_problems + canary_problems
    # Two Deployments whose selectors overlap fight over each other's pods' ReplicaSets.
    for mine, other in ((stable, canary_found), (canary_found, stable)):
        selector = ((mine.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        labels = (((other.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
            "labels") or {}
        if kube.matches(selector, labels):
            problems.append(f"{_name(mine)}'s selector also matches {_name(other)}'s pods; add "
                            "the track label to its selector")
    ctx.result("deployments", not problems, "deployments", problems="; ".join(problems))

    svc = ctx.kget("Service", ALL)
    selector = dict((svc.get("spec") or {}).get("selector") or {})
    ctx.evidence["selector"] = selector
    svc_problems = _port_problems(svc)
    if selector != {"app": "shop"}:
        shown = ",".join(f"{k}={v}" for k, v in selector.items()) or "nothing"
        svc_problems.append(f"it selects {shown}; it should select app=shop only, so that "
                            "both tracks get traffic")
    ctx.result("service", not svc_problems, "service", problems="; ".join(svc_problems))

    rows = [r for r in service_backends(ctx.cluster, ALL) if r["ready"]]
    labels_by_pod = _pod_labels(ctx.cluster)
    by_track: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        track = labels_by_pod.get(str(row["pod"]), {}).get("track") or "other"
        by_track.setdefault(track if track in ("stable", "canary") else "other", []).append(row)
    counts = {t: len(by_track.get(t, [])) for t in ("stable", "canary", "other")}
    total = sum(counts.values())
    share = f"{100 * counts['canary'] / total:.0f} %" if total else "none"
    ctx.evidence["endpoints_by_track"] = by_track
    ctx.evidence["canary_share"] = share
    ctx.notes.append(f"{ALL} endpoints: {counts['stable']} stable, {counts['canary']} canary"
                     + (f", {counts['other']} other" if counts["other"] else "")
                     + f" → {share} of new connections reach the canary.")
    others = ""
    hint = ""
    if counts["other"]:
        foreign = sorted({str(r["pod"]) for r in by_track["other"]})
        owners = sorted({name.rsplit("-", 2)[0] for name in foreign if name.count("-") >= 2})
        more = ", …" if len(foreign) > 4 else ""
        others = f" and {counts['other']} from other pods ({', '.join(foreign[:4])}{more})"
        hint = (" The Service picks every Ready pod labelled app=shop, whichever Deployment "
                "made it: remove the earlier exercises' Deployments ("
                + (", ".join(owners) or "see `kubectl get pods -L app,track`")
                + f") with `kubectl -n {NAMESPACE} delete deployment NAME`.")
    elif not rows:
        hint = " " + (" ".join(_endpoint_problems(ctx, svc)) or "It has no Ready endpoint.")
    ok = counts == {"stable": STABLE_REPLICAS, "canary": CANARY_REPLICAS, "other": 0}
    ctx.result("ratio", ok, "ratio", stable=counts["stable"], canary=counts["canary"],
               others=others, share=share, hint=hint)


@canary.solve
def _solve_canary(ctx: SolveContext) -> None:
    """Clear the stage, apply both tracks and ``shop-all``, wait for a 3:1 set of endpoints.

    ``shop-all`` would also pick the pods of the earlier exercises (they are labelled
    app=shop too), so, as the notebook asks the student, their Deployments go first.
    """
    ctx.delete(("Deployment", SHOP), ("Deployment", BLUE), ("Deployment", GREEN))
    ctx.apply(track_deployment("stable"))
    ctx.apply(track_deployment("canary"))
    ctx.apply(all_service())
    ctx.rollout(STABLE, timeout=120)
    ctx.rollout(CANARY, timeout=120)

    def three_to_one(rows: list[dict[str, Any]]) -> bool:
        labels = _pod_labels(ctx.cluster)
        tracks = [labels.get(str(r["pod"]), {}).get("track") for r in rows]
        return (tracks.count("stable"), tracks.count("canary"), len(tracks)) == (
            STABLE_REPLICAS, CANARY_REPLICAS, STABLE_REPLICAS + CANARY_REPLICAS)

    _wait_backends(ctx, ALL, three_to_one, 120, f"Service {ALL} to reach 3 stable + 1 canary pods")


canary.cleanup(deleting(("Deployment", STABLE), ("Deployment", CANARY), ("Service", ALL)))
