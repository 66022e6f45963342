"""A Kubernetes stand-in for tests: kmock's emulator as the API server, fake controllers on top.

No cluster can run where Dockyard is tested, so Kubernetes code is tested against
``kmock``'s ``KubernetesEmulator`` served over HTTP, which the real ``kubernetes``
client talks to. ``Emulator`` runs it in a background thread and patches the gaps an
API server would not have: uid/creationTimestamp/resourceVersion/generation, defaults
(Service clusterIP, Deployment strategy...), the ``namespaces`` resource (the emulator
cannot parse ``/api/v1/namespaces``), PUT, real-shaped 404/409 ``Status`` bodies, pod
logs, and fault injection (RBAC 403, an API that stops answering).

``FakeCluster`` plays the controllers, the scheduler and the kubelet through the
client: Deployments make ReplicaSets, ReplicaSets make Pods, Pods get scheduled on
the seeded kind-like nodes and run (or fail to pull, crash, stay Pending), Services
get Endpoints/EndpointSlices, and each step records the Events a real cluster would.

    with Emulator() as emu:
        fake = FakeCluster(emu)
        fake.seed_nodes()
        ...                      # create a Deployment with the client
        fake.settle()            # reconcile until nothing changes
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import hashlib
import json
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import kmock
    from kubernetes.client import ApiClient

LAB_CONTEXT = "kind-dockyard"
TOKEN = "kubesim-token"
#: The API server's own namespaces on a fresh kind cluster.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease",
                     "local-path-storage")
#: Images ``kind load docker-image`` puts on every node for the labs.
LAB_IMAGES = ("dockyard/api:1", "dockyard/api:2")
CONTROL_PLANE = "dockyard-control-plane"
WORKERS = ("dockyard-worker", "dockyard-worker2")
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"
#: Annotation that makes every container of a pod crash: "true"/exit code, or "oom".
CRASH_ANNOTATION = "kubesim/crash"
#: Annotation that keeps a pod's containers not ready ("false").
READY_ANNOTATION = "kubesim/ready"
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # k8s rand.String / SafeEncodeString alphabet


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(_NAME_CHARS) for _ in range(length))


def merge_patch(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge: dicts merge recursively, ``None`` deletes, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_patch(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = merge_patch({}, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def diff_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that turns ``old`` into ``new`` (the inverse of ``merge_patch``)."""
    out: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = diff_patch(before, value)
            if sub:
                out[key] = sub
        elif key not in old or before != value:
            out[key] = copy.deepcopy(value)
    return out


# -- the API server ------------------------------------------------------------------------


_VERBS = {"LIST": "list", "WATCH": "watch", "FETCH": "get", "CREATE": "create",
          "UPDATE": "patch", "DELETE": "delete"}


def request_verb(request: kmock.Request) -> str:
    """The RBAC verb of an emulator request (``list``, ``get``, ``create``, ``patch``...)."""
    method = str(getattr(request.method, "value", request.method)).upper()
    if method == "PUT":
        return "update"
    if method == "DELETE" and not request.name:
        return "deletecollection"
    action = getattr(request.action, "value", None)
    return _VERBS.get(str(action), method.lower())


def request_resource(request: kmock.Request) -> str:
    """``pods``, ``deployments``, or ``pods/log`` for a subresource, as RBAC names it."""
    res = request.resource
    plural = (res.plural or "") if res is not None else ""
    return f"{plural}/{request.subresource}" if request.subresource else plural


@dataclass
class Fault:
    """One injected failure; ``hits`` counts the requests it caught. ``remove()`` ends it."""

    kind: str                      # "forbid" | "hang" | "drop" | "status"
    resource: str | None = None
    verbs: frozenset[str] | None = None
    namespace: str | None = None
    name: str | None = None
    path: re.Pattern[str] | None = None
    after: int = 0                 # let this many matching requests through first
    code: int = 403
    reason: str = "Forbidden"
    message: str | None = None
    user: str = "student"
    hits: int = 0
    seen: int = 0
    _owner: Emulator | None = field(default=None, repr=False)

    def matches(self, request: kmock.Request) -> bool:
        if self.resource is not None and request_resource(request) != self.resource:
            return False
        if self.verbs is not None and request_verb(request) not in self.verbs:
            return False
        if self.namespace is not None and request.namespace != self.namespace:
            return False
        if self.name is not None and request.name != self.name:
            return False
        return self.path is None or bool(self.path.search(request.url.path))

    def status_body(self, request: kmock.Request) -> dict[str, Any]:
        """The Status the real API server sends for this refusal."""
        res = request.resource
        group = (res.group or "") if res is not None else ""
        resource = request_resource(request)
        verb = request_verb(request)
        what = f'{resource}.{group}' if group else resource
        if request.name:
            what += f' "{request.name}"'
        scope = (f'in the namespace "{request.namespace}"' if request.namespace
                 else "at the cluster scope")
        message = self.message or (
            f'{what} is forbidden: User "{self.user}" cannot {verb} resource '
            f'"{resource}" in API group "{group}" {scope}')
        details: dict[str, Any] = {"kind": resource.split("/")[0]}
        if group:
            details["group"] = group
        if request.name:
            details["name"] = request.name
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": self.reason, "details": details,
                "code": self.code}

    def remove(self) -> None:
        if self._owner is not None:
            self._owner.remove_fault(self)


def _http_status(code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> Exception:
    from kmock import KubernetesError

    return KubernetesError(status=code, reason=reason, message=message, details=details or {})


def _not_found(request: kmock.Request, name: str | None = None) -> Exception:
    res = request.resource
    plural, group = (res.plural or "", res.group or "") if res is not None else ("", "")
    kind = f"{plural}.{group}" if group else plural
    name = name or request.name or ""
    details = {"name": name, "kind": plural, **({"group": group} if group else {})}
    return _http_status(404, "NotFound", f'{kind} "{name}" not found', details)


def _make_emulator_class() -> type[kmock.KubernetesEmulator]:
    """Build the emulator subclass lazily, so importing kubesim stays cheap."""
    import aiohttp.web
    import kmock

    namespaces = kmock.resource("", "v1", "namespaces")
    ns_path = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?(?:/(status|finalize))?/?$")

    class SimEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
        """kmock's emulator with the API-server behaviour the tests rely on."""

        sim: Emulator | None = None

        async def __call__(self, raw_request: aiohttp.web.BaseRequest,
                           ) -> aiohttp.web.StreamResponse:
            # kmock cannot parse /api/v1/namespaces[/NAME] (it takes "namespaces" for the
            # namespace keyword); build the request for the cluster-scoped resource here.
            matched = ns_path.match(raw_request.path)
            if matched is None:
                return await super().__call__(raw_request)
            body = await raw_request.read()
            text = body.decode("utf-8", "replace")
            try:
                data = json.loads(text) if text.strip() else None
            except ValueError:
                data = None
            name, sub = matched.group(1), matched.group(2)
            method = raw_request.method.upper()
            query = dict(raw_request.query)
            action = (kmock.action.WATCH if method == "GET" and query.get("watch") == "true"
                      else kmock.action.FETCH if method == "GET" and name
                      else kmock.action.LIST if method == "GET"
                      else kmock.action.CREATE if method == "POST" and not name
                      else kmock.action.UPDATE if method == "PATCH" and name
                      else kmock.action.DELETE if method == "DELETE" and name
                      else None)
            request = kmock.Request(
                id=len(self._requests), raw_request=raw_request, url=raw_request.url,
                method=raw_request.method, params=query, headers=dict(raw_request.headers),
                cookies=dict(raw_request.cookies), data=data, body=body, text=text,
                action=action, resource=namespaces, namespace=None, name=name,
                subresource=sub)
            self._requests.append(request)
            try:
                return await self._handle(request)
            except Exception as exc:
                return await self._render_error(exc)

        async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
            sim = self.sim
            if sim is not None and request.resource is not None:
                refused = await sim._apply_faults(request)
                if refused is not None:
                    return refused
                if request.subresource == "log" and request_verb(request) == "get":
                    return sim._serve_log(request)
                request = sim._admit(request)
            try:
                return await super()._handle(request)
            except kmock.KubernetesObjectNotFoundError:
                raise _not_found(request) from None
            except kmock.KubernetesError as exc:
                if exc.status != 409:
                    raise
                raise _conflict(request) from None

    return SimEmulator


def _conflict(request: kmock.Request) -> Exception:
    res = request.resource
    plural, group = (res.plural or "", res.group or "") if res is not None else ("", "")
    data = request.data if isinstance(request.data, dict) else {}
    name = request.name or data.get("metadata", {}).get("name", "")
    kind = f"{plural}.{group}" if group else plural
    details = {"name": name, "kind": plural, **({"group": group} if group else {})}
    return _http_status(409, "AlreadyExists", f'{kind} "{name}" already exists', details)


class Emulator:
    """kmock's ``KubernetesEmulator`` + ``kmock.Server`` in a thread with its own loop.

        with Emulator() as emu:
            emu.write_kubeconfig(tmp_path / "config")   # kubectl --kubeconfig ... works too
            core = kubernetes.client.CoreV1Api(emu.api_client())

    Starting takes ~15 ms and stopping ~5 ms (measured), so tests may share one server
    and call ``reset()`` (a few ms) between them.
    """

    def __init__(self, *, strict_namespaces: bool = False) -> None:
        #: When True, creating an object in a namespace that does not exist is a 404,
        #: as on a real server. Off by default: many tests never create namespaces.
        self.strict_namespaces = strict_namespaces
        #: ``(namespace, pod, container|None) -> text`` for ``GET pods/NAME/log``.
        self.log_source: Callable[[str, str, str | None], str] | None = None
        #: Namespaces whose deletion never finishes (a finalizer that never returns).
        self.stuck_namespaces: set[str] = set()
        self._faults: list[Fault] = []
        self._rv = 1000
        self._ips = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._emu: Any = None
        self._server: Any = None
        self._stop: asyncio.Event | None = None
        self._resume: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._url = ""
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure),
                                        name="kubesim-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"the kmock emulator did not start: {failure or 'timeout'}")
        self._seed()
        return self

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        import kmock

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop

        async def serve() -> None:
            emu = _make_emulator_class()()
            emu.sim = self
            emu.resources.load_bundled()
            self._stop, self._resume = asyncio.Event(), asyncio.Event()
            self._resume.set()
            # Entering `emu` too is what turns errors into k8s Status bodies, not plain 500s.
            async with kmock.Server(emu) as server, emu:
                self._emu, self._server, self._url = emu, server, str(server.url).rstrip("/")
                ready.set()
                janitor = asyncio.create_task(self._janitor())
                await self._stop.wait()
                janitor.cancel()
                self._resume.set()  # release hung requests so the server can close

        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # report to start(), which is waiting
            failure.append(exc)
            ready.set()
        finally:
            with suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Stop serving: later requests get "connection refused"."""
        if self._thread is None or self._loop is None or self._stop is None:
            return
        with suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if not self._url:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._url

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def kmock(self) -> kmock.KubernetesEmulator:
        """The underlying kmock emulator (``.objects``, requests, reaction DSL)."""
        return self._emu

    def call(self, fn: Callable[[], Any], timeout: float = 10) -> Any:
        """Run ``fn`` in the emulator's loop thread (objects are only touched there)."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    # -- state ------------------------------------------------------------------------------

    def _seed(self) -> None:
        def seed() -> None:
            for name in SYSTEM_NAMESPACES:
                self._emu.objects["v1/namespaces", None, name] = self._admit_object(
                    "namespaces", None, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": name}}, create=True)
        self.call(seed)

    def reset(self) -> None:
        """Forget every object, fault, request and hook; keep the server (and its URL)."""
        self.clear_faults()
        self.log_source = None
        self.strict_namespaces = False
        self.stuck_namespaces.clear()

        def wipe() -> None:
            for key in list(self._emu.objects):
                del self._emu.objects[key]
            self._trim_requests(keep=0)
        self.call(wipe)
        self._seed()

    def objects(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Stored objects of a resource (``pods``, ``apps/v1/deployments``), as plain dicts."""
        def read() -> list[dict[str, Any]]:
            out = []
            for (res, ns, _name), obj in self._emu.objects.items():
                spelled = {res.plural, f"{res.group}/{res.version}/{res.plural}".lstrip("/")}
                if plural in spelled and (namespace is None or ns == namespace) \
                        and not obj.deleted:
                    out.append(copy.deepcopy(dict(obj.raw)))
            return out
        return list(self.call(read))

    def _trim_requests(self, keep: int = 200) -> None:
        # kmock keeps every request for assertions; a reconcile loop makes ~50 a second.
        emu = self._emu
        if len(emu._requests) > keep:
            del emu._requests[: len(emu._requests) - keep]
        for payload in emu._payloads:
            reqs = getattr(payload, "_requests", None)
            if isinstance(reqs, list) and len(reqs) > keep:
                del reqs[: len(reqs) - keep]

    async def _janitor(self) -> None:
        # Finish namespace deletions (the namespace controller) and bound kmock's memory.
        while True:
            await asyncio.sleep(0.1)
            with suppress(Exception):
                await self._finalize_namespaces()
                self._trim_requests()

    async def _finalize_namespaces(self) -> None:
        emu = self._emu
        async with emu._lock:
            doomed = [name for (res, _ns, name), obj in emu.objects.items()
                      if res.plural == "namespaces" and not obj.deleted
                      and obj.raw.get("metadata", {}).get("deletionTimestamp")
                      and name not in self.stuck_namespaces]
            for ns_name in doomed:
                for (res, ns, _name), obj in list(emu.objects.items()):
                    if ns == ns_name and not obj.deleted:
                        raw = obj.raw
                        obj.delete()
                        await emu._buses[res].put({"type": "DELETED", "object": raw})
                for (res, _ns, name), obj in list(emu.objects.items()):
                    if res.plural == "namespaces" and name == ns_name and not obj.deleted:
                        raw = obj.raw
                        obj.delete()
                        await emu._buses[res].put({"type": "DELETED", "object": raw})

    # -- the API server's admission and defaulting -------------------------------------------

    def _next_rv(self) -> str:
        with self._lock:
            self._rv += 1
            return str(self._rv)

    def _cluster_ip(self) -> str:
        with self._lock:
            self._ips += 1
            return f"10.96.{(self._ips // 250) % 250}.{self._ips % 250 + 2}"

    def _stored(self, plural: str, namespace: str | None, name: str | None,
                ) -> dict[str, Any] | None:
        if not name:
            return None
        for (res, ns, obj_name), obj in self._emu.objects.items():
            if res.plural == plural and ns == namespace and obj_name == name and not obj.deleted:
                return dict(obj.raw)
        return None

    def _admit(self, request: kmock.Request) -> kmock.Request:
        """Default and stamp a create/update like an API server, before kmock stores it."""
        import attrs
        import kmock

        res = request.resource
        plural = res.plural if res is not None else None
        verb = request_verb(request)
        if plural is None or verb not in ("create", "patch", "update", "delete"):
            return request
        if verb == "delete" and plural == "namespaces":
            current = self._stored("namespaces", None, request.name)
            if current is None:
                raise _not_found(request)
            if request.name in SYSTEM_NAMESPACES:
                raise _http_status(403, "Forbidden", f'namespaces "{request.name}" is forbidden:'
                                   f' this namespace may not be deleted', {"kind": "namespaces"})
            # Deleting a namespace only marks it; the janitor empties and removes it.
            stamp = {"metadata": {"deletionTimestamp": current["metadata"].get(
                "deletionTimestamp") or now_iso()}, "status": {"phase": "Terminating"}}
            return attrs.evolve(request, action=kmock.action.UPDATE, data=stamp)
        if verb == "delete" or not isinstance(request.data, dict):
            return request
        data: dict[str, Any] = request.data
        meta = data.setdefault("metadata", {}) if isinstance(data.get("metadata"),
                                                              (dict, type(None))) else {}
        if verb == "create":
            namespace = request.namespace
            if plural != "namespaces" and namespace:
                self._check_namespace(request, namespace, plural)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + random_suffix()
            admitted = self._admit_object(plural, namespace, data, create=True)
            data.clear()
            data.update(admitted)
            return request
        current = self._stored(plural, request.namespace, request.name)
        if current is None:
            raise _not_found(request)
        if verb == "update":
            # PUT replaces the object; the status stays unless the body brings one.
            target = copy.deepcopy(data)
            if "status" not in target and "status" in current:
                target["status"] = current["status"]
        else:
            target = merge_patch(current, data)
        target.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "namespace", "name"):
            if key in current.get("metadata", {}):
                target["metadata"][key] = current["metadata"][key]
        final = self._admit_object(plural, request.namespace, target, create=False,
                                   previous=current)
        return attrs.evolve(request, action=kmock.action.UPDATE, data=diff_patch(current, final))

    def _check_namespace(self, request: kmock.Request, namespace: str, plural: str) -> None:
        ns = self._stored("namespaces", None, namespace)
        data = request.data if isinstance(request.data, dict) else {}
        name = data.get("metadata", {}).get("name", "")
        group = request.resource.group if request.resource is not None else ""
        kind = f"{plural}.{group}" if group else plural
        if ns is None and self.strict_namespaces:
            raise _http_status(404, "NotFound", f'namespaces "{namespace}" not found',
                               {"name": namespace, "kind": "namespaces"})
        if ns is not None and ns.get("metadata", {}).get("deletionTimestamp"):
            raise _http_status(
                403, "Forbidden",
                f'{kind} "{name}" is forbidden: unable to create new content in namespace '
                f'{namespace} because it is being terminated',
                {"name": name, "kind": plural, "causes": [{
                    "reason": "NamespaceTerminating",
                    "message": f'namespace {namespace} is being terminated',
                    "field": "metadata.namespace"}]})

    def _admit_object(self, plural: str, namespace: str | None, obj: dict[str, Any], *,
                      create: bool, previous: Mapping[str, Any] | None = None,
                      ) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if namespace and plural != "namespaces":
            meta["namespace"] = namespace
        if create:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_iso())
            meta["generation"] = 1
        else:
            meta["generation"] = (previous or {}).get("metadata", {}).get("generation", 1)
            if plural not in ("pods", "nodes", "namespaces", "events") and \
                    (previous or {}).get("spec") != obj.get("spec"):
                meta["generation"] += 1
        meta["resourceVersion"] = self._next_rv()
        _apply_defaults(plural, obj, self)
        return obj

    # -- faults -----------------------------------------------------------------------------

    def forbid(self, resource: str | None = None, *, verbs: Iterable[str] | None = None,
               namespace: str | None = None, name: str | None = None,
               path: str | None = None, user: str = "student",
               message: str | None = None) -> Fault:
        """Answer matching requests with RBAC's 403 ``Forbidden`` Status; nothing is stored.

        ``resource`` is the plural as RBAC spells it (``pods``, ``deployments``,
        ``pods/log``); ``verbs`` are RBAC verbs (``get list watch create patch update
        delete``). With no arguments every request is refused.
        """
        return self._add_fault(Fault(
            kind="forbid", resource=resource, verbs=frozenset(verbs) if verbs else None,
            namespace=namespace, name=name, path=re.compile(path) if path else None,
            user=user, message=message))

    def fail(self, code: int, reason: str, message: str, *, resource: str | None = None,
             verbs: Iterable[str] | None = None, namespace: str | None = None,
             after: int = 0) -> Fault:
        """Answer matching requests with any ``Status`` (e.g. 500, 429, 503)."""
        return self._add_fault(Fault(
            kind="status", resource=resource, verbs=frozenset(verbs) if verbs else None,
            namespace=namespace, after=after, code=code, reason=reason, message=message))

    def pause(self, *, mode: str = "hang", after: int = 0, resource: str | None = None,
              verbs: Iterable[str] | None = None, path: str | None = None) -> Fault:
        """Stop answering: ``hang`` holds requests open until ``resume()``; ``drop``
        closes the connection without a response. ``after=N`` lets N matching requests
        through first, so the API can die in the middle of a check."""
        if mode not in ("hang", "drop"):
            raise ValueError("mode is 'hang' or 'drop'")
        if mode == "hang" and self._loop is not None and self._resume is not None:
            self._loop.call_soon_threadsafe(self._resume.clear)
        return self._add_fault(Fault(
            kind=mode, resource=resource, verbs=frozenset(verbs) if verbs else None,
            path=re.compile(path) if path else None, after=after))

    def resume(self) -> None:
        """Undo ``pause()``: held requests get their answers, new ones are served."""
        with self._lock:
            self._faults = [f for f in self._faults if f.kind not in ("hang", "drop")]
        if self._loop is not None and self._resume is not None:
            with suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._resume.set)

    @contextmanager
    def paused(self, **kwargs: Any) -> Iterator[Fault]:
        fault = self.pause(**kwargs)
        try:
            yield fault
        finally:
            self.resume()

    def clear_faults(self) -> None:
        self.resume()
        with self._lock:
            self._faults.clear()

    def remove_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if f is not fault]
        if fault.kind == "hang" and not any(f.kind == "hang" for f in self._faults):
            self.resume()

    def _add_fault(self, fault: Fault) -> Fault:
        fault._owner = self
        with self._lock:
            self._faults.append(fault)
        return fault

    async def _apply_faults(self, request: kmock.Request) -> Any:
        import aiohttp.web

        with self._lock:
            faults = list(self._faults)
        for fault in faults:
            if not fault.matches(request):
                continue
            fault.seen += 1
            if fault.seen <= fault.after:
                continue
            fault.hits += 1
            if fault.kind == "forbid":
                return aiohttp.web.json_response(fault.status_body(request), status=403)
            if fault.kind == "status":
                body = fault.status_body(request)
                return aiohttp.web.json_response(body, status=fault.code)
            if fault.kind == "drop":
                raw = getattr(request, "_raw_request", None)
                if raw is not None and raw.transport is not None:
                    raw.transport.close()
                raise ConnectionResetError("kubesim dropped the connection")
            if fault.kind == "hang" and self._resume is not None and self._stop is not None:
                await self._resume.wait()
                if self._stop.is_set():
                    raise ConnectionResetError("kubesim stopped")
        return None

    # -- logs -------------------------------------------------------------------------------

    def _serve_log(self, request: kmock.Request) -> Any:
        """``kubectl logs``: 404 for no pod, 400 for a waiting container, else the text."""
        import aiohttp.web

        pod = self._stored("pods", request.namespace, request.name)
        if pod is None:
            raise _not_found(request)
        name = pod["metadata"]["name"]
        containers = [c.get("name") for c in pod.get("spec", {}).get("containers", [])]
        container = request.params.get("container")
        if container is None:
            if len(containers) > 1:
                raise _http_status(400, "BadRequest", f"a container name must be specified "
                                   f"for pod {name}, choose one of: [{' '.join(containers)}]")
            container = containers[0] if containers else None
        elif container not in containers:
            raise _http_status(400, "BadRequest",
                               f"container {container} is not valid for pod {name}")
        statuses = {s.get("name"): s for s in pod.get("status", {}).get("containerStatuses", [])}
        state = statuses.get(container, {}).get("state", {})
        waiting = state.get("waiting")
        restarted = statuses.get(container, {}).get("restartCount", 0)
        if not statuses or (waiting and not restarted):
            reason = (waiting or {}).get("reason", "ContainerCreating")
            raise _http_status(400, "BadRequest", f'container "{container}" in pod "{name}" '
                               f"is waiting to start: {reason}")
        text = self.log_source(request.namespace or "", name, container) \
            if self.log_source else ""
        tail = request.params.get("tailLines")
        if tail is not None and tail.lstrip("-").isdigit():
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail):]) if int(tail) > 0 else ""
        return aiohttp.web.Response(text=text, content_type="text/plain")

    # -- clients ----------------------------------------------------------------------------

    def write_kubeconfig(self, path: str | Path, contexts: Mapping[str, str] | None = None,
                         current: str = LAB_CONTEXT) -> Path:
        """Write a kubeconfig whose contexts point at servers (``{context: url}``).

        By default one context, ``kind-dockyard``, points at this emulator. ``current``
        may name a context that is not in ``contexts``: a broken kubeconfig to test.
        Each context gets its own cluster and token user, as kind writes them.
        """
        contexts = dict(contexts) if contexts is not None else {LAB_CONTEXT: self.url}
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": name, "cluster": {"server": url}}
                         for name, url in contexts.items()],
            "users": [{"name": name, "user": {"token": TOKEN}} for name in contexts],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}
                         for name in contexts],
            "current-context": current,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def api_client(self, timeout: float | None = None) -> ApiClient:
        """A ``kubernetes.client.ApiClient`` for this emulator (no kubeconfig involved)."""
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        config.api_key = {"authorization": f"Bearer {TOKEN}"}
        config.retries = False
        api = client.ApiClient(config)
        if timeout is not None:
            api.rest_client.pool_manager.connection_pool_kw["timeout"] = timeout
        return api


def dead_url() -> str:
    """A URL where nothing listens (a cluster that is down, or a context gone stale)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- defaulting (the API server's own) ------------------------------------------------------


def _default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for container in spec.get("containers") or []:
        image = str(container.get("image", ""))
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")


def _apply_defaults(plural: str, obj: dict[str, Any], emu: Emulator) -> None:
    spec = obj.get("spec")
    if plural == "namespaces":
        name = obj["metadata"].get("name", "")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif plural == "pods" and isinstance(spec, dict):
        _default_pod_spec(spec)
        tolerations = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(t.get("key") == key for t in tolerations):
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": 300})
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", _qos_class(spec))
    elif plural in ("deployments", "replicasets") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        template = spec.get("template")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            _default_pod_spec(template["spec"])
        if plural == "deployments":
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                rolling.setdefault("maxSurge", "25%")
                rolling.setdefault("maxUnavailable", "25%")
    elif plural == "services" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        if not spec.get("clusterIP"):
            spec["clusterIP"] = emu._cluster_ip()
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj.setdefault("status", {}).setdefault("loadBalancer", {})
