"""``dockyard doctor``: can the Docker labs run here, and if not, exactly why.

Each finding names what was measured and, when it is a problem, what to do. The
labs can run when every finding marked ``required`` is fine.
"""

from __future__ import annotations

import html
import os
import shutil
from dataclasses import asdict, dataclass, field
from typing import Any

from kernel_helpers import engine as eng
from kernel_helpers import images, progress

MIN_MEMORY_GIB = 2.0
MIN_FREE_DISK_GIB = 2.0


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings if f.required)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "findings": [asdict(f) for f in self.findings]}

    def __str__(self) -> str:
        lines = []
        for f in self.findings:
            mark = "✓" if f.ok else ("✗" if f.required else "!")
            lines.append(f"{mark} {f.name}: {f.detail}")
            if f.fix and not f.ok:
                lines.append(f"    → {f.fix}")
        verdict = "The Docker labs can run here." if self.ok else "The Docker labs cannot run yet."
        return "\n".join([*lines, verdict])

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{'✓' if f.ok else ('✗' if f.required else '!')}</td>"
            f"<td>{html.escape(f.name)}</td><td>{html.escape(f.detail)}"
            + (f"<br><small>→ {html.escape(f.fix)}</small>" if f.fix and not f.ok else "")
            + "</td></tr>"
            for f in self.findings
        )
        return f"<table>{rows}</table><p>{html.escape(str(self).splitlines()[-1])}</p>"


def _gib(value: float) -> str:
    return f"{value / 2**30:.1f} GiB"


def run() -> Report:
    report = Report()
    add = report.findings.append
    try:
        engine = eng.connect()
    except eng.EngineUnavailable as exc:
        add(Finding("engine", False, str(exc)))  # the message already says how to start it
        add(_context_finding())
        add(_store_finding())
        return report
    info = engine.info()
    add(Finding("engine", True, f"reachable at {engine.endpoint.url} ({engine.endpoint.source})"))
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
