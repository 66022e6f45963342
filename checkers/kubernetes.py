"""Lab 06 — Kubernetes on a multi-node kind cluster: desired state, spread, services, config.

Everything graded here lives in the lab's own namespace, ``dockyard-k8s``; students
create it with kubectl (``-n dockyard-k8s``), the reference solutions with server-side
apply. Checks read live state only: objects, pods, endpoints, events and one pod's
log. Events are evidence with a caveat: a cluster keeps them for about an hour, and
the reasons say so.

The module is laid out as:

1. the reference manifests, as plain dict builders (used by the solutions, the tests,
   the starter files and the static exercise's reference ``web.yaml``);
2. small helpers shared by the checks, solutions and cleanups;
3. one declarative block per exercise: ``Exercise(...)`` with its text, then its
   ``@check``, ``@solve`` and (where needed) ``@setup`` and ``@cleanup``.

The last exercise, ``kubernetes.manifest``, grades a file offline with
:mod:`kernel_helpers.manifests`, so it works with no cluster at all (Binder).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from checkers import CheckContext, Exercise, SolveContext, SolveError, Text, Unmet, deleting
from kernel_helpers import kubernetes as kube
from kernel_helpers import manifests, workspace
from kernel_helpers.kube_diagnosis import diagnose_service

LAB = "06-kubernetes"
NAMESPACE = kube.LAB_NAMESPACES[LAB]
IMAGE = "dockyard/api:1"
API_PORT = 8000
API_PATH = "/api/version"
#: Paths the lab's API answers with 200; a probe on any of them is a working probe.
API_PATHS = ("/api/version", "/api/hello")
HOSTNAME_KEY = "kubernetes.io/hostname"
REPO_LAB_DIR = Path(__file__).resolve().parent.parent / "labs" / LAB

WEB, WEB_REPLICAS = "web", 3
APP_LABELS = {"app": "web"}
BROKEN, BROKEN_SELECTOR = "web-broken", {"app": "web-frontend"}
PROBE = "probe"
CONFIG, CONFIG_KEY, CONFIG_DIR = "web-config", "GREETING", "/etc/greeter"
SECRET, SECRET_KEY = "web-token", "API_TOKEN"
GREETER = "greeter"
GREEDY = "greedy"
#: Far more CPU than any laptop or lab server has, so no node can ever take the pod.
GREEDY_CPU = "1000"
SCALE_UP, SCALE_DOWN = 5, 2
MANIFEST_FILE = "web.yaml"
ROLLOUT_TIMEOUT = 120.0
EVENTS_NOTE = ("Dockyard reads this from the cluster's events, which Kubernetes keeps for "
               "about an hour; if it was longer ago, do it again.")


# --- 1. reference manifests --------------------------------------------------------------------


def web_container() -> dict[str, Any]:
    """The API container with everything the lab asks for: port, probes, requests, limits."""
    probe = {"httpGet": {"path": API_PATH, "port": API_PORT}}
    return {
        "name": "api",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": API_PORT}],
        "readinessProbe": {**probe, "periodSeconds": 2, "failureThreshold": 2},
        "livenessProbe": {**probe, "initialDelaySeconds": 3, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "50m", "memory": "16Mi"},
                      "limits": {"cpu": "200m", "memory": "64Mi"}},
    }


#: Spread over nodes. `nodeTaintsPolicy: Honor` leaves the tainted control-plane node out
#: of the count; by default it counts as a domain with zero pods, which blocks the third pod.
SPREAD_RULE = {
    "maxSkew": 1,
    "topologyKey": HOSTNAME_KEY,
    "whenUnsatisfiable": "DoNotSchedule",
    "nodeTaintsPolicy": "Honor",
    "labelSelector": {"matchLabels": dict(APP_LABELS)},
}


def web_deployment(replicas: int = WEB_REPLICAS) -> dict[str, Any]:
    """Deployment ``web``: ``replicas`` pods of the API, spread over the workers."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": WEB, "labels": dict(APP_LABELS)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(APP_LABELS)},
            "template": {
                "metadata": {"labels": dict(APP_LABELS)},
                "spec": {
                    # busybox httpd as PID 1 ignores SIGTERM: don't wait the default 30 s.
                    "terminationGracePeriodSeconds": 5,
                    "topologySpreadConstraints": [json.loads(json.dumps(SPREAD_RULE))],
                    "containers": [web_container()],
                },
            },
        },
    }


def web_service(name: str = WEB, selector: Mapping[str, str] = APP_LABELS) -> dict[str, Any]:
    """A ClusterIP Service on port 80 that sends traffic to the pods' port 8000."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": dict(APP_LABELS)},
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [{"name": "http", "port": 80, "targetPort": API_PORT}],
        },
    }


def broken_service() -> dict[str, Any]:
    """What exercise 6 starts from: a Service whose selector matches no pod."""
    return web_service(BROKEN, BROKEN_SELECTOR)


def probe_pod() -> dict[str, Any]:
    """A one-shot client that asks Service ``web`` by its DNS name, as ``kubectl run`` would.

    It retries a few times (a fresh Service takes a moment to reach the cluster's DNS);
    ``timeout`` bounds each request, since busybox wget has no working timeout of its own.
    """
    script = (f"for i in 1 2 3 4 5; do timeout 5 wget -qO- http://{WEB}{API_PATH} && exit 0; "
              "sleep 2; done; exit 1")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": PROBE, "labels": {"run": PROBE}},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 60,
            "containers": [{"name": PROBE, "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script]}],
        },
    }


def web_config() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIG},
            "data": {CONFIG_KEY: "Hello from a ConfigMap"}}


def web_token(token: str = "s3cr3t-t0ken") -> dict[str, Any]:
    """Secret ``web-token``; ``data`` holds base64, which is an encoding, not encryption."""
    encoded = base64.b64encode(token.encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET},
            "type": "Opaque", "data": {SECRET_KEY: encoded}}


def greeter_deployment() -> dict[str, Any]:
    """Deployment ``greeter``: reads GREETING as env and as a file, API_TOKEN from the Secret."""
    script = (f'echo "env: $GREETING"; echo "file: $(cat {CONFIG_DIR}/{CONFIG_KEY})"; '
              'echo "token: ${#API_TOKEN} characters"; '
              f"exec httpd -f -p {API_PORT} -h /srv")
    labels = {"app": GREETER}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": GREETER, "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": GREETER,
                        "image": IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", script],
                        "ports": [{"containerPort": API_PORT}],
                        "env": [
                            {"name": CONFIG_KEY, "valueFrom": {"configMapKeyRef": {
                                "name": CONFIG, "key": CONFIG_KEY}}},
                            {"name": SECRET_KEY, "valueFrom": {"secretKeyRef": {
                                "name": SECRET, "key": SECRET_KEY}}},
                        ],
                        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR,
                                          "readOnly": True}],
                        "readinessProbe": {"httpGet": {"path": API_PATH, "port": API_PORT},
                                           "periodSeconds": 2},
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": CONFIG}}],
                },
            },
        },
    }


def greedy_deployment() -> dict[str, Any]:
    """Deployment ``greedy``: one pod asking for more CPU than any node has."""
    labels = {"app": GREEDY}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": GREEDY, "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{
                    "name": "api",
                    "image": IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "resources": {"requests": {"cpu": GREEDY_CPU, "memory": "16Mi"}},
                }]},
            },
        },
    }


def reference_web_yaml() -> str:
    """The reference answer to exercise 11: Deployment and Service ``web`` in one file."""
    import yaml

    header = ("# Deployment and Service for the lab's API (reference solution of "
              "kubernetes.manifest).\n# Apply it with: kubectl -n dockyard-k8s apply -f web.yaml\n")
    return header + yaml.safe_dump_all([web_deployment(), web_service()], sort_keys=False)


#: What `dockyard lab` copies into the workspace's lab folder (the notebook refers to them).
STARTER_FILES = ("web-deployment.yaml", "greeter.yaml", "greedy.yaml")


def starter_files() -> list[Path]:
    """The starter files in the student's lab folder, copied from the repo where missing."""
    folder = workspace.lab_folder(LAB)
    folder.mkdir(parents=True, exist_ok=True)
    found = []
    for name in STARTER_FILES:
        target = folder / name
        if not target.exists():
            shutil.copyfile(REPO_LAB_DIR / name, target)
        found.append(target)
    return found


# --- 2. shared helpers -------------------------------------------------------------------------

#: Reasons several exercises give; each Text adds its own.
LAB_REASONS = {
    "not_ready": "{ready} of {wanted} pod(s) of {name} are Ready and up to date. {hint}",
    "not_ready_hint": "The rollout is still going: wait for `kubectl -n " + NAMESPACE
                      + " rollout status deployment/{name}` and check again.",
}


def _reasons(**own: str) -> dict[str, str]:
    return {**LAB_REASONS, **own}


def _spec(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict((obj or {}).get("spec") or {})


def _meta(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict((obj or {}).get("metadata") or {})


def _name(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name", "?"))


def _pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    return dict((_spec(workload).get("template") or {}).get("spec") or {})


def _template_labels(workload: Mapping[str, Any]) -> dict[str, str]:
    template = _spec(workload).get("template") or {}
    return dict((template.get("metadata") or {}).get("labels") or {})


def _containers(workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [c for c in _pod_spec(workload).get("containers") or [] if isinstance(c, dict)]


def _api_container(workload: Mapping[str, Any]) -> dict[str, Any]:
    """The container running the lab's API (else the first one; {} if there is none)."""
    found = _containers(workload)
    for container in found:
        if str(container.get("image", "")).startswith("dockyard/api:"):
            return container
    return found[0] if found else {}


def _labels_text(labels: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (labels or {}).items()) or "none"


def _replicas(workload: Mapping[str, Any]) -> int:
    value = _spec(workload).get("replicas", 1)
    return int(value) if isinstance(value, int) else 1


def _ready_count(workload: Mapping[str, Any]) -> int:
    return int(((workload.get("status") or {}).get("readyReplicas")) or 0)


def _rolled_out(ctx: CheckContext, key: str, workload: dict[str, Any]) -> bool:
    """Sub-check ``key``: every replica updated and Ready; otherwise a specific diagnosis."""
    name = _name(workload)
    pods = ctx.pods_of(workload)
    ctx.evidence.setdefault("status", {})[name] = {
        k: (workload.get("status") or {}).get(k)
        for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    }
    if kube.rollout_complete(workload):
        return ctx.result(key, True)
    hint = ctx.diagnose(pods) or _stalled(workload) or LAB_REASONS["not_ready_hint"].format(
        name=name)
    return ctx.result(key, False, "not_ready", ready=_ready_count(workload),
                      wanted=_replicas(workload), name=name, hint=hint)


def _stalled(workload: Mapping[str, Any]) -> str:
    for condition in (workload.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return f"It cannot create pods: {condition.get('message', '')}"
        if condition.get("type") == "Progressing" and condition.get("status") == "False":
            return f"Its rollout gave up: {condition.get('message', '')}"
    return ""


def _owner_uid(obj: Mapping[str, Any]) -> str:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid", ""))
    return ""


def _replica_sets(ctx: CheckContext, deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``kubectl get rs -n NS`` owned (as controller) by ``deployment``."""
    uid = str(_meta(deployment).get("uid", ""))
    return [rs for rs in ctx.cluster.objects("ReplicaSet", ctx.namespace)
            if uid and _owner_uid(rs) == uid]


def _event_about(event: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """Whether ``event`` is about this very object (same name, and same uid when both know it)."""
    involved = event.get("involvedObject") or {}
    if involved.get("name") != _name(obj):
        return False
    uid, seen = _meta(obj).get("uid"), involved.get("uid")
    return not (uid and seen and uid != seen)


def _message(event: Mapping[str, Any]) -> str:
    # More than 10 similar events in 10 minutes are folded into one with this prefix.
    return str(event.get("message", "")).removeprefix("(combined from similar events): ")


def _first_time(event: Mapping[str, Any]) -> datetime:
    return kube.parse_time(event.get("firstTimestamp")) or kube.event_time(event)


def _endpoint_targets(ctx: CheckContext, service: str,
                      ) -> tuple[set[str], dict[str, Any] | None]:
    """The Ready backends of ``service`` as pod names (or IPs), and its Endpoints object.

    ``kubectl get endpoints NAME``; EndpointSlices when the Endpoints object is absent.
    """
    endpoints = ctx.cluster.get("Endpoints", service, ctx.namespace)
    if endpoints is not None:
        found = {str((a.get("targetRef") or {}).get("name") or a.get("ip"))
                 for subset in endpoints.get("subsets") or []
                 for a in subset.get("addresses") or []}
        return found, endpoints
    slices = ctx.cluster.objects("EndpointSlice", ctx.namespace,
                                 {"kubernetes.io/service-name": service})
    found = {str((e.get("targetRef") or {}).get("name") or (e.get("addresses") or ["?"])[0])
             for s in slices for e in s.get("endpoints") or []
             if (e.get("conditions") or {}).get("ready") is not False}
    return found, None


def _same_backends(endpoints: set[str], pods: list[dict[str, Any]]) -> bool:
    """Every Ready pod is an endpoint and every endpoint is one of them (by name or IP)."""
    names = {_name(p) for p in pods}
    ips = {str((p.get("status") or {}).get("podIP")) for p in pods}
    matched = {e for e in endpoints if e in names or e in ips}
    return matched == endpoints and len(endpoints) == len(pods)


# -- solve and cleanup helpers --


def _apply_workload(ctx: SolveContext, manifest: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply; a same-named object with another (immutable) selector is replaced."""
    kind, name = manifest["kind"], manifest["metadata"]["name"]
    current = ctx.cluster.get(kind, name, ctx.namespace)
    if current is not None and kind == "Deployment" and \
            _spec(current).get("selector") != manifest["spec"]["selector"]:
        ctx.delete((kind, name))
        _wait_gone(ctx, kind, name)
    return ctx.apply(manifest)


def _wait_gone(ctx: SolveContext, kind: str, name: str, timeout: float = 60) -> None:
    try:
        ctx.cluster.wait_for(kind, ctx.namespace,
                             lambda objects: True if name not in objects else None,
                             timeout=timeout, what=f"{kind.lower()}/{name} to be deleted")
    except kube.ClusterFault as exc:
        raise SolveError(str(exc)) from None


def _apply_web(ctx: SolveContext, replicas: int | None = None) -> dict[str, Any]:
    """Apply the reference ``web`` and wait for it; keeps the current replica count if unset."""
    if replicas is None:
        current = ctx.cluster.get("Deployment", WEB, ctx.namespace)
        replicas = _replicas(current) if current is not None else WEB_REPLICAS
    _apply_workload(ctx, web_deployment(replicas))
    return ctx.rollout(WEB, timeout=ROLLOUT_TIMEOUT)


def _wait_endpoints(ctx: SolveContext, service: str, timeout: float = 60) -> None:
    def ready(objects: dict[str, dict[str, Any]]) -> bool | None:
        endpoints = objects.get(service) or {}
        return True if any(s.get("addresses") for s in endpoints.get("subsets") or []) else None

    try:
        ctx.cluster.wait_for("Endpoints", ctx.namespace, ready, timeout=timeout,
                             what=f"service {service} to get endpoints")
    except kube.ClusterFault as exc:
        raise SolveError(str(exc)) from None


# --- 3. the exercises ----------------------------------------------------------------------------

# --- 3.1 A Deployment with three replicas ---

deployment = Exercise(
    id="kubernetes.deployment",
    lab=LAB,
    needs_cluster=True,
    images=("api-v1",),
    subchecks={"exists": 1, "replicas": 1, "ready": 2},
    text=Text(
        title="Run three replicas with a Deployment",
        task=(
            f"In namespace `{NAMESPACE}`, create a Deployment `{WEB}` that runs "
            f"{WEB_REPLICAS} replicas of `{IMAGE}` (container port {API_PORT}), with pods "
            f"labelled `app=web` and selected by that label. Wait until all of them are Ready."
        ),
        subchecks={
            "exists": f"deployment {WEB} runs {IMAGE} on port {API_PORT}, pods labelled app=web",
            "replicas": f"it wants {WEB_REPLICAS} replicas",
            "ready": "every replica is up to date and Ready",
        },
        hints=(
            "Your lab folder has `web-deployment.yaml` to start from: set `replicas` and apply "
            f"it with `kubectl -n {NAMESPACE} apply -f web-deployment.yaml`.",
            "`spec.selector.matchLabels` must match `spec.template.metadata.labels`: that is "
            "how the Deployment finds its own pods.",
            f"`kubectl -n {NAMESPACE} get pods -o wide` shows each pod's state and node; "
            f"`kubectl -n {NAMESPACE} describe pod NAME` explains a pod that is stuck.",
        ),
        reasons=_reasons(
            exists="Deployment " + WEB + " is there, but its pod template {problems}.",
            replicas="Deployment " + WEB + " wants {actual} replica(s); this exercise asks for "
                     + str(WEB_REPLICAS) + ". (Later exercises change it: your best score "
                     "is kept.)",
        ),
    ),
)


def _web_shape_problems(web: Mapping[str, Any]) -> list[str]:
    """What differs from 'runs dockyard/api:1 on port 8000, pods labelled app=web'."""
    problems = []
    container = _api_container(web)
    image = str(container.get("image", "nothing"))
    if image != IMAGE:
        problems.append(f"runs {image}, not {IMAGE}")
    ports = [p.get("containerPort") for p in container.get("ports") or []]
    if API_PORT not in ports:
        problems.append(f"declares container port(s) {ports or 'none'}, not {API_PORT}")
    labels = _template_labels(web)
    if labels.get("app") != "web":
        problems.append(f"labels its pods {_labels_text(labels)}, without app=web")
    return problems


@deployment.check
def _check_deployment(ctx: CheckContext) -> None:
    web = ctx.kget("Deployment", WEB)
    problems = _web_shape_problems(web)
    ctx.result("exists", not problems, "exists", problems="; ".join(problems))
    ctx.result("replicas", _replicas(web) == WEB_REPLICAS, "replicas", actual=_replicas(web))
    _rolled_out(ctx, "ready", web)


@deployment.solve
def _solve_deployment(ctx: SolveContext) -> None:
    _apply_web(ctx, WEB_REPLICAS)


deployment.cleanup(deleting(("Deployment", WEB)))


# --- 3.2 Pods spread across the worker nodes ---

spread = Exercise(
    id="kubernetes.spread",
    lab=LAB,
    needs_cluster=True,
    images=("api-v1",),
    subchecks={"rule": 1, "placed": 2},
    text=Text(
        title="Spread the pods across the worker nodes",
        task=(
            f"Add a spread rule to `{WEB}`'s pod template so that its pods never pile up on "
            "one node: a `topologySpreadConstraints` entry on `kubernetes.io/hostname` with "
            "`maxSkew: 1` (or a pod anti-affinity on that key). Apply it, wait for the "
            "rollout, and look at where the pods landed with `dy.node_map()`."
        ),
        subchecks={
            "rule": f"{WEB}'s pods carry a spread rule on {HOSTNAME_KEY} that selects them",
            "placed": "all its pods are Ready, on at least two worker nodes, none on the "
                      "control plane",
        },
        hints=(
            "A topology spread constraint needs `maxSkew`, `topologyKey`, `whenUnsatisfiable` "
            "and a `labelSelector` that matches the pods themselves (`app: web`).",
            "With `whenUnsatisfiable: DoNotSchedule`, also set `nodeTaintsPolicy: Honor`: "
            "otherwise the tainted control-plane node counts as a node with zero pods, and "
            "the third pod can never be placed.",
            f"`kubectl -n {NAMESPACE} get pods -o wide` lists the NODE of every pod.",
        ),
        reasons=_reasons(
            rule="Deployment " + WEB + "'s pod template has no usable spread rule: {why}.",
            workers="The cluster has {count} worker node(s) ({names}); spreading needs two. "
                    "`dockyard cluster up` makes kind's cluster with two workers.",
            placed="The pods are not spread out yet: {where}. {why}",
        ),
    ),
)


def spread_rule(workload: Mapping[str, Any]) -> tuple[str, str]:
    """``(description, '')`` of the first usable spread rule, or ``('', why there is none)``."""
    pod_spec = _pod_spec(workload)
    labels = _template_labels(workload)
    why = "no topologySpreadConstraints and no podAntiAffinity"
    for rule in pod_spec.get("topologySpreadConstraints") or []:
        selector = rule.get("labelSelector")
        if rule.get("topologyKey") != HOSTNAME_KEY:
            why = f"its spread constraint uses topologyKey {rule.get('topologyKey')!r}"
        elif rule.get("maxSkew") != 1:
            why = f"its spread constraint allows maxSkew {rule.get('maxSkew')}, not 1"
        elif not manifests.selector_matches(selector, labels):
            why = (f"its spread constraint's labelSelector does not match the pods' own labels "
                   f"({_labels_text(labels)}), so it counts no pods")
        else:
            return (f"topologySpreadConstraints on {HOSTNAME_KEY}, maxSkew 1, "
                    f"{rule.get('whenUnsatisfiable', 'DoNotSchedule')}"), ""
    anti = (pod_spec.get("affinity") or {}).get("podAntiAffinity") or {}
    terms = [(t, "required") for t in anti.get(
        "requiredDuringSchedulingIgnoredDuringExecution") or []]
    terms += [(t.get("podAffinityTerm") or {}, "preferred") for t in anti.get(
        "preferredDuringSchedulingIgnoredDuringExecution") or []]
    for term, strength in terms:
        if term.get("topologyKey") != HOSTNAME_KEY:
            why = f"its pod anti-affinity uses topologyKey {term.get('topologyKey')!r}"
        elif not manifests.selector_matches(term.get("labelSelector"), labels):
            why = "its pod anti-affinity's labelSelector does not match the pods' own labels"
        else:
            return f"{strength} podAntiAffinity on {HOSTNAME_KEY}", ""
    return "", why


def _where(placed: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{node}: {', '.join(pods)}" for node, pods in placed.items()) or "no pods"


@spread.check
def _check_spread(ctx: CheckContext) -> None:
    web = ctx.kget("Deployment", WEB)
    found, why = spread_rule(web)
    ctx.evidence["rule"] = found or why
    ctx.result("rule", bool(found), "rule", why=why)
    nodes = ctx.cluster.nodes()
    workers = sorted(_name(n) for n in nodes if not kube.is_control_plane(n))
    control = {_name(n) for n in nodes if kube.is_control_plane(n)}
    pods = ctx.pods_of(web)
    placed: dict[str, list[str]] = {}
    for pod in pods:
        node = _spec(pod).get("nodeName") or "(not scheduled)"
        placed.setdefault(str(node), []).append(_name(pod))
    ctx.evidence["placement"] = placed
    ctx.evidence["nodes"] = {"workers": workers, "control_plane": sorted(control)}
    ctx.notes.append("Where web's pods run: " + _where(placed))
    if len(workers) < 2:
        raise Unmet("workers", count=len(workers), names=", ".join(workers) or "none")
    used = {str(_spec(p).get("nodeName")) for p in pods if kube.pod_ready(p)} & set(workers)
    on_control = [_name(p) for p in pods if _spec(p).get("nodeName") in control]
    if on_control:
        why = (f"{', '.join(on_control)} run(s) on the control plane; remove the toleration "
               "that lets them go there.")
    elif not kube.rollout_complete(web):
        why = ctx.diagnose(pods) or LAB_REASONS["not_ready_hint"].format(name=WEB)
        if "topology spread" in why and "nodeTaintsPolicy" not in json.dumps(_pod_spec(web)):
            why += (" Kubernetes counts the tainted control-plane node as an empty node here: "
                    "add `nodeTaintsPolicy: Honor` to the constraint.")
    elif len(used) < 2:
        why = (f"web's Ready pods use {len(used)} worker node(s). With at least 2 replicas and "
               "a spread rule, a new rollout places them apart (`kubectl -n "
               f"{NAMESPACE} rollout restart deployment/{WEB}`).")
    else:
        ctx.result("placed", True)
        return
    ctx.result("placed", False, "placed", where=_where(placed), why=why)


@spread.solve
def _solve_spread(ctx: SolveContext) -> None:
    _apply_web(ctx, WEB_REPLICAS)


spread.cleanup(deleting(("Deployment", WEB)))


# --- 3.3 Scale up, then down ---

scale = Exercise(
    id="kubernetes.scale",
    lab=LAB,
    needs_cluster=True,
    images=("api-v1",),
    subchecks={"up": 1, "down": 1, "now": 1},
    text=Text(
        title="Scale up, then down",
        task=(
            f"Scale `{WEB}` up to {SCALE_UP} replicas and wait until they are all Ready; then "
            f"scale it down to {SCALE_DOWN}. Watch the Deployment's events while you do it."
        ),
        subchecks={
            "up": f"the deployment controller scaled {WEB}'s ReplicaSet up to {SCALE_UP}",
            "down": f"afterwards it scaled the same ReplicaSet down to {SCALE_DOWN}",
            "now": f"{WEB} now wants {SCALE_DOWN} replicas, and {SCALE_DOWN} are Ready",
        },
        hints=(
            f"`kubectl -n {NAMESPACE} scale deployment/{WEB} --replicas=N` changes one number "
            "in the desired state; editing `replicas` in your file and applying it does too.",
            f"`kubectl -n {NAMESPACE} events --for deployment/{WEB}` lists the "
            "ScalingReplicaSet events the check reads.",
        ),
        reasons=_reasons(
            up="No event shows " + WEB + "'s ReplicaSet scaled up to " + str(SCALE_UP)
               + " (scaling events seen: {seen}). " + EVENTS_NOTE,
            down="No event shows the same ReplicaSet scaled down to " + str(SCALE_DOWN)
                 + " after it went up to " + str(SCALE_UP) + " (scaling events seen: {seen}). "
                 + EVENTS_NOTE,
            now=WEB + " wants {wanted} replica(s) and has {ready} Ready; it should be "
                + str(SCALE_DOWN) + " and " + str(SCALE_DOWN) + ". {hint}",
        ),
    ),
)

_SCALED = re.compile(r"Scaled (up|down) replica set (\S+?)(?: from (\d+))? to (\d+)")


def scaling_events(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The deployment controller's ``ScalingReplicaSet`` events, parsed, oldest first.

    Both message styles count: ``Scaled up replica set web-5f8 to 5`` and (Kubernetes
    1.30+) ``Scaled up replica set web-5f8 from 3 to 5``.
    """
    found = []
    for event in events:
        if event.get("reason") != "ScalingReplicaSet":
            continue
        matched = _SCALED.search(_message(event))
        if matched is None:
            continue
        direction, replica_set, before, after = matched.groups()
        found.append({"direction": direction, "replicaset": replica_set,
                      "from": int(before) if before else None, "to": int(after),
                      "first": _first_time(event), "last": kube.event_time(event),
                      "message": _message(event)})
    return sorted(found, key=lambda e: e["last"])


@scale.check
def _check_scale(ctx: CheckContext) -> None:
    web = ctx.kget("Deployment", WEB)
    events = [e for e in ctx.cluster.events(ctx.namespace, kind="Deployment")
              if _event_about(e, web)]
    scaled = scaling_events(events)
    ctx.evidence["scaling_events"] = [
        {"message": e["message"], "last": e["last"].isoformat()} for e in scaled]
    seen = "; ".join(e["message"] for e in scaled[-4:]) or "none"
    ups = [e for e in scaled if e["direction"] == "up" and e["to"] == SCALE_UP]
    downs = [d for d in scaled if d["direction"] == "down" and d["to"] == SCALE_DOWN
             and any(u["replicaset"] == d["replicaset"] and d["last"] >= u["first"]
                     for u in ups)]
    ctx.result("up", bool(ups), "up", seen=seen)
    ctx.result("down", bool(downs), "down", seen=seen)
    if ups and downs:
        ctx.notes.append(f"{ups[0]['message']} ({ups[0]['first']:%H:%M:%S}), then "
                         f"{downs[-1]['message']} ({downs[-1]['last']:%H:%M:%S}).")
    wanted, ready = _replicas(web), _ready_count(web)
    ok = wanted == SCALE_DOWN and kube.rollout_complete(web)
    hint = "" if ok else (ctx.diagnose(ctx.pods_of(web)) or (
        f"Scale it with `kubectl -n {NAMESPACE} scale deployment/{WEB} --replicas="
        f"{SCALE_DOWN}`." if wanted != SCALE_DOWN else
        LAB_REASONS["not_ready_hint"].format(name=WEB)))
    ctx.result("now", ok, "now", wanted=wanted, ready=ready, hint=hint)


@scale.solve
def _solve_scale(ctx: SolveContext) -> None:
    _apply_web(ctx, SCALE_UP)
    _apply_web(ctx, SCALE_DOWN)


scale.cleanup(deleting(("Deployment", WEB)))


# --- 3.4 Self-healing ---

healing = Exercise(
    id="kubernetes.self-healing",
    lab=LAB,
    needs_cluster=True,
    images=("api-v1",),
    subchecks={"deleted": 1, "replaced": 2, "ready": 1},
    text=Text(
        title="Delete a pod and watch it come back",
        task=(
            f"Delete one pod of `{WEB}` with `kubectl delete pod`, then list the pods again. "
            "Compare the replacement's name, uid and age with the pod you deleted, and find "
            "out who created it."
        ),
        subchecks={
            "deleted": f"a pod of {WEB} is gone that its ReplicaSet did not remove itself",
            "replaced": "a new pod (new uid) of the same ReplicaSet was created after it",
            "ready": f"{WEB} has all its replicas Ready again",
        },
        hints=(
            f"`kubectl -n {NAMESPACE} get pods -l app=web` lists the pods; delete one by name.",
            "`kubectl get pod NAME -o jsonpath='{.metadata.uid}'` prints a pod's uid, and "
            "`... -o jsonpath='{.metadata.ownerReferences[0].name}'` its owner.",
            f"`kubectl -n {NAMESPACE} events` shows the ReplicaSet's SuccessfulCreate events.",
        ),
        reasons=_reasons(
            deleted="No pod of " + WEB + " has disappeared except those its ReplicaSet removed "
                    "itself (when scaling). Delete one with `kubectl -n " + NAMESPACE
                    + " delete pod NAME`. " + EVENTS_NOTE,
            replaced="Pod {deleted} is gone, but no pod of the same ReplicaSet ({replicaset}) "
                     "was created after it: {why}",
        ),
    ),
)

_CREATED, _DELETED = re.compile(r"Created pod: (\S+)"), re.compile(r"Deleted pod: (\S+)")


def event_order(event: Mapping[str, Any]) -> tuple[datetime, int]:
    """When an event was first recorded, to the nanosecond when its name tells.

    client-go names an event ``OBJECT.<hex UnixNano>``, so two pods created in the same
    second are still told apart; the timestamps alone have one-second resolution.
    """
    suffix = _name(event).rsplit(".", 1)[-1]
    try:
        nanos = int(suffix, 16) if "." in _name(event) else 0
    except ValueError:
        nanos = 0
    return _first_time(event), nanos


def pod_history(replica_set: Mapping[str, Any], events: Iterable[Mapping[str, Any]],
                ) -> tuple[dict[str, tuple[datetime, int]], set[str]]:
    """From the ReplicaSet's own events: when it created each pod, and which it deleted."""
    created: dict[str, tuple[datetime, int]] = {}
    removed: set[str] = set()
    for event in events:
        if not _event_about(event, replica_set):
            continue
        if event.get("reason") == "SuccessfulCreate":
            matched = _CREATED.search(_message(event))
            if matched:
                created[matched.group(1)] = event_order(event)
        elif event.get("reason") == "SuccessfulDelete":
            matched = _DELETED.search(_message(event))
            if matched:
                removed.add(matched.group(1))
    return created, removed


def deleted_pods(replica_set: Mapping[str, Any], events: Iterable[Mapping[str, Any]],
                 live: Iterable[str]) -> list[dict[str, Any]]:
    """Pods of ``replica_set`` that are gone, but not because the ReplicaSet deleted them.

    Created (its SuccessfulCreate events), minus the pods that still exist, minus those
    it removed itself (SuccessfulDelete). The kubelet's Killing event, when there is
    one, gives the pod's uid. Newest first.
    """
    events = list(events)
    created, removed = pod_history(replica_set, events)
    killed = {str((e.get("involvedObject") or {}).get("name")): e for e in events
              if e.get("reason") == "Killing"
              and (e.get("involvedObject") or {}).get("kind") == "Pod"}
    alive = set(live)
    gone = []
    for name, order in created.items():
        if name in alive or name in removed:
            continue
        kill = killed.get(name) or {}
        gone.append({"name": name, "uid": (kill.get("involvedObject") or {}).get("uid", ""),
                     "order": order, "killed": kube.event_time(kill) if kill else None})
    return sorted(gone, key=lambda g: g["order"], reverse=True)


def replacement_for(gone: Mapping[str, Any], replica_set: Mapping[str, Any],
                    pods: Iterable[Mapping[str, Any]],
                    created: Mapping[str, tuple[datetime, int]]) -> dict[str, Any] | None:
    """The newest live pod of the same ReplicaSet created after ``gone`` (another uid).

    The newest, because pods made in the same burst as ``gone`` are also younger than it;
    while the replacement does not exist yet, the Deployment is not fully Ready either.
    """
    rs_uid = str(_meta(replica_set).get("uid"))
    after: list[tuple[tuple[datetime, int], dict[str, Any]]] = []
    for pod in pods:
        meta = _meta(pod)
        if _owner_uid(pod) != rs_uid or meta.get("uid") == gone["uid"] or \
                meta.get("name") == gone["name"]:
            continue
        order = created.get(str(meta.get("name")))
        if order is None:  # its own event has expired: its creation time (one-second steps)
            stamp = kube.parse_time(meta.get("creationTimestamp"))
            order = (stamp, 0) if stamp is not None and stamp > gone["order"][0] else None
        if order is not None and order > gone["order"]:
            after.append((order, dict(pod)))
    return max(after, key=lambda item: item[0])[1] if after else None


@healing.check
def _check_healing(ctx: CheckContext) -> None:
    web = ctx.kget("Deployment", WEB)
    pods = ctx.pods_of(web)
    events = ctx.cluster.events(ctx.namespace)
    live = {_name(p) for p in pods}
    candidates = [(gone, replica_set) for replica_set in _replica_sets(ctx, web)
                  for gone in deleted_pods(replica_set, events, live)]
    if not candidates:
        ctx.result("deleted", False, "deleted")
        _rolled_out(ctx, "ready", web)
        raise ctx.blocked_by("deleted")
    candidates.sort(key=lambda c: c[0]["order"], reverse=True)
    ctx.result("deleted", True)
    for gone, replica_set in candidates:
        created, _ = pod_history(replica_set, events)
        replacement = replacement_for(gone, replica_set, pods, created)
        if replacement is None:
            continue
        meta = _meta(replacement)
        ctx.evidence["deleted_pod"] = {
            "name": gone["name"], "uid": gone["uid"] or "unknown (no Killing event left)",
            "created": gone["order"][0].isoformat(),
            "stopped": gone["killed"].isoformat() if gone["killed"] else None}
        ctx.evidence["replacement"] = {
            "name": meta.get("name"), "uid": meta.get("uid"),
            "created": meta.get("creationTimestamp"),
            "owner": {"kind": "ReplicaSet", "name": _name(replica_set),
                      "uid": _meta(replica_set).get("uid")}}
        ctx.notes.append(f"You deleted {gone['name']}; ReplicaSet {_name(replica_set)} made "
                         f"{meta.get('name')} (uid {str(meta.get('uid'))[:8]}…) to replace it.")
        ctx.result("replaced", True)
        break
    else:
        gone, replica_set = candidates[0]
        owned = [_name(p) for p in pods if _owner_uid(p) == _meta(replica_set).get("uid")]
        why = (f"its pods now are {', '.join(owned) or 'none'}, all older. If {WEB} changed "
               "since (a rollout makes a new ReplicaSet), delete one of its pods again.")
        ctx.result("replaced", False, "replaced", deleted=gone["name"],
                   replicaset=_name(replica_set), why=why)
    _rolled_out(ctx, "ready", web)


@healing.solve
def _solve_healing(ctx: SolveContext) -> None:
    web = _apply_web(ctx)
    selector = (_spec(web).get("selector") or {}).get("matchLabels") or APP_LABELS
    ready = [p for p in ctx.cluster.pods(ctx.namespace, selector) if kube.pod_ready(p)]
    if not ready:
        raise SolveError(f"deployment {WEB} has no Ready pod to delete")
    victim = ready[0]
    owner, victim_name = _owner_uid(victim), _name(victim)
    ctx.cluster.delete("Pod", victim_name, ctx.namespace)
    wanted = _replicas(web)

    def healed(objects: dict[str, dict[str, Any]]) -> bool | None:
        current = [p for p in objects.values() if _owner_uid(p) == owner
                   and not _meta(p).get("deletionTimestamp")]
        if victim_name in {_name(p) for p in current}:
            return None
        return True if len(current) == wanted and all(map(kube.pod_ready, current)) else None

    try:
        ctx.cluster.wait_for("Pod", ctx.namespace, healed, timeout=ROLLOUT_TIMEOUT,
                             what=f"a replacement for pod {victim_name}")
    except kube.ClusterFault as exc:
        raise SolveError(str(exc)) from None
    ctx.rollout(WEB, timeout=ROLLOUT_TIMEOUT)


healing.cleanup(deleting(("Deployment", WEB)))


# --- 3.5 A Service, reached by its DNS name ---

service = Exercise(
    id="kubernetes.service",
    lab=LAB,
    needs_cluster=True,
    images=("api-v1",),
    subchecks={"service": 1, "selects": 1, "endpoints": 1, "dns": 2},
    text=Text(
        title="Give the pods one name: a Service",
        task=(
            f"Create a Service `{WEB}` of type ClusterIP that listens on port 80 and sends "
            f"traffic to port {API_PORT} of the pods labelled `app=web`. Then, from inside the "
            f"cluster, ask it by name: run a client pod `{PROBE}` with `kubectl run {PROBE} "
            f"-n {NAMESPACE} --image={IMAGE} --restart=Never -- wget -qO- "
            f"http://{WEB}{API_PATH}` and read its logs."
        ),
        subchecks={
            "service": f"service {WEB} is a ClusterIP on port 80, targeting port {API_PORT}",
            "selects": f"its selector picks {WEB}'s pods",
            "endpoints": "its endpoints are exactly the Ready pods",
            "dns": f"pod {PROBE} reached it by its DNS name and got the API's answer",
        },
        hints=(
            f"`kubectl -n {NAMESPACE} expose deployment {WEB} --port 80 --target-port "
            f"{API_PORT}` writes the Service for you; a YAML file works too.",
            f"`kubectl -n {NAMESPACE} get endpoints {WEB}` lists the pod IPs behind the "
            "Service; `kubectl get pods -o wide` shows which pods they are.",
            f"A pod that ran once keeps its output: if {PROBE} failed, delete it (`kubectl -n "
            f"{NAMESPACE} delete pod {PROBE}`) and run it again.",
        ),
        reasons=_reasons(
            service="Service " + WEB + " {problems}.",
            selects="{diagnosis}",
            endpoints="The Service's endpoints ({endpoints}) are not the Ready pods it selects "
                      "({ready}). {hint}",
            no_probe="There is no pod named " + PROBE + " yet. Run it with `kubectl run "
                     + PROBE + " -n " + NAMESPACE + " --image=" + IMAGE
                     + " --restart=Never -- wget -qO- http://" + WEB + API_PATH + "`.",
            probe_url="Pod " + PROBE + " asks {urls}, not the Service by its DNS name. Use "
                      "http://" + WEB + API_PATH + " (or web." + NAMESPACE + ", or the full "
                      "web." + NAMESPACE + ".svc.cluster.local).",
            probe_waiting="Pod " + PROBE + " has not run yet ({detail}).",
            dns="Pod " + PROBE + " ({phase}) printed {output!r}, not the API's answer. Delete "
                "it and run it again once the Service has endpoints.",
        ),
    ),
)

#: What a pod in the lab's namespace may call Service ``web`` by.
SERVICE_HOSTS = (WEB, f"{WEB}.{NAMESPACE}", f"{WEB}.{NAMESPACE}.svc",
                 f"{WEB}.{NAMESPACE}.svc.cluster.local")


def probe_urls(pod: Mapping[str, Any]) -> list[str]:
    """Every http(s) URL in the pod's commands and arguments."""
    words = [str(w) for c in _spec(pod).get("containers") or []
             for w in (c.get("command") or []) + (c.get("args") or [])]
    return re.findall(r"https?://[^\s'\";|&)]+", " ".join(words))


def _service_problems(svc: Mapping[str, Any], web: Mapping[str, Any] | None) -> list[str]:
    spec = _spec(svc)
    problems = []
    if spec.get("type", "ClusterIP") != "ClusterIP":
        problems.append(f"is of type {spec.get('type')}, not ClusterIP")
    ports = spec.get("ports") or []
    pairs = [(p.get("port"), p.get("targetPort", p.get("port"))) for p in ports]
    # A named targetPort means whatever port of that name the pods declare.
    named = {str(p.get("name")): str(p.get("containerPort"))
             for p in _api_container(web or {}).get("ports") or [] if p.get("name")}
    if not any(port == 80 and named.get(str(target), str(target)) == str(API_PORT)
               for port, target in pairs):
        shown = ", ".join(f"{port}→{target}" for port, target in pairs) or "none"
        problems.append(f"maps port(s) {shown}; it needs 80→{API_PORT}")
    return problems


def _ready_selected(ctx: CheckContext, svc: Mapping[str, Any]) -> tuple[list[dict[str, Any]],
                                                                         list[dict[str, Any]]]:
    """All pods of the namespace, and the Ready ones the Service's selector picks."""
    everything = ctx.cluster.pods(ctx.namespace)
    selector = _spec(svc).get("selector") or {}
    chosen = [p for p in everything if kube.matches(selector, _meta(p).get("labels"))]
    return everything, [p for p in chosen if kube.pod_ready(p)]


def _check_endpoints(ctx: CheckContext, key: str, svc: dict[str, Any],
                     everything: list[dict[str, Any]], ready: list[dict[str, Any]]) -> None:
    """Sub-check ``key``: the Service's endpoints are exactly its Ready pods, else why not."""
    name = _name(svc)
    targets, endpoints = _endpoint_targets(ctx, name)
    ctx.evidence.setdefault("endpoints", {})[name] = sorted(targets)
    if ready and _same_backends(targets, ready):
        ctx.result(key, True)
        return
    hint = diagnose_service(svc, everything, endpoints, ctx.cluster.events(ctx.namespace),
                            ctx.namespace) or "Kubernetes has not updated them yet; check " \
                                              "again in a moment."
    ctx.result(key, False, "endpoints", endpoints=", ".join(sorted(targets)) or "none",
               ready=", ".join(sorted(_name(p) for p in ready)) or "none", hint=hint)


@service.check
def _check_service(ctx: CheckContext) -> None:
    svc = ctx.kget("Service", WEB)
    web = ctx.kfind("Deployment", WEB)
    problems = _service_problems(svc, web)
    ctx.result("service", not problems, "service", problems="; ".join(problems))
    everything, ready = _ready_selected(ctx, svc)
    selector = _spec(svc).get("selector") or {}
    picks_web = web is not None and kube.matches(selector, _template_labels(web))
    if picks_web:
        ctx.result("selects", True)
    else:
        diagnosis = diagnose_service(svc, everything, None, ctx.cluster.events(ctx.namespace),
                                     ctx.namespace) or (
            f"Its selector ({_labels_text(selector)}) does not match the labels of "
            f"{WEB}'s pods ({_labels_text(_template_labels(web or {}))}).")
        ctx.result("selects", False, "selects", diagnosis=diagnosis)
    _check_endpoints(ctx, "endpoints", svc, everything, ready)
    pod = ctx.kfind("Pod", PROBE)
    if pod is None:
        raise Unmet("no_probe")
    urls = probe_urls(pod)
    if not any((urlsplit(u).hostname or "") in SERVICE_HOSTS for u in urls):
        raise Unmet("probe_url", urls=", ".join(urls) or "no URL at all")
    phase = str((pod.get("status") or {}).get("phase") or "Pending")
    try:
        output = ctx.cluster.pod_log(PROBE, ctx.namespace, tail=20)
    except Exception as exc:
        if kube.api_status(exc) in (400, 404):  # still waiting to start, or just deleted
            raise Unmet("probe_waiting", detail=kube.api_message(exc)) from None
        raise
    ctx.evidence["probe"] = {"phase": phase, "urls": urls, "output": output.strip()[-300:],
                             "uid": _meta(pod).get("uid")}
    answered = '"dockyard-api"' in output
    if answered:
        ctx.notes.append(f"{PROBE} asked {urls[0]} and got: {output.strip().splitlines()[-1]}")
    ctx.result("dns", answered, "dns", phase=phase, output=output.strip()[-200:] or "nothing")


@service.solve
def _solve_service(ctx: SolveContext) -> None:
    _apply_web(ctx)
    ctx.apply(web_service())
    _wait_endpoints(ctx, WEB)
    existing = ctx.cluster.get("Pod", PROBE, ctx.namespace)
    if existing is not None and not _probe_answered(ctx):
        ctx.delete(("Pod", PROBE))  # a pod's spec cannot change and it ran once: replace it
        _wait_gone(ctx, "Pod", PROBE)
        existing = None
    if existing is None:
        ctx.apply(probe_pod())

    def phase_in(*wanted: str) -> Callable[[dict[str, dict[str, Any]]], str | None]:
        def reached(objects: dict[str, dict[str, Any]]) -> str | None:
            phase = str((objects.get(PROBE, {}).get("status") or {}).get("phase") or "")
            return phase if phase in wanted else None

        return reached

    try:
        # Started first: a running probe usually has its answer by the time we ask.
        phase = ctx.cluster.wait_for("Pod", ctx.namespace,
                                     phase_in("Running", "Succeeded", "Failed"), timeout=60,
                                     what=f"pod {PROBE} to start")
        if phase == "Running" and not _probe_answered(ctx):
            phase = ctx.cluster.wait_for("Pod", ctx.namespace, phase_in("Succeeded", "Failed"),
                                         timeout=60, what=f"pod {PROBE} to finish")
    except kube.ClusterFault as exc:
        raise SolveError(str(exc)) from None
    if phase == "Failed" or not _probe_answered(ctx):
        raise SolveError(f"pod {PROBE} did not get an answer from http://{WEB}{API_PATH}")


def _probe_answered(ctx: SolveContext) -> bool:
    try:
        return '"dockyard-api"' in ctx.cluster.pod_log(PROBE, ctx.namespace, tail=20)
    except Exception as exc:
        if kube.api_status(exc) in (400, 404):
            return False
        raise


service.cleanup(deleting(("Pod", PROBE), ("Service", WEB)))


# --- 3.6 Labels and selectors: a Service that selects nothing ---

selectors = Exercise(
    id="kubernetes.selectors",
    lab=LAB,
    needs_cluster=True,
    images=("api-v1",),
    subchecks={"selects": 2, "endpoints": 1},
    text=Text(
        title="Repair a Service that selects nothing",
        task=(
            f"The lab created a Service `{BROKEN}`. It has no endpoints, so any request to it "
            "fails. Find out why by comparing its selector with the labels the pods carry, "
            f"then fix the Service (not the pods) so that it sends traffic to `{WEB}`'s pods."
        ),
        subchecks={
            "selects": f"{BROKEN}'s selector picks {WEB}'s pods",
            "endpoints": f"{BROKEN} has the Ready pods as endpoints",
        },
        hints=(
            f"`kubectl -n {NAMESPACE} get endpoints {BROKEN}` shows `<none>`; `kubectl -n "
            f"{NAMESPACE} describe service {BROKEN}` shows its Selector.",
            f"`kubectl -n {NAMESPACE} get pods --show-labels` shows what the pods really carry.",
            f"`kubectl -n {NAMESPACE} edit service {BROKEN}` or `kubectl patch` with "
            "`{\"spec\": {\"selector\": ...}}` changes the selector in place.",
        ),
        reasons=_reasons(
            missing_broken="There is no service " + BROKEN + " (the lab creates it). Run the "
                           "notebook cell that sets up this exercise, or `dockyard setup "
                           "kubernetes.selectors`.",
            selects="{diagnosis}",
            endpoints="The Service's endpoints ({endpoints}) are not the Ready pods it selects "
                      "({ready}). {hint}",
        ),
    ),
)


@selectors.setup
def _setup_selectors(ctx: SolveContext) -> None:
    # Only when absent: a Service the student already repaired must stay repaired.
    if ctx.cluster.get("Service", BROKEN, ctx.namespace) is None:
        ctx.apply(broken_service())


@selectors.check
def _check_selectors(ctx: CheckContext) -> None:
    svc = ctx.kfind("Service", BROKEN)
    if svc is None:
        raise Unmet("missing_broken")
    everything, ready = _ready_selected(ctx, svc)
    selector = _spec(svc).get("selector") or {}
    ctx.evidence["selector"] = selector
    ctx.evidence["pod_labels"] = {_name(p): _meta(p).get("labels") for p in everything}
    web = ctx.kfind("Deployment", WEB)
    if web is not None and kube.matches(selector, _template_labels(web)):
        ctx.result("selects", True)
    else:
        diagnosis = diagnose_service(svc, everything, None, ctx.cluster.events(ctx.namespace),
                                     ctx.namespace)
        if diagnosis is None or web is None:
            diagnosis = (f"service {BROKEN} selects {_labels_text(selector)}, "
                         + (f"but there is no deployment {WEB} to send traffic to (exercise 1)."
                            if web is None else
                            f"which picks pods, but not {WEB}'s (they carry "
                            f"{_labels_text(_template_labels(web))})."))
        ctx.result("selects", False, "selects", diagnosis=diagnosis)
        raise ctx.blocked_by("selects")
    _check_endpoints(ctx, "endpoints", svc, everything, ready)


@selectors.solve
def _solve_selectors(ctx: SolveContext) -> None:
    _apply_web(ctx)
    ctx.apply(web_service(BROKEN))  # the reference Service, with the selector repaired
    _wait_endpoints(ctx, BROKEN)


selectors.cleanup(deleting(("Service", BROKEN)))


# --- 3.7 A ConfigMap as env and as a file ---

config = Exercise(
    id="kubernetes.config",
    lab=LAB,
    needs_cluster=True,
    images=("api-v1",),
    subchecks={"configmap": 1, "env": 1, "file": 1, "ready": 1},
    text=Text(
        title="Configure a Deployment with a ConfigMap",
        task=(
            f"Create a ConfigMap `{CONFIG}` with a key `{CONFIG_KEY}`. Run a Deployment "
            f"`{GREETER}` (image `{IMAGE}`) whose container gets that key twice: as the "
            f"environment variable `{CONFIG_KEY}`, and as a file, by mounting the ConfigMap "
            f"as a volume at `{CONFIG_DIR}`."
        ),
        subchecks={
            "configmap": f"ConfigMap {CONFIG} has a non-empty {CONFIG_KEY}",
            "env": f"{GREETER}'s container gets {CONFIG_KEY} from it as an environment variable",
            "file": f"{GREETER} mounts it as a volume at {CONFIG_DIR}",
            "ready": f"{GREETER}'s pods are Ready",
        },
        hints=(
            f"`kubectl -n {NAMESPACE} create configmap {CONFIG} --from-literal="
            f"{CONFIG_KEY}=hello` makes the ConfigMap.",
            "Your lab folder has `greeter.yaml`: add `env` with `valueFrom.configMapKeyRef` "
            "(or `envFrom`), a `volumes` entry of type `configMap`, and a `volumeMounts` "
            "entry in the container.",
            f"`kubectl -n {NAMESPACE} logs deployment/{GREETER}` shows what the container "
            "read at start.",
        ),
        reasons=_reasons(
            configmap="ConfigMap " + CONFIG + " has keys {keys}; it needs a non-empty "
                      + CONFIG_KEY + ".",
            env=GREETER + "'s container has no environment variable from ConfigMap " + CONFIG
                + " key " + CONFIG_KEY + " ({found}).",
            file=GREETER + " {why}.",
        ),
    ),
)


def _env_sources(container: Mapping[str, Any], ref: str) -> list[tuple[str, str]]:
    """``(source name, key)`` for each env entry taken from a ConfigMap or Secret.

    ``ref`` is ``configMap`` or ``secret``; ``envFrom`` gives every key (``*``).
    """
    found = []
    for item in container.get("env") or []:
        source = ((item.get("valueFrom") or {}).get(f"{ref}KeyRef")) or {}
        if source:
            found.append((str(source.get("name")), str(source.get("key"))))
    for item in container.get("envFrom") or []:
        source = item.get(f"{ref}Ref") or {}
        if source:
            found.append((str(source.get("name")), "*"))
    return found


def _volumes_from(workload: Mapping[str, Any], ref: str, name: str) -> list[str]:
    """Names of the pod's volumes that carry ConfigMap/Secret ``name`` (also projected)."""
    field, key = ("configMap", "name") if ref == "configMap" else ("secret", "secretName")
    found = []
    for volume in _pod_spec(workload).get("volumes") or []:
        if (volume.get(field) or {}).get(key) == name:
            found.append(str(volume.get("name")))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source.get(field) or {}).get("name") == name:
                found.append(str(volume.get("name")))
    return found


def _mounts(workload: Mapping[str, Any], volumes: Iterable[str]) -> dict[str, str]:
    """``{mountPath: volume}`` for the given volumes, in any container."""
    wanted = set(volumes)
    return {str(m.get("mountPath", "")).rstrip("/") or "/": str(m.get("name"))
            for c in _containers(workload) for m in c.get("volumeMounts") or []
            if m.get("name") in wanted}


@config.check
def _check_config(ctx: CheckContext) -> None:
    config_map = ctx.kget("ConfigMap", CONFIG)
    data = config_map.get("data") or {}
    ctx.evidence["configmap_keys"] = sorted(data)
    ctx.result("configmap", bool(str(data.get(CONFIG_KEY, "")).strip()), "configmap",
               keys=", ".join(sorted(data)) or "none")
    greeter = ctx.kget("Deployment", GREETER)
    sources = [s for c in _containers(greeter) for s in _env_sources(c, "configMap")]
    ctx.evidence["env_from_configmaps"] = sources
    ctx.result("env", (CONFIG, CONFIG_KEY) in sources or (CONFIG, "*") in sources, "env",
               found=", ".join(f"{n}/{k}" for n, k in sources) or "it takes none from any "
               "ConfigMap")
    volumes = _volumes_from(greeter, "configMap", CONFIG)
    mounts = _mounts(greeter, volumes)
    ctx.evidence["config_mounts"] = mounts
    if not volumes:
        why = f"has no volume made from ConfigMap {CONFIG}"
    elif CONFIG_DIR not in mounts:
        why = (f"has the volume {volumes[0]} but mounts it at "
               f"{', '.join(mounts) or 'no path'}, not {CONFIG_DIR}")
    else:
        why = ""
    ctx.result("file", not why, "file", why=why)
    _rolled_out(ctx, "ready", greeter)


def _solve_greeter(ctx: SolveContext) -> None:
    ctx.apply(web_config())
    ctx.apply(web_token())
    _apply_workload(ctx, greeter_deployment())
    ctx.rollout(GREETER, timeout=ROLLOUT_TIMEOUT)


config.solve(_solve_greeter)
config.cleanup(deleting(("Deployment", GREETER), ("ConfigMap", CONFIG)))


# --- 3.8 A Secret, and why it is not encryption ---

secret = Exercise(
    id="kubernetes.secret",
    lab=LAB,
    needs_cluster=True,
    images=("api-v1",),
    subchecks={"secret": 1, "consumed": 1, "ready": 1},
    text=Text(
        title="Hand the app a Secret",
        task=(
            f"Create a Secret `{SECRET}` with a key `{SECRET_KEY}` and let `{GREETER}` use it: "
            f"as the environment variable `{SECRET_KEY}` (or as a file from a secret volume). "
            "Then decode the Secret yourself and see what it takes to read it."
        ),
        subchecks={
            "secret": f"Secret {SECRET} has a non-empty {SECRET_KEY}",
            "consumed": f"{GREETER}'s pods get it (secretKeyRef, envFrom or a secret volume)",
            "ready": f"{GREETER}'s pods are Ready",
        },
        hints=(
            f"`kubectl -n {NAMESPACE} create secret generic {SECRET} --from-literal="
            f"{SECRET_KEY}=...` makes the Secret.",
            "In the container: `env: [{name: API_TOKEN, valueFrom: {secretKeyRef: {name: "
            "web-token, key: API_TOKEN}}}]`.",
            "A pod whose Secret is missing stays in CreateContainerConfigError: `kubectl "
            "describe pod` says which key it could not find.",
        ),
        reasons=_reasons(
            secret="Secret " + SECRET + " has keys {keys}; it needs a non-empty " + SECRET_KEY
                   + ".",
            consumed=GREETER + " does not use Secret " + SECRET + " ({found}).",
        ),
    ),
)


@secret.check
def _check_secret(ctx: CheckContext) -> None:
    found = ctx.kget("Secret", SECRET)
    data = found.get("data") or {}
    # Only the key names are evidence: the values are the secret.
    ctx.evidence["secret"] = {"type": found.get("type"), "keys": sorted(data)}
    ctx.result("secret", bool(data.get(SECRET_KEY)), "secret", keys=", ".join(sorted(data))
               or "none")
    greeter = ctx.kget("Deployment", GREETER)
    refs = [s for c in _containers(greeter) for s in _env_sources(c, "secret")]
    volumes = _volumes_from(greeter, "secret", SECRET)
    mounted = _mounts(greeter, volumes)
    ctx.evidence["uses"] = {"env": refs, "mounts": mounted}
    used = (SECRET, SECRET_KEY) in refs or (SECRET, "*") in refs or bool(mounted)
    shown = ", ".join(f"{n}/{k}" for n, k in refs)
    ctx.result("consumed", used, "consumed",
               found=(f"its env comes from {shown}" if shown else "no env from a Secret")
               + ("; a secret volume exists but is not mounted" if volumes and not mounted
                  else ""))
    _rolled_out(ctx, "ready", greeter)


secret.solve(_solve_greeter)
secret.cleanup(deleting(("Deployment", GREETER), ("Secret", SECRET)))


# --- 3.9 Readiness and liveness probes ---

probes = Exercise(
    id="kubernetes.probes",
    lab=LAB,
    needs_cluster=True,
    images=("api-v1",),
    subchecks={"readiness": 1, "liveness": 1, "ready": 1},
    text=Text(
        title="Tell Kubernetes when the app is ready, and when it is stuck",
        task=(
            f"Give `{WEB}`'s container a readiness probe and a liveness probe, both HTTP GET "
            f"on `{API_PATH}` at port {API_PORT}. Apply, and wait until every pod is Ready "
            "again. Then try a probe with a wrong path and see what Kubernetes does."
        ),
        subchecks={
            "readiness": f"{WEB}'s container has an httpGet readinessProbe on a path the "
                         f"API serves, port {API_PORT}",
            "liveness": "it has an httpGet livenessProbe the same way",
            "ready": f"after the rollout every pod of {WEB} is Ready",
        },
        hints=(
            "A probe sits in the container, beside `image` and `ports`: `readinessProbe: "
            "{httpGet: {path: /api/version, port: 8000}}`.",
            "Readiness decides whether a pod receives traffic (its endpoint); liveness "
            "decides whether the kubelet restarts the container.",
            f"`kubectl -n {NAMESPACE} describe pod NAME` lists `Unhealthy` events when a probe "
            "fails, with the HTTP status it got.",
        ),
        reasons=_reasons(
            readiness="{why}",
            liveness="{why}",
        ),
    ),
)


def probe_problem(container: Mapping[str, Any], key: str) -> str:
    """Why ``container``'s ``key`` probe would not work against the lab's API ('' if it would)."""
    probe = container.get(key)
    if not isinstance(probe, Mapping):
        return f"{WEB}'s container '{container.get('name', '?')}' has no {key}."
    get = probe.get("httpGet")
    if not isinstance(get, Mapping):
        kinds = ", ".join(k for k in manifests.PROBE_HANDLERS if k in probe) or "no handler"
        return f"Its {key} uses {kinds}; this exercise asks for httpGet."
    path, port = str(get.get("path", "/")), get.get("port")
    named = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
    number = named.get(port, port) if isinstance(port, str) and not port.isdigit() else port
    if str(number) != str(API_PORT):
        return (f"Its {key} asks port {port}, but the API listens on {API_PORT}: the probe "
                "would always fail.")
    if path not in API_PATHS:
        return (f"Its {key} asks {path}, which the API answers with 404 (it serves "
                f"{' and '.join(API_PATHS)}).")
    return ""


@probes.check
def _check_probes(ctx: CheckContext) -> None:
    web = ctx.kget("Deployment", WEB)
    container = _api_container(web)
    ctx.evidence["probes"] = {k: container.get(k) for k in ("readinessProbe", "livenessProbe")}
    for sub, key in (("readiness", "readinessProbe"), ("liveness", "livenessProbe")):
        why = probe_problem(container, key)
        ctx.result(sub, not why, sub, why=why)
    _rolled_out(ctx, "ready", web)


@probes.solve
def _solve_probes(ctx: SolveContext) -> None:
    _apply_web(ctx)


probes.cleanup(deleting(("Deployment", WEB)))


# --- 3.10 Requests, limits, and a pod that fits nowhere ---

resources = Exercise(
    id="kubernetes.resources",
    lab=LAB,
    needs_cluster=True,
    images=("api-v1",),
    subchecks={"requests": 1, "limits": 1, "fits": 1, "unschedulable": 2},
    text=Text(
        title="Requests, limits, and a pod that fits nowhere",
        task=(
            f"Give `{WEB}`'s container cpu and memory requests and limits, and wait for the "
            f"rollout. Then apply `greedy.yaml` from your lab folder: a Deployment `{GREEDY}` "
            "whose pod requests more CPU than any node has. Look at why its pod stays Pending. "
            "When the check passes, delete it."
        ),
        subchecks={
            "requests": f"{WEB}'s container requests cpu and memory",
            "limits": "it also limits cpu and memory, at or above the requests",
            "fits": f"{WEB}'s pods were scheduled with them and are Ready",
            "unschedulable": f"{GREEDY}'s pod is Pending: the scheduler reports Insufficient cpu",
        },
        hints=(
            "`resources: {requests: {cpu: 50m, memory: 16Mi}, limits: {cpu: 200m, memory: "
            "64Mi}}` in the container; 1000m (or 1) is one CPU core.",
            f"`kubectl -n {NAMESPACE} describe pod -l app={GREEDY}` ends with the scheduler's "
            "FailedScheduling event.",
            "`kubectl describe node NAME` shows each node's Allocatable resources and how much "
            "is already requested.",
        ),
        reasons=_reasons(
            requests=WEB + "'s container requests {have}; it needs both cpu and memory.",
            limits=WEB + "'s container {why}.",
            no_greedy="There is no pod of deployment " + GREEDY + " (" + "{detail}" + "). Apply "
                      "it: `kubectl -n " + NAMESPACE + " apply -f greedy.yaml`.",
            unschedulable="Pod {pod} is {state}, but this exercise wants the scheduler to "
                          "refuse it for lack of CPU{message}. {hint}",
        ),
    ),
)


def _quantity(value: Any) -> Any:
    try:
        return manifests.parse_quantity(value)
    except ValueError:
        return None


def limits_problem(container: Mapping[str, Any]) -> str:
    resources_ = container.get("resources") or {}
    requests, limits = resources_.get("requests") or {}, resources_.get("limits") or {}
    missing = [k for k in ("cpu", "memory") if k not in limits]
    if missing:
        return f"limits {_labels_text(limits)}, without {' and '.join(missing)}"
    for key in ("cpu", "memory"):
        low, high = _quantity(requests.get(key, limits[key])), _quantity(limits[key])
        if low is not None and high is not None and high < low:
            return f"limits {key} to {limits[key]}, below its request of {requests[key]}"
    return ""


def unschedulable_evidence(pod: Mapping[str, Any],
                           events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The scheduler's verdict on a pod: PodScheduled condition and FailedScheduling events."""
    condition: dict[str, Any] = next(
        (c for c in (pod.get("status") or {}).get("conditions") or []
         if c.get("type") == "PodScheduled"), {})
    failed = [_message(e) for e in events if e.get("reason") == "FailedScheduling"
              and (e.get("involvedObject") or {}).get("name") == _name(pod)]
    return {"pod": _name(pod), "phase": (pod.get("status") or {}).get("phase"),
            "node": _spec(pod).get("nodeName"),
            "PodScheduled": {k: condition.get(k) for k in ("status", "reason", "message")},
            "FailedScheduling": failed[-1] if failed else None}


@resources.check
def _check_resources(ctx: CheckContext) -> None:
    web = ctx.kget("Deployment", WEB)
    container = _api_container(web)
    requests = (container.get("resources") or {}).get("requests") or {}
    ctx.evidence["web_resources"] = container.get("resources") or {}
    ctx.result("requests", all(k in requests for k in ("cpu", "memory")), "requests",
               have=_labels_text(requests))
    why = limits_problem(container)
    ctx.result("limits", not why, "limits", why=why)
    _rolled_out(ctx, "fits", web)
    greedy = ctx.kfind("Deployment", GREEDY)
    pods = ctx.pods_of(greedy) if greedy is not None else []
    if not pods:
        raise Unmet("no_greedy", detail="the deployment does not exist" if greedy is None
                    else "the deployment exists but has no pod yet")
    events = ctx.cluster.events(ctx.namespace, kind="Pod")
    seen = [unschedulable_evidence(p, events) for p in pods]
    ctx.evidence["greedy"] = seen
    nodes = ctx.cluster.nodes()
    ctx.evidence["allocatable_cpu"] = {
        _name(n): ((n.get("status") or {}).get("allocatable") or {}).get("cpu") for n in nodes}
    for item in seen:
        condition = item["PodScheduled"]
        said = " ".join(str(m) for m in (condition.get("message"), item["FailedScheduling"])
                        if m)
        if item["phase"] == "Pending" and condition.get("status") == "False" and \
                condition.get("reason") == "Unschedulable" and "Insufficient cpu" in said:
            ctx.notes.append(f"The scheduler on {item['pod']}: {condition.get('message') or said}")
            ctx.result("unschedulable", True)
            return
    first = seen[0]
    condition = first["PodScheduled"]
    said = condition.get("message") or first["FailedScheduling"] or ""
    state = f"on node {first['node']}" if first["node"] else str(first["phase"])
    hint = (f"Its request must exceed every node's allocatable CPU "
            f"({', '.join(f'{k}: {v}' for k, v in ctx.evidence['allocatable_cpu'].items())}); "
            f"greedy.yaml asks for {GREEDY_CPU} cores." if first["node"] or
            "Insufficient cpu" not in said else "")
    ctx.result("unschedulable", False, "unschedulable", pod=first["pod"], state=state,
               message=f" (the scheduler said: {said})" if said else "", hint=hint)


@resources.solve
def _solve_resources(ctx: SolveContext) -> None:
    _apply_web(ctx)
    _apply_workload(ctx, greedy_deployment())

    def refused(objects: dict[str, dict[str, Any]]) -> bool | None:
        for pod in objects.values():
            if _meta(pod).get("labels", {}).get("app") != GREEDY:
                continue
            for condition in (pod.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                    return True
        return None

    try:
        ctx.cluster.wait_for("Pod", ctx.namespace, refused, timeout=60,
                             what=f"the scheduler to turn down {GREEDY}'s pod")
    except kube.ClusterFault as exc:
        raise SolveError(str(exc)) from None


resources.cleanup(deleting(("Deployment", GREEDY), ("Deployment", WEB)))


# --- 3.11 A manifest file, graded offline ---

MANIFEST_REASONS = {
    "missing": "There is no {path} yet. Write the Deployment and the Service there.",
    "yaml": "{file} cannot be read as Kubernetes objects: {error}{where}. kubectl would stop "
            "at the same place.",
    "schema": "The Kubernetes {version} API schema rejects it: {problems}",
    "objects": "{file} {why}",
    "wiring": "{problems}",
    "probes": "{problems}",
    "resources": "{problems}",
    "image": "{problems}",
}

manifest = Exercise(
    id="kubernetes.manifest",
    lab=LAB,
    needs_engine=False,
    static=True,
    subchecks={"parses": 1, "schema": 1, "objects": 1, "wiring": 1, "probes": 1,
               "resources": 1, "image": 1},
    text=Text(
        title="Write the whole app as one manifest file",
        task=(
            f"Write `{LAB}/{MANIFEST_FILE}` in your workspace: a Deployment and a Service for "
            "the API, separated by `---`. The Deployment's selector matches its pod labels, the "
            "Service selects those pods and targets their port, every container has readiness "
            "and liveness probes, cpu and memory requests and limits, and a pinned image tag. "
            "It is graded offline, without a cluster."
        ),
        subchecks={
            "parses": f"{MANIFEST_FILE} exists and is valid YAML, one object per document",
            "schema": "every object is valid for the Kubernetes API (strict: no unknown fields)",
            "objects": "it holds a Deployment and a Service, each with a valid name",
            "wiring": "selectors match the pod labels; the Service targets a declared port",
            "probes": "every container has a readiness and a liveness probe",
            "resources": "every container requests and limits cpu and memory",
            "image": "every image has a pinned tag (not latest)",
        },
        hints=(
            "Start from the files you applied in this lab: `web-deployment.yaml` with your "
            "changes, then `---` and the Service.",
            "Indent with spaces only; a list item starts with `- `. Unknown fields are errors "
            "here, so a typo like `readynessProbe` is caught.",
            "`kubectl apply --dry-run=server -f web.yaml` asks a real API server the same "
            "questions, when you have a cluster.",
        ),
        reasons=MANIFEST_REASONS,
    ),
)


def manifest_path() -> Path:
    return workspace.lab_folder(LAB) / MANIFEST_FILE


def _joined(problems: list[manifests.Problem], limit: int = 3) -> str:
    shown = "; ".join(str(p) for p in problems[:limit])
    return shown + (f" (and {len(problems) - limit} more)" if len(problems) > limit else "")


def grade_manifest(path: Path) -> list[tuple[str, bool, str, dict[str, Any]]]:
    """Grade ``path`` offline: ``(sub-check, passed, reason key, fields)`` per sub-check.

    A file that does not parse stops the grading there (the later sub-checks are absent).
    """
    if not path.is_file():
        return [("parses", False, "missing", {"path": path})]
    try:
        documents = manifests.read(path)
    except manifests.ManifestError as exc:
        return [("parses", False, "yaml", {"file": path.name, "error": exc.message,
                                           "where": exc.where})]
    results: list[tuple[str, bool, str, dict[str, Any]]] = [("parses", True, "", {})]
    schema = manifests.schema_problems(documents)
    results.append(("schema", not schema, "schema", {"version": manifests.SCHEMA_VERSION,
                                                     "problems": _joined(schema)}))
    kinds = [d.kind for d in documents]
    named = manifests.semantic_problems(documents, ["names"])
    missing = [k for k in ("Deployment", "Service") if k not in kinds]
    why = (f"has {', '.join(kinds)}; it needs a Deployment and a Service" if missing
           else _joined(named))
    results.append(("objects", not missing and not named, "objects",
                    {"file": path.name, "why": why}))
    for key, rules in (("wiring", ["selector", "service"]), ("probes", ["probes"]),
                       ("resources", ["resources"]), ("image", ["image"])):
        found = manifests.semantic_problems(documents, rules)
        results.append((key, not found, key, {"problems": _joined(found)}))
    return results


@manifest.check
def _check_manifest(ctx: CheckContext) -> None:
    path = manifest_path()
    ctx.evidence["path"] = str(path)
    results = grade_manifest(path)
    for key, passed, reason, fields in results:
        ctx.result(key, passed, reason, **fields)
    if not results[0][1]:
        first = ctx.exercise.localized().subchecks["parses"]
        for key in manifest.subchecks:
            if key not in ctx.results:
                ctx.result(key, False, "blocked", first=first)
        return
    if all(passed for _, passed, _, _ in results):
        ctx.notes.append(f"Graded offline against the Kubernetes {manifests.SCHEMA_VERSION} "
                         f"schema: {len(results)} rules hold. Try it on the cluster: "
                         f"`kubectl -n {NAMESPACE} apply -f {MANIFEST_FILE}`.")


@manifest.solve
def _solve_manifest(ctx: SolveContext) -> None:
    # A different file of the student's is kept beside it as web.yaml.mine.
    workspace.write_keeping(manifest_path(), reference_web_yaml())


@manifest.cleanup
def _cleanup_manifest(ctx: SolveContext) -> None:
    manifest_path().unlink(missing_ok=True)
