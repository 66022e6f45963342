"""The Kubernetes backend: the lab's own context, apply, bounded watches and reset.

Dockyard acts on exactly one cluster: the kind cluster it creates (context
``kind-dockyard``), or a context the student or instructor names explicitly with
``--context`` or ``DOCKYARD_KUBE_CONTEXT``. If kubectl's current context is anything
else, :func:`connect` refuses and names it; it never falls back to another cluster.

Objects are read and written as plain dicts in the wire format, the same shape
``kubectl get -o yaml`` shows, so checks and students talk about the same fields.
The ``kubernetes`` client is imported lazily: importing it costs over a second.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kernel_helpers.engine import EXERCISE_LABEL, LAB_LABEL, Removal, labels

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

LAB_CONTEXT = "kind-dockyard"
CLUSTER_NAME = "dockyard"
FIELD_MANAGER = "dockyard"
CONTEXT_ENV = "DOCKYARD_KUBE_CONTEXT"
#: Each Kubernetes lab works in its own namespace; reset deletes exactly these.
LAB_NAMESPACES = {
    "06-kubernetes": "dockyard-k8s",
    "07-deployment-patterns": "dockyard-deploy",
}
DEFAULT_REQUEST_TIMEOUT = 10.0

#: kind -> (API group/version path, plural, namespaced). Enough for every lab object.
KINDS: dict[str, tuple[str, str, bool]] = {
    "Pod": ("api/v1", "pods", True),
    "Service": ("api/v1", "services", True),
    "Endpoints": ("api/v1", "endpoints", True),
    "ConfigMap": ("api/v1", "configmaps", True),
    "Secret": ("api/v1", "secrets", True),
    "Event": ("api/v1", "events", True),
    "Namespace": ("api/v1", "namespaces", False),
    "Node": ("api/v1", "nodes", False),
    "Deployment": ("apis/apps/v1", "deployments", True),
    "ReplicaSet": ("apis/apps/v1", "replicasets", True),
    "Job": ("apis/batch/v1", "jobs", True),
    "EndpointSlice": ("apis/discovery.k8s.io/v1", "endpointslices", True),
}
#: What a lab's cleanup deletes by name, in an order that avoids needless recreation.
CLEANUP_KINDS = ("Deployment", "Job", "Pod", "Service", "ConfigMap", "Secret")

NO_CLUSTER_HELP = (
    "Create the lab's cluster with `dockyard cluster up` (it needs Docker and kind), or "
    f"choose another cluster with `--context NAME` or {CONTEXT_ENV}=NAME. "
    "`dockyard doctor` shows what Dockyard sees."
)

T = TypeVar("T")


class ClusterUnavailable(RuntimeError):
    """No usable cluster: no kubeconfig, no such context, or the API did not answer."""


class WrongContext(ClusterUnavailable):
    """kubectl's current context is not the lab's; Dockyard refuses to act on it."""

    def __init__(self, context: str) -> None:
        self.context = context
        super().__init__(
            f"kubectl's current context is '{context}', not the lab's '{LAB_CONTEXT}', so "
            "Dockyard will not read or change anything there. Switch with `kubectl config "
            f"use-context {LAB_CONTEXT}` (after `dockyard cluster up`), or, if '{context}' is "
            f"meant for this lab, choose it explicitly: `--context {context}` or "
            f"{CONTEXT_ENV}={context}."
        )


class ClusterFault(RuntimeError):
    """The cluster answered but refused or failed; the message says what to do."""


# -- choosing and connecting ----------------------------------------------------------


def chosen_context(explicit: str | None = None) -> str | None:
    """The context chosen for the lab (``--context`` or ``DOCKYARD_KUBE_CONTEXT``), if any."""
    return explicit or os.environ.get(CONTEXT_ENV) or None


def kubeconfig_location() -> str:
    """``$KUBECONFIG`` (may list several files) or ``~/.kube/config``, read at call time."""
    return os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


def _kubeconfig_stamp(location: str) -> tuple[tuple[str, float], ...]:
    stamps = []
    for part in location.split(os.pathsep):
        try:
            stamps.append((part, Path(part).expanduser().stat().st_mtime))
        except OSError:
            stamps.append((part, 0.0))
    return tuple(stamps)


def read_contexts() -> tuple[list[str], str | None]:
    """``kubectl config get-contexts -o name`` and ``current-context``, without kubectl."""
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import list_kube_config_contexts

    location = kubeconfig_location()
    if not any(Path(p).expanduser().exists() for p in location.split(os.pathsep)):
        raise ClusterUnavailable(f"there is no kubeconfig at {location}. {NO_CLUSTER_HELP}")
    try:
        contexts, current = list_kube_config_contexts(config_file=location)
    except ConfigException as exc:
        raise ClusterUnavailable(f"the kubeconfig at {location} has no usable context ({exc}). "
                                 f"{NO_CLUSTER_HELP}") from None
    except Exception as exc:  # a malformed file: PyYAML errors and friends
        raise ClusterUnavailable(
            f"the kubeconfig at {location} could not be read: {_first_line(exc)}"
        ) from None
    names = [str(c.get("name")) for c in contexts or [] if c.get("name")]
    current_name = current.get("name") if isinstance(current, dict) else None
    return names, current_name


def target_context(explicit: str | None = None) -> str:
    """The one context Dockyard may act on, or raise saying why there is none."""
    names, current = read_contexts()
    chosen = chosen_context(explicit)
    if chosen:
        if chosen not in names:
            listed = ", ".join(names) or "none"
            raise ClusterUnavailable(
                f"the chosen context '{chosen}' is not in the kubeconfig ({kubeconfig_location()};"
                f" contexts: {listed})."
            )
        return chosen
    if current is None:
        raise ClusterUnavailable(f"the kubeconfig names no current context. {NO_CLUSTER_HELP}")
    if current != LAB_CONTEXT:
        raise WrongContext(current)
    return LAB_CONTEXT


_lock = threading.Lock()
_cache: dict[tuple[Any, ...], Cluster] = {}


def connect(
    context: str | None = None, *, ping: bool = True, timeout: float = 5.0
) -> Cluster:
    """The lab's cluster, checked against the context guard on every call.

    ``kubectl --context CONTEXT version``. The guard is re-read each time (the student
    may switch contexts between checks); the API client is reused while the kubeconfig
    is unchanged, and pinged only when first made.
    """
    target = target_context(context)
    location = kubeconfig_location()
    key = (location, _kubeconfig_stamp(location), target)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    from kubernetes.config.kube_config import new_client_from_config

    try:
        api = new_client_from_config(config_file=location, context=target, persist_config=False)
    except Exception as exc:
        raise ClusterUnavailable(
            f"the context '{target}' could not be loaded: {_first_line(exc)}"
        ) from None
    cluster = Cluster(context=target, api=api)
    if ping:
        cluster.ping(timeout)
    with _lock:
        _cache.clear()  # one cluster at a time: an old kubeconfig's client is stale
        _cache[key] = cluster
    return cluster


def forget() -> None:
    """Drop cached clients (after the API stopped answering, or in tests)."""
    with _lock:
        _cache.clear()


def is_cluster_fault(exc: BaseException) -> bool:
    """Whether ``exc`` means the API server went away, rather than a refusal or a 404."""
    import urllib3.exceptions

    return isinstance(
        exc,
        ClusterUnavailable
        | urllib3.exceptions.HTTPError
        | ConnectionError
        | TimeoutError,
    )


def api_status(exc: BaseException) -> int | None:
    """The HTTP status of a refused API call, or None for anything else."""
    from kubernetes.client.exceptions import ApiException

    return exc.status if isinstance(exc, ApiException) else None


def api_message(exc: BaseException) -> str:
    """The API server's own ``Status.message``, else the exception's first line."""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
            if message:
                return str(message)
        except (ValueError, AttributeError, TypeError):
            pass
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else _first_line(exc)


def explain_api_error(exc: BaseException, action: str, namespace: str = "") -> str:
    """One actionable sentence for a failed API call (``action`` says what was tried)."""
    status = api_status(exc)
    message = api_message(exc)
    if status == 403 and "being terminated" in message:
        return terminating_message(namespace or "the lab's namespace")
    if status == 403:
        where = f" in namespace '{namespace}'" if namespace else ""
        return (
            f"the cluster refused to let you {action}{where}: {message}. Your account lacks "
            "permission (RBAC). On a shared cluster, ask the instructor for a Role that allows "
            "it; on your own machine, use the lab's cluster (`dockyard cluster up`)."
        )
    if status == 401:
        return f"the cluster did not accept your credentials to {action}: {message}."
    if status is not None:
        return f"could not {action}: {message} (HTTP {status})."
    if is_cluster_fault(exc):
        return f"the Kubernetes API stopped answering while trying to {action}: {_short(exc)}."
    return f"could not {action}: {_first_line(exc)}"


def terminating_message(namespace: str) -> str:
    return (
        f"namespace '{namespace}' is still being deleted (Terminating), so nothing can be "
        f"created in it yet. Wait until `kubectl get namespace {namespace}` says NotFound, then "
        "try again. If it stays Terminating for minutes, something blocks a finalizer: "
        f"`kubectl get namespace {namespace} -o yaml` shows the conditions."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _short(exc: BaseException) -> str:
    raw = str(exc)
    if "Connection refused" in raw or "ConnectionRefusedError" in raw:
        return "connection refused (is the cluster running? `dockyard cluster status`)"
    if "timed out" in raw.lower() or "timeout" in raw.lower():
        return "timed out (the API server did not answer)"
    return _first_line(exc)


def parse_time(stamp: str | None) -> datetime | None:
    """A Kubernetes timestamp (``2026-11-26T18:00:00Z``) as an aware datetime."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None


def matches(selector: Mapping[str, str] | None, object_labels: Mapping[str, str] | None) -> bool:
    """Equality-based label selection, as a Service or ``matchLabels`` does it."""
    if not selector:
        return False
    have = object_labels or {}
    return all(have.get(key) == value for key, value in selector.items())


# -- the cluster ----------------------------------------------------------------------


@dataclass
class Cluster:
    """A connected cluster: the client for one context, with bounded calls."""

    context: str
    api: ApiClient
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    def ping(self, timeout: float = 5.0) -> None:
        """``kubectl version``: one round trip. Any HTTP answer counts as answering."""
        try:
            self._call("GET", "/version", timeout=timeout)
        except Exception as exc:
            if api_status(exc) is not None:
                return
            raise ClusterUnavailable(
                f"the API server of context '{self.context}' did not answer: {_short(exc)}. "
                "If this is the lab's kind cluster, `dockyard cluster status` tells whether it "
                "is running; `dockyard cluster up` starts or repairs it."
            ) from None

    # -- raw calls --------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        stream: bool = False,
        text: bool = False,
    ) -> Any:
        """One API request; the parsed JSON body, or the raw response when ``stream``."""
        from kubernetes.client.exceptions import ApiException

        method, url, headers, payload, _ = self.api.param_serialize(
            method, path, query_params=query or [],
            # Logs are text/plain: a strict Accept could get a 406 from some servers.
            header_params={"Accept": "*/*" if text else "application/json",
                           "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"],
        )
        response = self.api.call_api(
            method, url, headers, payload, _request_timeout=timeout or self.request_timeout
        )
        if not 200 <= int(response.status) < 300:
            response.read()
            raise ApiException(http_resp=response)
        if stream:
            return response.response
        response.read()
        data = response.data
        if text:
            return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")
        return json.loads(data) if data else None

    @staticmethod
    def path(kind: str, namespace: str | None = None, name: str | None = None) -> str:
        try:
            prefix, plural, namespaced = KINDS[kind]
        except KeyError:
            raise ClusterFault(f"Dockyard does not handle objects of kind '{kind}'") from None
        where = f"/namespaces/{namespace}" if namespaced and namespace else ""
        return f"/{prefix}{where}/{plural}" + (f"/{name}" if name else "")

    # -- reading ----------------------------------------------------------------------

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """``kubectl get KIND NAME -n NAMESPACE -o yaml``, or None if it does not exist."""
        try:
            found = self._call("GET", self.path(kind, namespace, name))
        except Exception as exc:
            if api_status(exc) == 404:
                return None
            raise
        return found if isinstance(found, dict) else None

    def objects(
        self,
        kind: str,
        namespace: str | None = None,
        selector: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """``kubectl get KIND -n NAMESPACE -l k=v``.

        The selector goes to the server and is applied again here, so a server (or test
        double) that ignores it cannot widen what a check sees.
        """
        query = []
        if selector:
            query.append(("labelSelector", ",".join(f"{k}={v}" for k, v in selector.items())))
        found = self._call("GET", self.path(kind, namespace), query=query)
        items = [i for i in (found or {}).get("items", []) if isinstance(i, dict)]
        if selector:
            items = [i for i in items if matches(selector, i.get("metadata", {}).get("labels"))]
        for item in items:  # list items omit kind; put it back so evidence is readable
            item.setdefault("kind", kind)
        return items

    def nodes(self) -> list[dict[str, Any]]:
        """``kubectl get nodes``."""
        return self.objects("Node")

    def pods(
        self, namespace: str, selector: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """``kubectl get pods -n NAMESPACE -l SELECTOR``, without pods already being deleted."""
        pods = self.objects("Pod", namespace, selector)
        return [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]

    def pod_log(
        self,
        name: str,
        namespace: str,
        *,
        container: str | None = None,
        tail: int | None = None,
    ) -> str:
        """``kubectl logs -n NAMESPACE NAME [-c CONTAINER] [--tail N]``."""
        query: list[tuple[str, Any]] = []
        if container:
            query.append(("container", container))
        if tail:
            query.append(("tailLines", tail))
        # A raw GET: building CoreV1Api costs over a second the first time.
        return str(self._call("GET", self.path("Pod", namespace, name) + "/log", query=query,
                              text=True) or "")

    def events(
        self,
        namespace: str,
        *,
        involved: str | None = None,
        kind: str | None = None,
        reason: str | None = None,
    ) -> list[dict[str, Any]]:
        """``kubectl events -n NAMESPACE [--for KIND/NAME]``, oldest first."""
        found = []
        for event in self.objects("Event", namespace):
            obj = event.get("involvedObject") or {}
            if involved and obj.get("name") != involved:
                continue
            if kind and obj.get("kind") != kind:
                continue
            if reason and event.get("reason") != reason:
                continue
            found.append(event)
        return sorted(found, key=event_time)

    # -- writing ----------------------------------------------------------------------

    def apply(
        self,
        manifest: Mapping[str, Any],
        *,
        namespace: str | None,
        lab: str,
        exercise: str = "",
    ) -> dict[str, Any]:
        """``kubectl apply --server-side --field-manager=dockyard -n NAMESPACE -f -``.

        The object gets the lab's labels. A server that answers the apply PATCH of a
        missing object with 404 (older or test servers) gets a plain create instead.
        """
        body = json.loads(json.dumps(manifest))  # a deep copy we may label
        kind = str(body.get("kind", ""))
        metadata = body.setdefault("metadata", {})
        name = str(metadata.get("name", ""))
        if not name:
            raise ClusterFault(f"a {kind or 'manifest'} without metadata.name cannot be applied")
        if namespace and KINDS.get(kind, ("", "", False))[2]:
            metadata["namespace"] = namespace
        metadata.setdefault("labels", {}).update(labels(lab, exercise))
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        try:
            applied = self._call(
                "PATCH", self.path(kind, namespace, name), query=query, body=body,
                content_type="application/apply-patch+yaml",
            )
        except Exception as exc:
            if api_status(exc) != 404:
                raise
            applied = self._call("POST", self.path(kind, namespace), body=body)
        return applied if isinstance(applied, dict) else body

    def patch(
        self, kind: str, name: str, namespace: str | None, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``kubectl patch KIND NAME --type merge -p PATCH``."""
        result = self._call(
            "PATCH", self.path(kind, namespace, name), body=dict(patch),
            content_type="application/merge-patch+json",
        )
        return result if isinstance(result, dict) else {}

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """``kubectl delete KIND NAME --ignore-not-found``; True if something was deleted."""
        try:
            self._call("DELETE", self.path(kind, namespace, name))
        except Exception as exc:
            if api_status(exc) == 404:
                return False
            raise
        return True

    # -- the lab's namespaces ---------------------------------------------------------

    def ensure_namespace(self, lab: str, *, wait_terminating: float = 60) -> str:
        """``kubectl create namespace NS`` with the lab's label, unless it exists already.

        A namespace of that name that Dockyard did not create is never used, and one
        that is still being deleted gets an explanation instead of a confusing error.
        """
        namespace = namespace_for(lab)
        try:
            found = self.get("Namespace", namespace)
        except Exception as exc:
            if api_status(exc) != 403:
                raise
            # Shared clusters often forbid reading namespaces but pre-create the lab's.
            return namespace
        if found is not None:
            owner = (found.get("metadata", {}).get("labels") or {}).get(LAB_LABEL)
            if owner != lab:
                raise ClusterFault(
                    f"a namespace '{namespace}' exists that Dockyard did not create (it has no "
                    f"{LAB_LABEL}={lab} label), so the lab will not use it. Rename or delete it "
                    "yourself if it is not needed, or ask the instructor to label it."
                )
            if (found.get("status") or {}).get("phase") != "Terminating":
                return namespace
            # Right after `dockyard reset` the old namespace is still going: wait it out.
            try:
                self.wait_for("Namespace", None, lambda names: True if namespace not in names
                              else None, timeout=wait_terminating,
                              what=f"namespace {namespace} to finish deleting")
            except ClusterFault:
                raise ClusterFault(terminating_message(namespace)) from None
        body = {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": labels(lab)},
        }
        try:
            self._call("POST", self.path("Namespace"), body=body)
        except Exception as exc:
            if api_status(exc) == 409:
                return namespace
            raise ClusterFault(explain_api_error(exc, "create a namespace", namespace)) from None
        return namespace

    def delete_lab(self, lab: str) -> list[Removal]:
        """``kubectl delete namespace NS``, for the lab's own labelled namespace only."""
        namespace = namespace_for(lab)
        found = self.get("Namespace", namespace)
        if found is None:
            return []
        owner = (found.get("metadata", {}).get("labels") or {}).get(LAB_LABEL)
        uid = str(found.get("metadata", {}).get("uid", namespace))
        if owner != lab:
            return [Removal("namespace", namespace, uid, "not created by Dockyard",
                            error="left alone: it does not carry the lab's label")]
        self.delete("Namespace", namespace)
        return [Removal("namespace", namespace, uid, f"{LAB_LABEL}={lab}")]

    def delete_named(
        self, namespace: str, names: Iterable[tuple[str, str]]
    ) -> list[Removal]:
        """Delete ``(kind, name)`` objects inside a lab namespace (which the lab owns)."""
        removed = []
        for kind, name in names:
            try:
                if self.delete(kind, name, namespace):
                    removed.append(
                        Removal(kind.lower(), name, name, f"in lab namespace {namespace}")
                    )
            except Exception as exc:
                removed.append(Removal(kind.lower(), name, name, "in lab namespace",
                                       error=explain_api_error(exc, f"delete {kind} {name}",
                                                               namespace)))
        return removed

    def delete_by_exercise(self, namespace: str, exercise: str) -> list[Removal]:
        """Delete every object in ``namespace`` labelled ``dockyard.exercise=EXERCISE``."""
        names = []
        for kind in CLEANUP_KINDS:
            for item in self.objects(kind, namespace, {EXERCISE_LABEL: exercise}):
                names.append((kind, str(item.get("metadata", {}).get("name"))))
        return self.delete_named(namespace, names)

    # -- waiting ----------------------------------------------------------------------

    def wait_for(
        self,
        kind: str,
        namespace: str | None,
        predicate: Callable[[dict[str, dict[str, Any]]], T | None],
        *,
        timeout: float,
        what: str,
        describe_failure: Callable[[], str] | None = None,
    ) -> T:
        """Watch ``kind`` until ``predicate(objects by name)`` returns a value.

        ``kubectl wait --for=... --timeout=Ns``: a list, then watches from its
        resourceVersion, each bounded by the time left; never a bare sleep. Raises
        :class:`ClusterFault` naming ``what`` when the deadline passes.
        """
        from kubernetes import watch

        deadline = time.monotonic() + timeout
        while True:
            listing = self._call("GET", self.path(kind, namespace)) or {}
            objects = {
                str(i.get("metadata", {}).get("name")): i
                for i in listing.get("items", []) if isinstance(i, dict)
            }
            result = predicate(objects)
            if result is not None:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                detail = describe_failure() if describe_failure else ""
                raise ClusterFault(
                    f"gave up after {timeout:.0f} s waiting for {what}" + (f": {detail}" if detail
                                                                          else ".")
                )
            version = str((listing.get("metadata") or {}).get("resourceVersion") or "")
            stream = watch.Watch()
            window = max(1, min(math.ceil(left), 30))
            try:
                for event in stream.stream(
                    self._watch_call, kind, namespace, version,
                    timeout_seconds=window, _request_timeout=window + 2,
                ):
                    item = event.get("object")
                    if not isinstance(item, dict):
                        continue
                    name = str(item.get("metadata", {}).get("name"))
                    if event.get("type") == "DELETED":
                        objects.pop(name, None)
                    else:
                        objects[name] = item
                    result = predicate(objects)
                    if result is not None:
                        stream.stop()
                        return result
                    if time.monotonic() >= deadline:
                        stream.stop()
                        break
            except Exception as exc:
                # 410: our resourceVersion is too old. A cut or timed-out stream: the
                # server may ignore timeoutSeconds. Either way list again; a server that
                # is really gone then fails the list with a connection error.
                if api_status(exc) == 410 or (is_cluster_fault(exc) and api_status(exc) is None):
                    continue
                raise

    def _watch_call(
        self, kind: str, namespace: str | None, version: str, **kwargs: Any
    ) -> Any:
        query: list[tuple[str, Any]] = [("watch", "true")]
        if version:
            query.append(("resourceVersion", version))
        if kwargs.get("timeout_seconds"):
            query.append(("timeoutSeconds", kwargs["timeout_seconds"]))
        return self._call("GET", self.path(kind, namespace), query=query,
                          timeout=kwargs.get("_request_timeout"), stream=True)

    def wait_rollout(self, name: str, namespace: str, timeout: float = 120) -> dict[str, Any]:
        """``kubectl rollout status deployment/NAME -n NAMESPACE --timeout=Ns``."""

        def done(objects: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
            deployment = objects.get(name)
            return deployment if deployment and rollout_complete(deployment) else None

        def why() -> str:
            from kernel_helpers.kube_diagnosis import diagnose_deployment

            return diagnose_deployment(self, name, namespace) or "the rollout is not complete"

        return self.wait_for("Deployment", namespace, done, timeout=timeout,
                             what=f"deployment/{name} to roll out", describe_failure=why)


def rollout_complete(deployment: Mapping[str, Any]) -> bool:
    """What ``kubectl rollout status`` waits for: every replica updated, ready, no old ones."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    meta = deployment.get("metadata") or {}
    wanted = int(spec.get("replicas", 1))
    observed = status.get("observedGeneration")
    if observed is not None and meta.get("generation") is not None and \
            int(observed) < int(meta["generation"]):
        return False
    return (
        int(status.get("updatedReplicas") or 0) == wanted
        and int(status.get("readyReplicas") or 0) == wanted
        and int(status.get("availableReplicas", status.get("readyReplicas")) or 0) == wanted
        and int(status.get("replicas") or 0) == wanted
    )


def namespace_for(lab: str) -> str:
    try:
        return LAB_NAMESPACES[lab]
    except KeyError:
        raise ClusterFault(f"'{lab}' is not a Kubernetes lab") from None


def event_time(event: Mapping[str, Any]) -> datetime:
    """When an event last happened, whichever of its time fields the server filled in."""
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        stamp = parse_time(event.get(key))
        if stamp:
            return stamp
    created = parse_time((event.get("metadata") or {}).get("creationTimestamp"))
    return created or datetime.min.replace(tzinfo=timezone.utc)


def wait_nodes_ready(cluster: Cluster, timeout: float = 180) -> list[str]:
    """``kubectl wait --for=condition=Ready nodes --all --timeout=Ns``: the Ready nodes."""

    def all_ready(nodes: dict[str, dict[str, Any]]) -> list[str] | None:
        if nodes and all(node_ready(n) for n in nodes.values()):
            return sorted(nodes)
        return None

    def which() -> str:
        waiting = [str(n.get("metadata", {}).get("name")) for n in cluster.nodes()
                   if not node_ready(n)]
        return f"not Ready yet: {', '.join(waiting) or 'no nodes registered'}"

    return cluster.wait_for("Node", None, all_ready, timeout=timeout,
                            what="every node to be Ready", describe_failure=which)


def node_ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_control_plane(node: Mapping[str, Any]) -> bool:
    node_labels = (node.get("metadata") or {}).get("labels") or {}
    return "node-role.kubernetes.io/control-plane" in node_labels


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
