"""``dockyard doctor``: can the Docker and Kubernetes labs run here, and if not, why.

Each finding names what was measured and, when it is a problem, what to do. The
Docker labs can run when every finding marked ``required`` is fine; the Kubernetes
labs (06, 07) when every finding marked ``kube_required`` is. The two verdicts are
separate: a missing kind never stops the Docker labs.
"""

from __future__ import annotations

import html
import ipaddress
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kernel_helpers import engine as eng
from kernel_helpers import images, progress

MIN_MEMORY_GIB = 2.0
MIN_FREE_DISK_GIB = 2.0
#: Memory the engine needs for the 3-node kind cluster. kind's quick start asks for at least
#: 4 GB in Docker Desktop's VM for a single node; three nodes share one kernel and page cache,
#: and only the control plane runs etcd and the API server, so the same floor leaves the
#: workers and the labs' few small pods room. Below it, nodes get OOM-killed mid-lab.
MIN_KIND_MEMORY_GIB = 4.0
#: kind's known-issues page: lower limits make kubelet and kube-proxy fail with
#: "too many open files" once several nodes share the host kernel.
INOTIFY_MINIMUMS = {"max_user_watches": 524288, "max_user_instances": 512}
INOTIFY_DIR = Path("/proc/sys/fs/inotify")
#: What must bypass a proxy: the API server (127.0.0.1), Services by name (*.svc) and by
#: cluster IP (kind's service range 10.96.0.0/12).
NO_PROXY_NEEDED = ("localhost", "127.0.0.1", ".svc", "10.96.0.0/12")
TOOL_TIMEOUT = 15.0


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    #: Needed by the Docker labs (00-05).
    required: bool = True
    #: Needed by the Kubernetes labs (06-07).
    kube_required: bool = False

    @property
    def mark(self) -> str:
        return "✓" if self.ok else ("✗" if self.required or self.kube_required else "!")


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The Docker labs can run."""
        return all(f.ok for f in self.findings if f.required)

    @property
    def kube_ok(self) -> bool:
        """The Kubernetes labs can run (the cluster itself may still need `cluster up`)."""
        return all(f.ok for f in self.findings if f.kube_required)

    def verdicts(self) -> list[str]:
        return [
            "The Docker labs can run here." if self.ok else "The Docker labs cannot run yet.",
            "The Kubernetes labs can run here." if self.kube_ok
            else "The Kubernetes labs cannot run yet.",
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "kubernetes_ok": self.kube_ok,
                "findings": [asdict(f) for f in self.findings]}

    def __str__(self) -> str:
        lines = []
        for f in self.findings:
            lines.append(f"{f.mark} {f.name}: {f.detail}")
            if f.fix and not f.ok:
                lines.append(f"    → {f.fix}")
        return "\n".join([*lines, *self.verdicts()])

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{f.mark}</td>"
            f"<td>{html.escape(f.name)}</td><td>{html.escape(f.detail)}"
            + (f"<br><small>→ {html.escape(f.fix)}</small>" if f.fix and not f.ok else "")
            + "</td></tr>"
            for f in self.findings
        )
        verdicts = "<br>".join(html.escape(line) for line in self.verdicts())
        return f"<table>{rows}</table><p>{verdicts}</p>"


def _gib(value: float) -> str:
    return f"{value / 2**30:.1f} GiB"


def run() -> Report:
    from kernel_helpers import kind
    from kernel_helpers import kubernetes as kube

    report = Report()
    add = report.findings.append
    chosen = kube.chosen_context()
    # kind needs Docker; a cluster chosen with DOCKYARD_KUBE_CONTEXT does not.
    uses_kind = chosen in (None, kind.LAB_CONTEXT)
    try:
        engine = eng.connect()
    except eng.EngineUnavailable as exc:
        # The message already says how to start it.
        add(Finding("engine", False, str(exc), kube_required=uses_kind))
        add(_context_finding())
        add(_store_finding())
        report.findings.extend(kubernetes_findings(None, chosen=chosen))
        return report
    info = engine.info()
    add(Finding("engine", True, f"reachable at {engine.endpoint.url} ({engine.endpoint.source})",
                kube_required=uses_kind))
    add(_context_finding())
    add(Finding("server version", True, f"Docker {info.get('ServerVersion', '?')}, "
                f"API {engine.client.api.api_version}, {info.get('OperatingSystem', '?')}"))
    cgroup = str(info.get("CgroupVersion", "1"))
    add(Finding("cgroup", True, f"cgroup v{cgroup}, driver {info.get('CgroupDriver', '?')}"))
    memory = float(info.get("MemTotal", 0))
    add(Finding("memory", memory >= MIN_MEMORY_GIB * 2**30, f"{_gib(memory)} for containers",
                f"Give Docker at least {MIN_MEMORY_GIB:g} GiB (Docker Desktop: Settings → "
                "Resources)."))
    missing_limits = [name for name, key in (("memory", "MemoryLimit"), ("cpu", "CpuCfsQuota"),
                                             ("pids", "PidsLimit")) if info.get(key) is False]
    add(Finding("resource limits", not missing_limits,
                "memory, CPU and pids limits are supported" if not missing_limits
                else f"the kernel lacks {', '.join(missing_limits)} limits",
                "Lab 02's limit exercises need these cgroup controllers.", required=False))
    add(_disk_finding(info, engine))
    base_missing = [tag for tag in images.BASE_IMAGES if not images.present(engine, tag)]
    add(Finding("base images", not base_missing,
                "busybox and debian:bookworm-slim are present" if not base_missing
                else f"missing: {', '.join(base_missing)}",
                "`docker pull " + " ".join(base_missing) + "` where a registry is reachable; "
                "lab images build FROM these.", required=False))
    lab_missing = [row["tag"] for row in images.status(engine) if not row["present"]]
    add(Finding("lab images", not lab_missing,
                "all built" if not lab_missing else f"not built yet: {', '.join(lab_missing)}",
                "`dockyard images build`", required=False))
    add(_store_finding())
    report.findings.extend(kubernetes_findings(info, chosen=chosen))
    return report


def _context_finding() -> Finding:
    host = os.environ.get("DOCKER_HOST")
    detail = f"DOCKER_HOST={host}" if host else f"docker context '{eng.current_context()}'"
    return Finding("context", True, detail, required=False)


def _disk_finding(info: dict[str, Any], engine: eng.Engine) -> Finding:
    root = info.get("DockerRootDir", "/var/lib/docker")
    try:
        free = shutil.disk_usage(root).free
        where = root
    except OSError:
        # A remote or VM engine: its disk is not ours to measure; use the local home.
        free = shutil.disk_usage(progress.home().anchor or "/").free
        where = f"this machine (the engine's {root} is not visible from here)"
    return Finding("free disk", free >= MIN_FREE_DISK_GIB * 2**30, f"{_gib(free)} free on {where}",
                   "Free some space: `docker system df` shows what Docker uses and "
                   "`docker image prune` removes unused images.")


def _store_finding() -> Finding:
    store = progress.store()
    try:
        store.summary()
        return Finding("progress store", True, f"{store.path}", required=False)
    except progress.ProgressUnavailable as exc:
        return Finding("progress store", False, str(exc),
                       "Set DOCKYARD_HOME to a writable folder.", required=False)


# -- the Kubernetes labs -----------------------------------------------------------------


def kubernetes_findings(
    info: Mapping[str, Any] | None,
    *,
    chosen: str | None = None,
    environ: Mapping[str, str] | None = None,
    system: str | None = None,
    inotify_dir: Path = INOTIFY_DIR,
) -> list[Finding]:
    """What the Kubernetes labs need: tools, room for kind's nodes, kernel limits, proxy, context.

    ``info`` is ``docker info`` (None without an engine). With a context chosen other
    than the lab's kind cluster, kind and the engine's resources do not matter.
    """
    from kernel_helpers import kind

    environ = os.environ if environ is None else environ
    system = system or platform.system()
    uses_kind = chosen in (None, kind.LAB_CONTEXT)
    found = [kind_finding(uses_kind, chosen), kubectl_finding(system)]
    if uses_kind and info is not None:
        found.append(kind_memory_finding(info))
    if uses_kind and system == "Linux":
        found.append(inotify_finding(inotify_dir))
    found.append(proxy_finding(environ))
    found.append(kube_context_finding(chosen))
    return found


def kind_finding(uses_kind: bool, chosen: str | None = None) -> Finding:
    """``kind version``."""
    from kernel_helpers import kind

    if not uses_kind:
        return Finding("kind", True, f"not needed: the labs use the context '{chosen}' "
                       "(DOCKYARD_KUBE_CONTEXT), not a kind cluster", required=False)
    try:
        return Finding("kind", True, f"kind {kind.version()} ({kind.binary()})",
                       required=False, kube_required=True)
    except kind.KindMissing:
        return Finding("kind", False, "kind is not installed (no `kind` on PATH); the "
                       "Kubernetes labs run on a local kind cluster",
                       f"Install it: {kind.install_hint()}", required=False, kube_required=True)
    except kind.KindError as exc:
        return Finding("kind", False, f"kind is on PATH but `kind version` failed: {exc}",
                       "Reinstall kind: " + kind.install_hint(), required=False,
                       kube_required=True)


def kubectl_install_hint(system: str) -> str:
    if system == "Darwin":
        return "`brew install kubectl` (Homebrew; Docker Desktop also ships one)."
    if system == "Windows":
        return "`winget install Kubernetes.kubectl` or `choco install kubernetes-cli`."
    return ("`curl -LO \"https://dl.k8s.io/release/$(curl -Ls "
            "https://dl.k8s.io/release/stable.txt)/bin/linux/amd64/kubectl\" && sudo install -m "
            "0755 kubectl /usr/local/bin/kubectl` (arm64 machines: replace amd64 with arm64).")


def kubectl_finding(system: str | None = None) -> Finding:
    """``kubectl version --client -o json``."""
    system = system or platform.system()
    fix = f"Install it: {kubectl_install_hint(system)}"
    found = shutil.which("kubectl")
    if not found:
        return Finding("kubectl", False, "kubectl is not installed (no `kubectl` on PATH); the "
                       "labs show kubectl commands to inspect the cluster", fix,
                       required=False, kube_required=True)
    try:
        done = subprocess.run([found, "version", "--client", "-o", "json"], capture_output=True,
                              text=True, timeout=TOOL_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Finding("kubectl", False, f"`kubectl version --client` did not answer within "
                       f"{TOOL_TIMEOUT:.0f} s", fix, required=False, kube_required=True)
    except OSError as exc:
        return Finding("kubectl", False, f"{found} could not be run: {exc}", fix,
                       required=False, kube_required=True)
    try:
        release = str(json.loads(done.stdout)["clientVersion"]["gitVersion"])
    except (ValueError, KeyError, TypeError):
        said = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        return Finding("kubectl", False, f"{found} did not report its version (exit "
                       f"{done.returncode}{': ' + said[-1].strip() if said else ''})", fix,
                       required=False, kube_required=True)
    return Finding("kubectl", True, f"kubectl {release} ({found})", required=False,
                   kube_required=True)


def kind_memory_finding(info: Mapping[str, Any]) -> Finding:
    """``docker info --format '{{.MemTotal}}'`` against room for three kind nodes."""
    memory = float(info.get("MemTotal", 0) or 0)
    return Finding(
        "memory for kind", memory >= MIN_KIND_MEMORY_GIB * 2**30,
        f"{_gib(memory)} for containers; the 3-node kind cluster needs at least "
        f"{MIN_KIND_MEMORY_GIB:g} GiB",
        f"Docker Desktop: Settings → Resources → Memory, {MIN_KIND_MEMORY_GIB:g} GiB or more. "
        "A Linux engine uses the machine's own memory: close memory-hungry programs or use a "
        "bigger machine.",
        required=False, kube_required=True)


def inotify_finding(inotify_dir: Path = INOTIFY_DIR) -> Finding:
    """``sysctl fs.inotify.max_user_watches fs.inotify.max_user_instances`` (kind's known issue)."""
    low: dict[str, int] = {}
    seen: list[str] = []
    for name, needed in INOTIFY_MINIMUMS.items():
        try:
            value = int((inotify_dir / name).read_text().strip())
        except (OSError, ValueError) as exc:
            return Finding("inotify limits", False, f"cannot read {inotify_dir / name}: {exc}",
                           "kind needs fs.inotify.max_user_watches ≥ 524288 and "
                           "fs.inotify.max_user_instances ≥ 512; `sysctl fs.inotify` shows them.",
                           required=False)
        seen.append(f"{name}={value}")
        if value < needed:
            low[name] = needed
    if not low:
        return Finding("inotify limits", True, ", ".join(seen), required=False,
                       kube_required=True)
    settings = [f"fs.inotify.{name}={needed}" for name, needed in low.items()]
    lines = "\\n".join(f"fs.inotify.{name} = {needed}" for name, needed in low.items())
    return Finding(
        "inotify limits", False,
        f"{', '.join(seen)} on this machine's kernel; kind needs "
        f"{', '.join(f'{n} ≥ {v}' for n, v in low.items())}, or its nodes can fail with "
        "\"too many open files\"",
        f"`sudo sysctl -w {' '.join(settings)}`; to keep it after a reboot: "
        f"`printf '{lines}\\n' | sudo tee /etc/sysctl.d/99-kind.conf`.",
        required=False, kube_required=True)


def _no_proxy_covers(needed: str, entries: list[str]) -> bool:
    """Whether a NO_PROXY list lets ``needed`` (a host, domain suffix or CIDR) bypass a proxy."""
    for entry in entries:
        if entry == "*":
            return True
        if needed.startswith("."):  # a domain suffix: ".svc", "svc" and "*.svc" all match it
            if entry.lstrip("*").lstrip(".") == needed.lstrip("."):
                return True
            continue
        if entry == needed:
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
            wanted = ipaddress.ip_network(needed, strict=False)
        except ValueError:
            continue
        if wanted.version == network.version and wanted.subnet_of(network):  # type: ignore[arg-type]
            return True
    return False


def proxy_finding(environ: Mapping[str, str]) -> Finding:
    """HTTP(S)_PROXY without a NO_PROXY that covers the cluster's own addresses.

    Only the variables' names are shown: a proxy URL may carry a password.
    """
    names = [n for n in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
             if environ.get(n)]
    if not names:
        return Finding("proxy", True, "no HTTP(S)_PROXY set", required=False)
    raw = ",".join(v for v in (environ.get("NO_PROXY"), environ.get("no_proxy")) if v)
    entries = [e.strip().lower() for e in raw.split(",") if e.strip()]
    missing = [n for n in NO_PROXY_NEEDED if not _no_proxy_covers(n, entries)]
    if not missing:
        return Finding("proxy", True, f"{', '.join(names)} set; NO_PROXY covers the cluster's "
                       "own addresses", required=False)
    keep = raw.strip(",")
    value = ",".join([*([keep] if keep else []), *missing])
    return Finding(
        "proxy", False,
        f"{', '.join(names)} set, but NO_PROXY "
        f"{'does not cover ' + ', '.join(missing) if raw else 'is not set'}; requests to the "
        "Kubernetes API (127.0.0.1), to Services by name (*.svc) and by cluster IP "
        "(10.96.0.0/12) would go to the proxy and fail",
        f"Before `dockyard cluster up` and JupyterLab: `export NO_PROXY=\"{value}\" "
        "no_proxy=\"$NO_PROXY\"` (in your shell profile to keep it).",
        required=False)


def kube_context_finding(chosen: str | None = None) -> Finding:
    """Which kube context the labs will act on, read from the kubeconfig (no cluster call)."""
    from kernel_helpers import kind

    config = kind.read_kubeconfig()
    where = config.location
    if config.problem:
        return Finding("kube context", False, config.problem,
                       "Fix the file, or point KUBECONFIG at a good one; `dockyard cluster up` "
                       "writes the lab's context into it.", required=False, kube_required=True)
    if chosen and chosen != kind.LAB_CONTEXT:
        if chosen in config.contexts:
            return Finding("kube context", True, f"'{chosen}', chosen with DOCKYARD_KUBE_CONTEXT "
                           f"(in {where}); `dockyard cluster status` checks that it answers",
                           required=False, kube_required=True)
        listed = ", ".join(config.contexts) or "none"
        return Finding("kube context", False,
                       f"DOCKYARD_KUBE_CONTEXT chooses '{chosen}', which is not in {where} "
                       f"(contexts there: {listed})",
                       "`kubectl config get-contexts` lists the contexts; set "
                       "DOCKYARD_KUBE_CONTEXT to one of them, or unset it to use the lab's kind "
                       "cluster.", required=False, kube_required=True)
    if chosen == kind.LAB_CONTEXT or config.current == kind.LAB_CONTEXT:
        if kind.LAB_CONTEXT in config.contexts:
            return Finding("kube context", True, f"'{kind.LAB_CONTEXT}', the lab's kind cluster "
                           f"(in {where})", required=False)
        return Finding("kube context", False, f"'{kind.LAB_CONTEXT}' is chosen but not in {where} "
                       "yet", "`dockyard cluster up` creates the cluster and its context.",
                       required=False)
    if config.current is None:
        detail = (f"{where} names no current context" if config.exists
                  else f"no kubeconfig yet ({where})")
        return Finding("kube context", False, f"{detail}: the lab's cluster is not created yet",
                       "`dockyard cluster up` creates it and the context "
                       f"'{kind.LAB_CONTEXT}'.", required=False)
    return Finding(
        "kube context", False,
        f"kubectl's current context is '{config.current}', not the lab's '{kind.LAB_CONTEXT}': "
        "Dockyard refuses to act on it",
        f"`dockyard cluster up` (it switches kubectl to '{kind.LAB_CONTEXT}'), or `kubectl config "
        f"use-context {kind.LAB_CONTEXT}` if the cluster exists. To use '{config.current}' for "
        f"the labs on purpose: `--context {config.current}` or "
        f"DOCKYARD_KUBE_CONTEXT={config.current}.",
        required=False)
