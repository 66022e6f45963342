"""The lab's kind cluster: ``dockyard cluster up|down|status``.

kind runs each Kubernetes node as a Docker container. Dockyard drives the ``kind``
binary (``kind create cluster``, ``kind load docker-image`` ...) as a subprocess with a
deadline on every call, and reads the cluster's state through the Kubernetes API
(:mod:`kernel_helpers.kubernetes`, imported lazily). It only ever creates or deletes the
cluster named ``dockyard`` (context ``kind-dockyard``); another context can be
inspected with :func:`status` but is never created or deleted here.
"""

from __future__ import annotations

import os
import platform
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel_helpers import engine as eng

CLUSTER_NAME = "dockyard"
#: kind names a cluster's kubeconfig context ``kind-<name>``.
LAB_CONTEXT = f"kind-{CLUSTER_NAME}"
CONFIG = Path(__file__).resolve().parent.parent / "labs" / "06-kubernetes" / "kind-cluster.yaml"
#: kind labels every node container with the cluster's name.
NODE_LABEL = "io.x-k8s.kind.cluster"
#: The labs whose exercises run on the cluster; their images are preloaded into the nodes.
KIND_LABS = ("06-kubernetes", "07-deployment-patterns")
#: What those labs run while their exercises are not registered (or declare no images).
FALLBACK_IMAGES = ("dockyard/api:1", "dockyard/api:2")
#: The release the Linux install hint downloads; any recent kind works.
KIND_RELEASE = "v0.30.0"

# Deadlines, in seconds. Creating is slow the first time: kind pulls its node image.
QUICK_TIMEOUT = 30.0
CREATE_TIMEOUT = 900.0
DELETE_TIMEOUT = 180.0
LOAD_TIMEOUT = 300.0
READY_TIMEOUT = 180.0

Log = Callable[[str], None]

_VERBS = {"up": "create or reuse", "down": "delete"}
_RECREATE = "Run `dockyard cluster down` then `dockyard cluster up` to start it afresh."


class KindError(RuntimeError):
    """kind could not do what was asked; the message says why and what to do.

    ``code`` is the CLI exit code: 1 for a failure, 2 for a missing tool or bad input.
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class KindMissing(KindError):
    """No ``kind`` binary on PATH; the message says how to install it here."""

    def __init__(self) -> None:
        super().__init__(
            "kind is not installed (no `kind` on PATH). The Kubernetes labs run on a local "
            f"kind cluster. Install it: {install_hint()} Then run `dockyard cluster up`.",
            code=2,
        )


def install_hint(system: str | None = None, machine: str | None = None) -> str:
    """How to install kind on this platform (kind's own quick-start methods)."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    if system == "Darwin":
        return "`brew install kind` (Homebrew)."
    if system == "Windows":
        return "`winget install Kubernetes.kind` or `choco install kind`."
    arch = "arm64" if machine in ("aarch64", "arm64") else "amd64"
    return (
        f"`curl -Lo ./kind https://kind.sigs.k8s.io/dl/{KIND_RELEASE}/kind-linux-{arch} && "
        "chmod +x ./kind && sudo mv ./kind /usr/local/bin/kind` "
        "(newer releases: https://github.com/kubernetes-sigs/kind/releases)."
    )


# -- running kind ------------------------------------------------------------------------


def binary() -> str:
    """The ``kind`` executable on PATH, or :class:`KindMissing`."""
    found = shutil.which("kind")
    if not found:
        raise KindMissing()
    return found


def _command(args: Iterable[str]) -> str:
    return "kind " + " ".join(args)


def _failed(args: list[str], code: int, output: str, after: str = "") -> KindError:
    tail = [line.strip() for line in output.splitlines() if line.strip()][-6:]
    said = "\n    ".join(tail) or "(it printed nothing)"
    return KindError(f"`{_command(args)}` failed (exit {code}):\n    {said}"
                     + (f"\n{after}" if after else ""))


def _timed_out(args: list[str], timeout: float, after: str = "") -> KindError:
    return KindError(f"`{_command(args)}` did not finish within {timeout:.0f} s and was "
                     f"stopped. {after}".strip())


def _run(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """``kind ARGS``, captured, killed at the deadline; non-zero exit -> :class:`KindError`."""
    timeout = QUICK_TIMEOUT if timeout is None else timeout
    try:
        done = subprocess.run([binary(), *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise _timed_out(args, timeout) from None
    except OSError as exc:
        raise KindError(f"could not run kind: {exc}") from None
    if done.returncode != 0:
        raise _failed(args, done.returncode, done.stderr or done.stdout)
    return done


def _stream(args: list[str], timeout: float, log: Log, *, after_timeout: str = "",
            after_failure: str = "") -> None:
    """``kind ARGS``, each output line passed to ``log`` as it comes, stopped at the deadline.

    kind reports progress on stderr, so both streams are read as one. A reader thread
    keeps a slow or silent kind from blocking the deadline.
    """
    posix = os.name == "posix"
    try:
        proc = subprocess.Popen(
            [binary(), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, errors="replace",
            # Its own process group, so a timeout also stops the docker commands kind started.
            start_new_session=posix,
        )
    except OSError as exc:
        raise KindError(f"could not run kind: {exc}") from None
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            for part in raw.replace("\r", "\n").split("\n"):
                lines.put(part.strip())
        lines.put(None)

    threading.Thread(target=read, daemon=True, name="kind-output").start()
    tail: deque[str] = deque(maxlen=8)
    deadline = time.monotonic() + timeout

    def stop() -> None:
        try:
            if posix:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()

    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                stop()
                raise _timed_out(args, timeout, after_timeout)
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                break
            if line:
                tail.append(line)
                log(line)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        stop()
        raise _timed_out(args, timeout, after_timeout) from None
    except BaseException:  # Ctrl-C included: never leave kind running behind the student
        if proc.poll() is None:
            stop()
        raise
    if code != 0:
        raise _failed(args, code, "\n".join(tail), after_failure)


def version() -> str:
    """``kind version``: the release, such as ``v0.30.0`` (the whole line if unusual)."""
    line = _run(["version"]).stdout.strip()
    found = re.search(r"\bv\d+\.\d+\.\d+\S*", line)
    return found.group(0) if found else line


def clusters() -> list[str]:
    """``kind get clusters``: the names of every kind cluster on this engine."""
    return [line.strip() for line in _run(["get", "clusters"]).stdout.splitlines()
            if line.strip()]


def config_roles(config: Path = CONFIG) -> list[str]:
    """The node roles the cluster config declares (``control-plane``, ``worker`` ...)."""
    import yaml

    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise KindError(f"{config} is missing: the cluster config comes with a Dockyard "
                        "checkout (`pip install -e .` in the repository).", code=2) from None
    except (OSError, yaml.YAMLError) as exc:
        raise KindError(f"{config} cannot be read: {exc}", code=2) from None
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not nodes:
        return ["control-plane"]  # kind's default: a single node
    return [str(n.get("role", "control-plane")) if isinstance(n, dict) else "control-plane"
            for n in nodes]


# -- facts the lifecycle depends on ------------------------------------------------------


def _docker() -> eng.Engine:
    """The engine kind will use; a stopped Docker gets Docker's own message, not kind's."""
    from kernel_helpers import engine as eng

    try:
        return eng.connect()
    except eng.EngineUnavailable as exc:
        raise KindError(f"kind runs its nodes as Docker containers, and {exc}", code=2) from None


def node_containers(engine: eng.Engine) -> dict[str, str]:
    """``docker ps -a --filter label=io.x-k8s.kind.cluster=dockyard``: name -> state."""
    found = engine.client.containers.list(
        all=True, filters={"label": f"{NODE_LABEL}={CLUSTER_NAME}"})
    return {str(c.name): str(c.status) for c in found}


def _refuse_foreign_choice(action: str) -> None:
    from kernel_helpers import kubernetes as kube

    chosen = kube.chosen_context()
    if chosen and chosen != LAB_CONTEXT:
        raise KindError(
            f"{kube.CONTEXT_ENV} chooses the context '{chosen}', but `dockyard cluster {action}` "
            f"only manages the lab's own kind cluster (context '{LAB_CONTEXT}'). Unset "
            f"{kube.CONTEXT_ENV} to {_VERBS.get(action, action)} the lab's cluster; a cluster you "
            "chose yourself is used as it is, never created or deleted by Dockyard.", code=2)


@dataclass
class Kubeconfig:
    """What ``kubectl config get-contexts`` would show, read with PyYAML (no kube client)."""

    paths: list[Path]
    current: str | None = None
    contexts: list[str] = field(default_factory=list)
    problem: str = ""

    @property
    def location(self) -> str:
        return os.pathsep.join(str(p) for p in self.paths)

    @property
    def exists(self) -> bool:
        return any(p.exists() for p in self.paths)


def read_kubeconfig() -> Kubeconfig:
    """``$KUBECONFIG`` (several files, like kubectl merges them) or ``~/.kube/config``.

    As in kubectl, the first file that sets ``current-context`` wins.
    """
    import yaml

    listed = os.environ.get("KUBECONFIG")
    paths = ([Path(p).expanduser() for p in listed.split(os.pathsep) if p] if listed
             else [Path.home() / ".kube" / "config"])
    facts = Kubeconfig(paths=paths)
    for path in paths:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            facts.problem = f"the kubeconfig {path} cannot be read: {first}"
            continue
        if not isinstance(data, dict):
            facts.problem = f"the kubeconfig {path} is not a kubeconfig (no mapping at the top)"
            continue
        if not facts.current and data.get("current-context"):
            facts.current = str(data["current-context"])
        for item in data.get("contexts") or []:
            name = item.get("name") if isinstance(item, dict) else None
            if name and str(name) not in facts.contexts:
                facts.contexts.append(str(name))
    return facts


# -- images ------------------------------------------------------------------------------


def pinned(tag: str) -> bool:
    """Whether an image reference names a fixed version (a tag other than latest, or a digest)."""
    if "@" in tag:
        return True
    last = tag.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] != "latest"


def lab_images() -> list[str]:
    """The tags the Kubernetes labs run: their exercises' ``images``, in course order."""
    import checkers
    from kernel_helpers import images

    tags: list[str] = []
    for lab in KIND_LABS:
        try:
            names = [name for ex in checkers.all_exercises(lab) for name in ex.images]
        except checkers.UnknownLab:
            names = []
        # A lab not registered yet, or still without exercises, runs the sample API.
        names = names or list(FALLBACK_IMAGES)
        for name in names:
            try:
                tag = images.spec(name).tag
            except KeyError as exc:
                raise KindError(f"{lab} needs {exc.args[0]}") from None
            if tag not in tags:
                tags.append(tag)
    return tags


def load_images(tags: Iterable[str] | None = None, *, log: Log | None = None,
                engine: eng.Engine | None = None) -> list[str]:
    """Build any missing lab image, then copy each into every node.

    ``kind load docker-image --name dockyard TAG`` for each tag. Only pinned tags: with
    ``latest`` (or no tag) Kubernetes' default pull policy is Always, so pods would try
    a registry and ignore the copy on the node.
    """
    from kernel_helpers import images

    say = log or (lambda _line: None)
    wanted = lab_images() if tags is None else list(tags)
    for tag in wanted:
        if not pinned(tag):
            raise KindError(
                f"refusing to load '{tag}' into kind: an image without a pinned tag (or tagged "
                "latest) gets imagePullPolicy Always, so Kubernetes would pull it from a registry "
                "and never use the copy on the nodes. Give it a version tag, such as "
                "dockyard/api:1.", code=2)
    images.ensure(wanted, engine or _docker(), log=say)
    for number, tag in enumerate(wanted, 1):
        say(f"loading {tag} into the nodes ({number}/{len(wanted)})")
        _run(["load", "docker-image", "--name", CLUSTER_NAME, tag], LOAD_TIMEOUT)
        say(f"✓ {tag} is on every node")
    return wanted


# -- status ------------------------------------------------------------------------------


@dataclass
class NodeStatus:
    """One node as ``kubectl get nodes`` shows it, plus the lab images it holds."""

    name: str
    roles: list[str]
    ready: bool
    kubelet: str = ""
    images: list[str] = field(default_factory=list)


@dataclass
class ClusterStatus:
    """What ``dockyard cluster status`` reports.

    ``kind_managed`` is False for a context chosen with ``--context`` that is not the
    lab's kind cluster; the kind facts (``kind_version``, ``exists``) then do not apply.
    """

    context: str
    kind_managed: bool
    kind_version: str | None = None
    exists: bool | None = None
    reachable: bool = False
    nodes: list[NodeStatus] = field(default_factory=list)
    lab_images: list[str] = field(default_factory=list)
    current_context: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The API answers and every node is Ready."""
        return (self.reachable and bool(self.nodes) and all(n.ready for n in self.nodes)
                and not self.problems)

    @property
    def kind_missing(self) -> bool:
        return self.kind_managed and self.kind_version is None and shutil.which("kind") is None

    def images_missing(self) -> dict[str, list[str]]:
        """Lab image -> the nodes that do not hold it yet."""
        return {tag: [n.name for n in self.nodes if tag not in n.images]
                for tag in self.lab_images
                if any(tag not in n.images for n in self.nodes)}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.kind_managed:
            data["kind_version"] = data["exists"] = "not applicable"
        data.update(ok=self.ok, images_missing=self.images_missing())
        return data

    def __str__(self) -> str:
        na = "not applicable (not the lab's kind cluster)"
        lines = [f"context: {self.context}"]
        lines.append(f"kind: {self.kind_version or 'not installed'}" if self.kind_managed
                     else f"kind: {na}")
        if self.kind_managed:
            exists = {True: "yes", False: "no", None: "unknown"}[self.exists]
            lines.append(f"kind cluster '{CLUSTER_NAME}' exists: {exists}")
        lines.append(f"API answers: {'yes' if self.reachable else 'no'}")
        for node in self.nodes:
            ready = "Ready" if node.ready else "NotReady"
            held = ", ".join(node.images) or "none"
            lines.append(f"  {node.name} ({'/'.join(node.roles)}) {ready}; lab images: {held}")
        lines.extend(f"problem: {p}" for p in self.problems)
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _image_names(node: dict[str, Any]) -> set[str]:
    """The names a node's container runtime knows its images by, registry prefix removed."""
    names: set[str] = set()
    for image in (node.get("status") or {}).get("images") or []:
        for name in image.get("names") or []:
            name = str(name)
            for prefix in ("docker.io/library/", "docker.io/"):
                if name.startswith(prefix):
                    name = name[len(prefix):]
                    break
            names.add(name)
    return names


def _node_status(node: dict[str, Any], tags: list[str]) -> NodeStatus:
    from kernel_helpers import kubernetes as kube

    meta = node.get("metadata") or {}
    prefix = "node-role.kubernetes.io/"
    roles = sorted(key[len(prefix):] for key in (meta.get("labels") or {})
                   if key.startswith(prefix))
    held = _image_names(node)
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return NodeStatus(
        name=str(meta.get("name", "?")),
        # kubectl prints <none> for a node without a role label: it runs ordinary pods.
        roles=roles or ["worker"],
        ready=kube.node_ready(node),
        kubelet=str(info.get("kubeletVersion", "")),
        images=[tag for tag in tags if tag in held],
    )


def status(context: str | None = None) -> ClusterStatus:
    """``kind get clusters`` + ``kubectl get nodes`` for the lab's cluster or a chosen one.

    Never raises for a missing or broken cluster: every fault becomes a ``problem``
    line. Image presence comes from each node's ``status.images``, so no exec is needed.
    """
    from kernel_helpers import kubernetes as kube

    chosen = kube.chosen_context(context)
    target = chosen or LAB_CONTEXT
    result = ClusterStatus(context=target, kind_managed=target == LAB_CONTEXT)
    config = read_kubeconfig()  # a broken file is reported by connect() below
    result.current_context = config.current
    if result.kind_managed and not _kind_facts(result):
        return result
    if not chosen and config.current and config.current != LAB_CONTEXT:
        result.notes.append(
            f"kubectl's current context is '{config.current}', so Dockyard's checks refuse to run "
            f"until you switch: `kubectl config use-context {LAB_CONTEXT}`.")
    try:
        cluster = kube.connect(target, timeout=5)
        nodes = cluster.nodes()
    except kube.ClusterUnavailable as exc:
        result.problems.append(str(exc))
        return result
    except Exception as exc:
        if kube.api_status(exc) is None and not kube.is_cluster_fault(exc):
            raise
        result.problems.append(kube.explain_api_error(exc, "list the nodes"))
        return result
    result.reachable = True
    try:
        result.lab_images = lab_images()
    except KindError as exc:
        result.notes.append(str(exc))
    result.nodes = sorted((_node_status(n, result.lab_images) for n in nodes),
                          key=lambda n: ("control-plane" not in n.roles, n.name))
    if not result.nodes:
        result.problems.append(f"the API of '{target}' answers but lists no nodes.")
    for name in (n.name for n in result.nodes if not n.ready):
        result.problems.append(f"node {name} is not Ready: `kubectl describe node {name}` "
                               "shows its conditions.")
    if result.kind_managed and result.nodes:
        try:
            declared = len(config_roles())
        except KindError as exc:
            result.notes.append(str(exc))
            declared = 0
        if len(result.nodes) < declared:
            result.problems.append(
                f"the cluster has {len(result.nodes)} nodes, but {CONFIG.name} declares "
                f"{declared}: it is half created. {_RECREATE}")
    missing = result.images_missing()
    if missing and result.kind_managed:
        result.notes.append(f"not loaded yet: {', '.join(missing)}. `dockyard cluster up` "
                            "loads them (it reuses the running cluster).")
    return result


def _kind_facts(result: ClusterStatus) -> bool:
    """Fill in kind's view of the lab cluster; False when there is nothing more to ask."""
    try:
        result.kind_version = version()
    except KindMissing as exc:
        result.problems.append(str(exc))
        return True  # the cluster may still run (kind is only needed to create it)
    except KindError as exc:
        result.problems.append(str(exc))
    try:
        _docker()
        result.exists = CLUSTER_NAME in clusters()
    except KindError as exc:
        result.problems.append(str(exc))
        return False
    if not result.exists:
        result.problems.append(
            f"there is no kind cluster named '{CLUSTER_NAME}' yet: `dockyard cluster up` "
            "creates it.")
        return False
    return True


# -- up and down -------------------------------------------------------------------------


def _half_created(engine: eng.Engine, expected: int) -> str:
    """Why an existing ``dockyard`` cluster cannot be reused, or '' when its nodes run."""
    states = node_containers(engine)
    stopped = {name: state for name, state in sorted(states.items()) if state != "running"}
    if len(states) < expected:
        return (f"only {len(states)} of its {expected} node containers exist "
                f"({', '.join(sorted(states)) or 'none'})")
    if stopped:
        listed = ", ".join(f"{name} is {state}" for name, state in stopped.items())
        return f"not all of its node containers run ({listed})"
    return ""


def up(*, log: Log | None = None) -> ClusterStatus:
    """Create the lab's cluster, or reuse the one there is, and preload the lab images.

    ``kind create cluster --name dockyard --config labs/06-kubernetes/kind-cluster.yaml
    --wait 180s``, then ``kind export kubeconfig --name dockyard`` (which makes
    ``kind-dockyard`` kubectl's current context), a wait until every node is Ready, and
    ``kind load docker-image`` for each lab image. A healthy existing cluster is reused;
    a half-created one is reported, never deleted behind the student's back.
    """
    from kernel_helpers import kubernetes as kube

    say = log or (lambda _line: None)
    _refuse_foreign_choice("up")
    binary()
    engine = _docker()
    roles = config_roles()
    before = read_kubeconfig().current  # kind switches kubectl's current context
    if CLUSTER_NAME in clusters():
        say(f"found the kind cluster '{CLUSTER_NAME}': reusing it")
        why = _half_created(engine, len(roles))
        if why:
            raise KindError(f"the kind cluster '{CLUSTER_NAME}' is half created: {why}. "
                            + _RECREATE)
        created = False
    else:
        workers = roles.count("worker")
        say(f"creating the kind cluster '{CLUSTER_NAME}' ({len(roles) - workers} control-plane, "
            f"{workers} workers); the first time, kind downloads its node image, which takes "
            "a few minutes")
        _stream(["create", "cluster", "--name", CLUSTER_NAME, "--config", str(CONFIG),
                 "--wait", f"{READY_TIMEOUT:.0f}s"], CREATE_TIMEOUT, say,
                after_timeout=f"The cluster may be half created. {_RECREATE}",
                after_failure="kind removes a cluster it could not finish. `dockyard doctor` "
                              "checks the usual causes: Docker's memory, inotify limits, "
                              "proxy settings.")
        created = True
    try:
        _run(["export", "kubeconfig", "--name", CLUSTER_NAME])
    except KindError as exc:
        raise KindError(f"{exc}\nThe cluster's kubeconfig could not be exported, so it is "
                        f"probably half created. {_RECREATE}") from None
    if before and before != LAB_CONTEXT:
        say(f"kubectl's current context is now '{LAB_CONTEXT}' (it was '{before}'; "
            f"`kubectl config use-context {before}` switches back)")
    kube.forget()
    try:
        cluster = kube.connect(LAB_CONTEXT, timeout=10)
        nodes = cluster.nodes()
    except Exception as exc:
        if not isinstance(exc, kube.ClusterUnavailable) and kube.api_status(exc) is None \
                and not kube.is_cluster_fault(exc):
            raise
        state = "was just created, but" if created else "exists, but"
        raise KindError(f"the kind cluster '{CLUSTER_NAME}' {state} its API server does not "
                        f"answer properly: {exc}. It is half created. {_RECREATE}") from None
    if len(nodes) < len(roles):
        raise KindError(f"the kind cluster '{CLUSTER_NAME}' has {len(nodes)} nodes, but "
                        f"{CONFIG.name} declares {len(roles)}: it is half created. {_RECREATE}")
    say("waiting until every node is Ready")
    try:
        ready = kube.wait_nodes_ready(cluster, timeout=READY_TIMEOUT)
    except Exception as exc:
        if not isinstance(exc, kube.ClusterFault) and not kube.is_cluster_fault(exc):
            raise
        raise KindError(f"{exc} `kubectl describe nodes` shows why. If a node never becomes "
                        f"Ready: {_RECREATE}") from None
    say(f"✓ {len(ready)} nodes Ready: {', '.join(ready)}")
    load_images(log=say, engine=engine)
    return status(LAB_CONTEXT)


def down(*, log: Log | None = None) -> bool:
    """``kind delete cluster --name dockyard``: this cluster only. False if there was none."""
    say = log or (lambda _line: None)
    _refuse_foreign_choice("down")
    binary()
    _docker()
    if CLUSTER_NAME not in clusters():
        say(f"there is no kind cluster named '{CLUSTER_NAME}': nothing to delete")
        return False
    say(f"deleting the kind cluster '{CLUSTER_NAME}' and its node containers")
    _run(["delete", "cluster", "--name", CLUSTER_NAME], DELETE_TIMEOUT)
    from kernel_helpers import kubernetes as kube

    kube.forget()
    return True
