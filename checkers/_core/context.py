"""What a handler gets: a connected engine, its exercise, and ways to report.

:class:`CheckContext` collects sub-check results and evidence while a check reads
live state; :class:`SolveContext` creates resources the way a student would, but
always labelled, so reset can find them again.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from checkers._core import text as texts
from checkers._core.model import Exercise, SubResult, Text
from kernel_helpers import engine as eng
from kernel_helpers import kubernetes as kube

if TYPE_CHECKING:
    from docker.models.containers import Container


_finished_logs: OrderedDict[tuple[Any, ...], str] = OrderedDict()


class Unmet(Exception):
    """Raised by a check to stop: the next sub-check fails with this reason."""

    def __init__(self, reason_key: str, **fields: Any) -> None:
        super().__init__(reason_key)
        self.reason_key = reason_key
        self.fields = fields


class SolveError(RuntimeError):
    """A reference solution could not reach its state; the message says why."""


@dataclass
class _Base:
    exercise: Exercise
    _engine: eng.Engine | None = field(default=None, repr=False)
    _cluster: kube.Cluster | None = field(default=None, repr=False)

    @property
    def engine(self) -> eng.Engine:
        """The connected engine; raises :class:`EngineUnavailable` if there is none."""
        if self._engine is None:
            self._engine = eng.connect()
        return self._engine

    @property
    def client(self) -> Any:
        return self.engine.client

    @property
    def lab(self) -> str:
        return self.exercise.lab

    @property
    def cluster(self) -> kube.Cluster:
        """The lab's cluster; raises :class:`kube.ClusterUnavailable` or ``WrongContext``."""
        if self._cluster is None:
            self._cluster = kube.connect()
        return self._cluster

    @property
    def namespace(self) -> str:
        """The lab's own namespace (``kubectl -n NAMESPACE``)."""
        return kube.namespace_for(self.lab)


@dataclass
class CheckContext(_Base):
    text: Text | None = None
    results: dict[str, SubResult] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    #: Resources this check graded, with their creation time, for the ownership table.
    graded: list[tuple[eng.Owned, datetime]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.text is None:
            self.text = self.exercise.localized()

    def _text(self) -> Text:
        assert self.text is not None
        return self.text

    def result(self, key: str, passed: bool, reason_key: str = "", **fields: Any) -> bool:
        """Record sub-check ``key``; on failure explain it with ``reasons[reason_key]``."""
        text = self._text()
        self.results[key] = SubResult(
            key=key,
            title=text.subchecks[key],
            points=self.exercise.subchecks[key],
            passed=passed,
            reason="" if passed else texts.reason(text, reason_key or key, **fields),
        )
        return passed

    def fail_remaining(self, reason_key: str, **fields: Any) -> None:
        """The first unreported sub-check gets the reason; the later ones wait for it."""
        pending = [k for k in self.exercise.subchecks if k not in self.results]
        for index, key in enumerate(pending):
            if index == 0:
                self.result(key, False, reason_key, **fields)
            else:
                self.result(key, False, "blocked", first=self._text().subchecks[pending[0]])

    def blocked_by(self, key: str) -> Unmet:
        """The exception to raise when later sub-checks depend on failed ``key``."""
        return Unmet("blocked", first=self._text().subchecks[key])

    def grade(self, kind: str, resource_id: str, created: datetime) -> None:
        """Remember that this check graded a resource, so reset may remove it later."""
        self.graded.append((eng.Owned(kind, resource_id, self.lab, self.exercise.id), created))

    def container(self, name: str) -> Container:
        """``docker inspect NAME``; stops the check with a clear reason if it is absent."""
        container = self.find(name)
        if container is None:
            raise Unmet("missing_container", name=name)
        return container

    def find(self, name: str) -> Container | None:
        """``docker inspect NAME``, recording what was graded; None when absent."""
        container = eng.find_container(self.engine, name)
        if container is None:
            return None
        created = eng.container_created(container)
        self.grade("container", container.id, created)
        self.evidence.setdefault("containers", {})[name] = {
            "id": container.id,
            "image": container.attrs.get("Image", ""),
            "created": container.attrs.get("Created", ""),
            "status": container.status,
        }
        return container

    def output(self, container: Container, *, stderr: bool = True, tail: int | str = "all") -> str:
        """``docker logs NAME``, stripped.

        A finished container's output cannot change until it runs again, so it is read
        once per (id, start, finish); the container's state is still inspected live.
        """
        state = container.attrs.get("State", {})
        key = (container.id, state.get("StartedAt"), state.get("FinishedAt"), stderr, tail)
        finished = container.status in ("exited", "dead")
        if finished and key in _finished_logs:
            return _finished_logs[key]
        raw = container.logs(stdout=True, stderr=stderr, tail=tail)
        text = raw.decode("utf-8", "replace").strip()
        if finished:
            _finished_logs[key] = text
            while len(_finished_logs) > 256:
                _finished_logs.popitem(last=False)
        return text

    def require_running(self, container: Container) -> None:
        if container.status != "running":
            raise Unmet("not_running", name=container.name, status=container.status)

    # -- Kubernetes -------------------------------------------------------------------

    def kfind(self, kind: str, name: str) -> dict[str, Any] | None:
        """``kubectl get KIND NAME -n NAMESPACE``, recorded as evidence; None when absent."""
        found = self.cluster.get(kind, name, self.namespace)
        if found is not None:
            meta = found.get("metadata") or {}
            self.evidence.setdefault("objects", {})[f"{kind}/{name}"] = {
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
                "created": meta.get("creationTimestamp", ""),
            }
        return found

    def kget(self, kind: str, name: str) -> dict[str, Any]:
        """Like :meth:`kfind`, but stops the check with a clear reason when it is absent."""
        found = self.kfind(kind, name)
        if found is None:
            raise Unmet("missing_object", kind=kind, kind_lower=kind.lower(), name=name,
                        namespace=self.namespace)
        return found

    def pods_of(self, workload: dict[str, Any]) -> list[dict[str, Any]]:
        """The live pods a Deployment's (or a Service's) selector picks, as evidence too."""
        spec = workload.get("spec") or {}
        selector = spec.get("selector") or {}
        if "matchLabels" in selector:  # a Deployment's; a Service's selector is plain labels
            selector = selector["matchLabels"] or {}
        if not selector or not all(isinstance(v, str) for v in selector.values()):
            return []
        pods = self.cluster.pods(self.namespace, selector)
        name = (workload.get("metadata") or {}).get("name", "")
        self.evidence.setdefault("pods", {})[name] = [
            {
                "name": (p.get("metadata") or {}).get("name"),
                "uid": (p.get("metadata") or {}).get("uid"),
                "node": (p.get("spec") or {}).get("nodeName"),
                "ready": kube.pod_ready(p),
            }
            for p in pods
        ]
        return pods

    def diagnose(self, pods: list[dict[str, Any]]) -> str:
        """A specific hint for the first unhealthy pod, from its fields and events."""
        from kernel_helpers.kube_diagnosis import diagnose_pods

        hint = diagnose_pods(pods, self.cluster.events(self.namespace), self.namespace)
        return hint or ""


@dataclass
class SolveContext(_Base):
    """Handed to setup, solve and cleanup. Everything it creates carries the lab's labels."""

    store: Any = None

    @property
    def labels(self) -> dict[str, str]:
        return eng.labels(self.lab, self.exercise.id)

    def free_name(self, name: str) -> None:
        """Make room for ``name``: remove a container Dockyard owns, refuse otherwise."""
        container = eng.find_container(self.engine, name)
        if container is None:
            return
        owned_ids = {o.resource_id for o in self.store.owned(exercise=self.exercise.id)}
        # A container run from a lab image inherits the image's `_images` label: not ours.
        lab_label = (container.labels or {}).get(eng.LAB_LABEL)
        if (lab_label and lab_label != eng.IMAGES_LAB) or container.id in owned_ids:
            container.remove(force=True, v=True)  # anonymous volumes only, never named ones
            return
        raise SolveError(
            f"a container named '{name}' exists that Dockyard did not create or grade, so it "
            f"will not be touched. Rename or remove it yourself (`docker rm -f {name}`), then "
            "run the solution again."
        )

    def run(self, image: str, command: Any = None, *, name: str, **kwargs: Any) -> Container:
        """``docker run -d --name NAME --label dockyard.lab=... IMAGE COMMAND``."""
        from docker.errors import ImageNotFound

        self.free_name(name)
        try:
            self.client.images.get(image)
        except ImageNotFound:
            raise SolveError(image_missing_message(image)) from None
        labels = {**self.labels, **kwargs.pop("labels", {})}
        return self.client.containers.run(
            image, command, name=name, detach=True, labels=labels, **kwargs
        )

    def wait(self, container: Container, timeout: float = 30) -> int:
        """``docker wait NAME``, bounded: returns the exit code."""
        try:
            result = container.wait(timeout=timeout)
        except Exception as exc:
            raise SolveError(f"'{container.name}' did not stop within {timeout:.0f} s") from exc
        return int(result.get("StatusCode", -1))

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """``kubectl apply --server-side -n NAMESPACE -f -``, labelled for this exercise."""
        self.cluster.ensure_namespace(self.lab)
        return self.cluster.apply(manifest, namespace=self.namespace, lab=self.lab,
                                  exercise=self.exercise.id)

    def rollout(self, name: str, timeout: float = 120) -> dict[str, Any]:
        """``kubectl rollout status deployment/NAME --timeout=Ns``; raises SolveError."""
        try:
            return self.cluster.wait_rollout(name, self.namespace, timeout=timeout)
        except kube.ClusterFault as exc:
            raise SolveError(str(exc)) from None

    def delete(self, *objects: tuple[str, str]) -> list[eng.Removal]:
        """``kubectl delete KIND NAME -n NAMESPACE --ignore-not-found``, in the lab's namespace.

        The namespace is the lab's own, so whatever is in it is the lab's to remove.
        """
        return self.cluster.delete_named(self.namespace, objects)

    def remove_container(self, name: str) -> None:
        """Remove ``name`` only if it is labelled for this lab or was graded here."""
        with contextlib.suppress(SolveError):  # not ours: leave it
            self.free_name(name)


def deleting(*objects: tuple[str, str]) -> Callable[[SolveContext], list[eng.Removal]]:
    """A cleanup handler: ``kubectl -n NAMESPACE delete KIND NAME --ignore-not-found``.

    Deletes ``(kind, name)`` objects in the lab's namespace. With no reachable cluster
    (or not the lab's context) there is nothing it may touch, so it returns nothing;
    ``dockyard reset`` says that once for the whole lab.
    """

    def cleanup(ctx: SolveContext) -> list[eng.Removal]:
        try:
            ctx.cluster  # noqa: B018 - connects, or says why not
        except kube.ClusterUnavailable:
            return []
        return ctx.delete(*objects)

    return cleanup


def image_missing_message(image: str) -> str:
    from kernel_helpers import images

    if images.local_image_name(image):
        return (
            f"the image '{image}' is not on this engine. Build the lab images with "
            "`dockyard images build` (it needs no registry)."
        )
    return (
        f"the image '{image}' is not on this engine and Dockyard will not pull it from a "
        f"registry during a check. Run `docker pull {image}` if you are online, or load it "
        "from a tarball (`docker load -i FILE`)."
    )
