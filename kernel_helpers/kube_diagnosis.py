"""Why a pod, Deployment or Service is not working, read from the objects' own fields.

Each function returns one specific hint (or None when nothing is wrong) built from what
the cluster reports: container states, pod conditions, events and endpoints. These are
the common states a student meets: CrashLoopBackOff, ImagePullBackOff/ErrImagePull,
Pending (unschedulable), a failing readiness probe, a Service with no endpoints and a
selector that matches nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kernel_helpers.kubernetes import matches, pod_ready

if TYPE_CHECKING:
    from kernel_helpers.kubernetes import Cluster

PULL_REASONS = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError")


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def _images(pod: Mapping[str, Any]) -> dict[str, str]:
    containers = (pod.get("spec") or {}).get("containers") or []
    return {str(c.get("name")): str(c.get("image", "")) for c in containers}


def diagnose_pod(
    pod: Mapping[str, Any], events: Iterable[Mapping[str, Any]] = (), namespace: str = ""
) -> str | None:
    """The most useful single hint for one pod, or None when it is Running and Ready."""
    name = _name(pod)
    ns = f" -n {namespace}" if namespace else ""
    status = pod.get("status") or {}
    pod_events = [e for e in events if (e.get("involvedObject") or {}).get("name") == name]
    for state in (status.get("initContainerStatuses") or []) + (
        status.get("containerStatuses") or []
    ):
        container = str(state.get("name", "?"))
        waiting = (state.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        said = str(waiting.get("message") or "").strip()
        if reason in PULL_REASONS:
            image = _images(pod).get(container) or str(state.get("image", ""))
            return (
                f"pod {name} cannot get its image '{image}' ({reason}). A kind cluster cannot "
                "see your Docker engine's images: load it with `kind load docker-image "
                f"{image} --name dockyard` (or `dockyard cluster up`), and check the tag "
                f"exists with `docker image ls {image.split(':')[0]}`."
                + (f" Kubernetes said: {said}" if said else "")
            )
        if reason == "CrashLoopBackOff":
            last = (state.get("lastState") or {}).get("terminated") or {}
            code, why = last.get("exitCode"), last.get("reason")
            ended = f"; it last exited with code {code}" + (f" ({why})" if why else "") \
                if code is not None else ""
            oom = " It ran out of memory: raise its memory limit." if why == "OOMKilled" else ""
            return (
                f"container {container} in pod {name} keeps crashing (CrashLoopBackOff, "
                f"{state.get('restartCount', 0)} restarts{ended}).{oom} Read what it printed "
                f"before it died: `kubectl logs{ns} {name} -c {container} --previous`."
            )
        if reason in CONFIG_REASONS:
            return (
                f"container {container} in pod {name} cannot start ({reason}): {said or reason}. "
                "Usually a ConfigMap, Secret or key it refers to does not exist yet."
            )
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            message = condition.get("message") or _last_message(pod_events, "FailedScheduling")
            return (
                f"pod {name} is Pending: no node can take it ({condition.get('reason', '')}: "
                f"{message or 'no reason given'}). Lower its resource requests, or fix its "
                f"node selector; `kubectl describe pod{ns} {name}` shows the scheduler's view."
            )
    unhealthy = _last_message(pod_events, "Unhealthy")
    if status.get("phase") == "Running" and not pod_ready(pod) and unhealthy:
        return (
            f"pod {name} runs but is not Ready: {unhealthy}. Check the probe's path and port "
            "against what the container really serves."
        )
    if status.get("phase") == "Pending":
        return f"pod {name} is still Pending (being scheduled or pulling its image)."
    if status.get("phase") == "Failed":
        return f"pod {name} failed: {status.get('reason') or status.get('message') or 'see logs'}."
    return None


def _last_message(events: Iterable[Mapping[str, Any]], reason: str) -> str:
    found = [str(e.get("message", "")) for e in events if e.get("reason") == reason]
    return found[-1] if found else ""


def diagnose_pods(
    pods: Iterable[Mapping[str, Any]], events: Iterable[Mapping[str, Any]] = (),
    namespace: str = "",
) -> str | None:
    """The first hint among ``pods``; a repeated problem is said once, with a count."""
    events = list(events)
    hints = [h for h in (diagnose_pod(p, events, namespace) for p in pods) if h]
    if not hints:
        return None
    more = len(hints) - 1
    return hints[0] + (f" ({more} more pod(s) have problems too.)" if more else "")


def diagnose_deployment(cluster: Cluster, name: str, namespace: str) -> str | None:
    """Why ``deployment/NAME`` is not fully rolled out, from its pods and events."""
    deployment = cluster.get("Deployment", name, namespace)
    if deployment is None:
        return f"there is no deployment '{name}' in namespace '{namespace}'"
    selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pods = cluster.pods(namespace, selector) if selector else []
    hint = diagnose_pods(pods, cluster.events(namespace), namespace)
    if hint:
        return hint
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return f"deployment {name} cannot create pods: {condition.get('message', '')}"
    return None


def diagnose_service(
    service: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    endpoints: Mapping[str, Any] | None = None,
    events: Iterable[Mapping[str, Any]] = (),
    namespace: str = "",
) -> str | None:
    """Why a Service sends traffic nowhere: no selector, a mismatch, or no Ready pod."""
    name = _name(service)
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    pods = list(pods)
    if not selector:
        return f"service {name} has no selector, so Kubernetes never gives it endpoints."
    chosen = [p for p in pods if matches(selector, (p.get("metadata") or {}).get("labels"))]
    wanted = ",".join(f"{k}={v}" for k, v in selector.items())
    if not chosen:
        seen = Counter(
            f"{k}={v}" for p in pods for k, v in ((p.get("metadata") or {}).get("labels") or {})
            .items() if k != "pod-template-hash"
        )
        carried = ", ".join(f"{label} ({count})" for label, count in seen.most_common(4))
        return (
            f"service {name} selects {wanted}, but no pod in this namespace carries all of those "
            "labels" + (f"; the pods here carry {carried}" if carried else "; there are no pods")
            + ". Make the selector match the pods' labels (`kubectl get pods --show-labels`)."
        )
    ready = [p for p in chosen if pod_ready(p)]
    if not ready:
        hint = diagnose_pods(chosen, events, namespace) or "they are not Ready yet"
        return f"service {name} selects {len(chosen)} pod(s), but none is Ready: {hint}"
    if endpoints is not None and not ready_addresses(endpoints):
        return f"service {name} matches Ready pods but has no endpoints yet; wait a moment."
    ports = {str(p) for p in _container_ports(ready[0])}
    for port in spec.get("ports") or []:
        target = str(port.get("targetPort", port.get("port", "")))
        if ports and target not in ports:
            return (
                f"service {name} sends traffic to port {target}, but its pods' containers "
                f"declare port(s) {', '.join(sorted(ports))}."
            )
    return None


def _container_ports(pod: Mapping[str, Any]) -> list[Any]:
    found: list[Any] = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            found.extend(v for v in (port.get("containerPort"), port.get("name")) if v)
    return found


def ready_addresses(endpoints: Mapping[str, Any]) -> list[str]:
    """The Ready pod IPs of a v1 Endpoints object (``kubectl get endpoints``)."""
    return [
        str(address.get("ip") or address.get("targetRef", {}).get("name", ""))
        for subset in endpoints.get("subsets") or []
        for address in subset.get("addresses") or []
    ]
