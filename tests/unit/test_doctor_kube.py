"""``dockyard doctor``'s Kubernetes findings: tools, memory, inotify, proxy, context.

Tools are fake executables first on PATH, kernel limits are files in a temporary
folder, and proxy variables are plain mappings, so every case runs on any machine.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kernel_helpers import diagnostics as doc
from kernel_helpers import engine as eng

GIB = 2**30


def path_without(*tools: str, first: Path | None = None) -> str:
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not any((Path(d) / tool).exists() for tool in tools)]
    return os.pathsep.join([*([str(first)] if first else []), *keep])


def fake_tool(folder: Path, name: str, stdout: str, code: int = 0) -> Path:
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys
        sys.stdout.write({stdout!r})
        sys.exit({code})
        """))
    script.chmod(0o755)
    return script


@pytest.fixture(autouse=True)
def own_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kube" / "config"
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("DOCKYARD_KUBE_CONTEXT", raising=False)
    return path


# -- kind and kubectl ------------------------------------------------------------------


def test_kind_missing_is_a_kubernetes_blocker_with_an_install_hint(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", path_without("kind"))
    found = doc.kind_finding(uses_kind=True)
    assert not found.ok and found.kube_required and not found.required
    assert "no `kind` on PATH" in found.detail
    assert "kind.sigs.k8s.io/dl/" in found.fix or "brew install kind" in found.fix \
        or "winget install Kubernetes.kind" in found.fix


def test_kind_present_reports_its_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tool(tmp_path / "bin", "kind", "kind v0.30.0 go1.24.6 linux/amd64\n")
    monkeypatch.setenv("PATH", path_without("kind", first=tmp_path / "bin"))
    found = doc.kind_finding(uses_kind=True)
    assert found.ok and "kind v0.30.0" in found.detail and str(tmp_path) in found.detail


def test_a_broken_kind_is_reported_with_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tool(tmp_path / "bin", "kind", "exec format error\n", code=126)
    monkeypatch.setenv("PATH", path_without("kind", first=tmp_path / "bin"))
    found = doc.kind_finding(uses_kind=True)
    assert not found.ok and "`kind version` failed" in found.detail
    assert "exec format error" in found.detail


def test_kind_is_not_needed_for_a_chosen_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", path_without("kind"))
    found = doc.kind_finding(uses_kind=False, chosen="k3d-lab")
    assert found.ok and not found.kube_required and "'k3d-lab'" in found.detail


def test_kubectl_version_from_its_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tool(tmp_path / "bin", "kubectl", json.dumps(
        {"clientVersion": {"gitVersion": "v1.34.1"}, "kustomizeVersion": "v5.7.1"}))
    monkeypatch.setenv("PATH", path_without("kubectl", first=tmp_path / "bin"))
    found = doc.kubectl_finding("Linux")
    assert found.ok and found.kube_required and "kubectl v1.34.1" in found.detail


def test_kubectl_that_prints_garbage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tool(tmp_path / "bin", "kubectl", "error: unknown flag: --client\n", code=1)
    monkeypatch.setenv("PATH", path_without("kubectl", first=tmp_path / "bin"))
    found = doc.kubectl_finding("Linux")
    assert not found.ok and "did not report its version" in found.detail
    assert "unknown flag" in found.detail and "exit 1" in found.detail


@pytest.mark.parametrize(("system", "hint"), [
    ("Linux", "https://dl.k8s.io/release/"), ("Darwin", "brew install kubectl"),
    ("Windows", "winget install Kubernetes.kubectl"),
])
def test_kubectl_missing_gets_a_platform_hint(
    system: str, hint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", path_without("kubectl"))
    found = doc.kubectl_finding(system)
    assert not found.ok and found.kube_required and hint in found.fix


# -- memory and inotify ----------------------------------------------------------------


@pytest.mark.parametrize(("gib", "ok"), [(3.0, False), (3.99, False), (4.0, True), (16, True)])
def test_memory_for_three_nodes(gib: float, ok: bool) -> None:
    found = doc.kind_memory_finding({"MemTotal": int(gib * GIB)})
    assert found.ok is ok and found.kube_required and not found.required
    assert "3-node kind cluster needs at least 4 GiB" in found.detail
    if not ok:
        assert "Settings → Resources → Memory" in found.fix


def limits(folder: Path, watches: str, instances: str) -> Path:
    folder.mkdir()
    (folder / "max_user_watches").write_text(watches + "\n")
    (folder / "max_user_instances").write_text(instances + "\n")
    return folder


def test_inotify_limits_that_are_high_enough(tmp_path: Path) -> None:
    found = doc.inotify_finding(limits(tmp_path / "ino", "1048576", "512"))
    assert found.ok and found.kube_required
    assert found.detail == "max_user_watches=1048576, max_user_instances=512"


def test_low_inotify_limits_get_the_sysctl_fix_for_the_low_one_only(tmp_path: Path) -> None:
    found = doc.inotify_finding(limits(tmp_path / "ino", "1048576", "128"))
    assert not found.ok and found.kube_required
    assert "max_user_instances=128" in found.detail and "max_user_instances ≥ 512" in found.detail
    assert "too many open files" in found.detail
    assert "sudo sysctl -w fs.inotify.max_user_instances=512`" in found.fix
    # Raising one limit must never lower the other, which is already above kind's value.
    assert "max_user_watches" not in found.fix
    assert "/etc/sysctl.d/99-kind.conf" in found.fix


def test_both_inotify_limits_low(tmp_path: Path) -> None:
    found = doc.inotify_finding(limits(tmp_path / "ino", "8192", "128"))
    assert ("sudo sysctl -w fs.inotify.max_user_watches=524288 "
            "fs.inotify.max_user_instances=512") in found.fix


def test_unreadable_inotify_limits_are_a_warning(tmp_path: Path) -> None:
    found = doc.inotify_finding(tmp_path / "missing")
    assert not found.ok and not found.kube_required and "cannot read" in found.detail


def test_inotify_is_only_checked_on_linux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = {f.name for f in doc.kubernetes_findings({"MemTotal": 8 * GIB}, environ={},
                                                     system="Darwin")}
    assert "inotify limits" not in names and "memory for kind" in names
    names = {f.name for f in doc.kubernetes_findings(
        {"MemTotal": 8 * GIB}, environ={}, system="Linux",
        inotify_dir=limits(tmp_path / "ino", "524288", "512"))}
    assert "inotify limits" in names


# -- proxy -------------------------------------------------------------------------------


SECRET_PROXY = "http://student:hunter2@proxy.example:3128"


@pytest.mark.parametrize(("environ", "ok", "missing"), [
    ({}, True, []),
    ({"HTTPS_PROXY": SECRET_PROXY}, False, ["localhost", "127.0.0.1", ".svc", "10.96.0.0/12"]),
    ({"http_proxy": SECRET_PROXY, "NO_PROXY": "localhost,127.0.0.1"}, False,
     [".svc", "10.96.0.0/12"]),
    ({"HTTPS_PROXY": SECRET_PROXY, "NO_PROXY": "localhost,127.0.0.1,.svc,10.96.0.0/12"}, True,
     []),
    ({"HTTPS_PROXY": SECRET_PROXY, "no_proxy": "LOCALHOST, 127.0.0.0/8, svc, 10.0.0.0/8"}, True,
     []),
    ({"HTTPS_PROXY": SECRET_PROXY, "NO_PROXY": "localhost,127.0.0.1,*.svc,10.96.0.0/16"}, False,
     ["10.96.0.0/12"]),
    ({"HTTPS_PROXY": SECRET_PROXY, "NO_PROXY": "*"}, True, []),
    ({"HTTPS_PROXY": SECRET_PROXY, "NO_PROXY": "localhost,127.0.0.1,.svc.cluster.local,::1"},
     False, [".svc", "10.96.0.0/12"]),
])
def test_proxy_variables(environ: dict[str, str], ok: bool, missing: list[str]) -> None:
    found = doc.proxy_finding(environ)
    assert found.ok is ok and not found.kube_required and not found.required
    text = found.detail + found.fix
    assert "hunter2" not in text and "proxy.example" not in text, "proxy URLs may hold passwords"
    if ok:
        return
    if "NO_PROXY" in environ or "no_proxy" in environ:
        listed = found.detail.split("does not cover ")[1].split(";")[0]
        assert listed.split(", ") == missing
    else:
        assert "NO_PROXY is not set;" in found.detail
    for item in missing:
        assert item in found.fix
    names = [n for n in environ if n.lower().endswith("_proxy") and "no_" not in n.lower()]
    assert all(n in found.detail for n in names)
    assert "export NO_PROXY=" in found.fix


def test_proxy_fix_keeps_the_existing_no_proxy() -> None:
    found = doc.proxy_finding({"HTTPS_PROXY": SECRET_PROXY, "NO_PROXY": "intranet.example"})
    assert 'NO_PROXY="intranet.example,localhost,127.0.0.1,.svc,10.96.0.0/12"' in found.fix


# -- the kube context ------------------------------------------------------------------


def write_kubeconfig(path: Path, current: str | None, *contexts: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["apiVersion: v1", "kind: Config"]
    if current:
        lines.append(f"current-context: {current}")
    lines.append("contexts:")
    lines += [f"- name: {name}\n  context: {{cluster: {name}, user: {name}}}" for name in contexts]
    path.write_text("\n".join(lines) + "\n")


def test_a_foreign_current_context_is_named(own_kubeconfig: Path) -> None:
    write_kubeconfig(own_kubeconfig, "work-prod", "work-prod")
    found = doc.kube_context_finding()
    assert not found.ok and "'work-prod'" in found.detail and "refuses" in found.detail
    assert "--context work-prod" in found.fix and "dockyard cluster up" in found.fix


def test_the_lab_context_is_fine(own_kubeconfig: Path) -> None:
    write_kubeconfig(own_kubeconfig, "kind-dockyard", "work-prod", "kind-dockyard")
    found = doc.kube_context_finding()
    assert found.ok and "kind-dockyard" in found.detail


def test_no_kubeconfig_yet_points_at_cluster_up(own_kubeconfig: Path) -> None:
    found = doc.kube_context_finding()
    assert not found.ok and not found.kube_required
    assert "no kubeconfig yet" in found.detail and "dockyard cluster up" in found.fix


def test_a_chosen_context_must_exist(own_kubeconfig: Path) -> None:
    write_kubeconfig(own_kubeconfig, "work-prod", "work-prod", "k3d-lab")
    found = doc.kube_context_finding("k3d-lab")
    assert found.ok and found.kube_required and "'k3d-lab'" in found.detail
    found = doc.kube_context_finding("minikube")
    assert not found.ok and found.kube_required
    assert "'minikube'" in found.detail and "work-prod, k3d-lab" in found.detail


def test_a_broken_kubeconfig(own_kubeconfig: Path) -> None:
    own_kubeconfig.parent.mkdir(parents=True)
    own_kubeconfig.write_text("contexts: [unclosed\n")
    found = doc.kube_context_finding()
    assert not found.ok and "cannot be read" in found.detail and str(own_kubeconfig) in found.detail


# -- the report and its two verdicts ---------------------------------------------------


def test_two_verdicts_are_independent() -> None:
    report = doc.Report([
        doc.Finding("engine", True, "up", kube_required=True),
        doc.Finding("kind", False, "missing", "install it", required=False, kube_required=True),
        doc.Finding("proxy", False, "warn", required=False),
    ])
    assert report.ok and not report.kube_ok
    assert str(report).splitlines()[-2:] == ["The Docker labs can run here.",
                                             "The Kubernetes labs cannot run yet."]
    assert "✗ kind: missing" in str(report) and "! proxy: warn" in str(report)
    assert report.to_dict()["kubernetes_ok"] is False and report.to_dict()["ok"] is True
    assert "The Kubernetes labs cannot run yet." in report._repr_html_()


def test_run_without_docker_blocks_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.setattr(eng, "_cached", None)
    report = doc.run()
    engine = next(f for f in report.findings if f.name == "engine")
    assert not engine.ok and engine.required and engine.kube_required
    names = {f.name for f in report.findings}
    assert {"kind", "kubectl", "proxy", "kube context"} <= names
    assert not report.ok and not report.kube_ok


def test_run_with_a_chosen_cluster_does_not_need_docker_for_kubernetes(
    monkeypatch: pytest.MonkeyPatch, own_kubeconfig: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.setattr(eng, "_cached", None)
    monkeypatch.setenv("DOCKYARD_KUBE_CONTEXT", "k3d-lab")
    write_kubeconfig(own_kubeconfig, "k3d-lab", "k3d-lab")
    fake_tool(tmp_path / "bin", "kubectl", json.dumps({"clientVersion": {"gitVersion": "v1.34.1"}}))
    monkeypatch.setenv("PATH", path_without("kubectl", "kind", first=tmp_path / "bin"))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    report = doc.run()
    engine = next(f for f in report.findings if f.name == "engine")
    assert not engine.ok and not engine.kube_required
    assert not report.ok and report.kube_ok, str(report)
    assert "memory for kind" not in {f.name for f in report.findings}


def test_cli_doctor_prints_both_verdicts(cli: Any, own_kubeconfig: Path) -> None:
    write_kubeconfig(own_kubeconfig, "work-prod", "work-prod")
    done = cli("doctor", env={"DOCKER_HOST": "unix:///nonexistent.sock",
                              "PATH": path_without("kind")})
    assert done.returncode == 1
    assert "The Docker labs cannot run yet." in done.stdout
    assert "The Kubernetes labs cannot run yet." in done.stdout
    assert "'work-prod'" in done.stdout and "Traceback" not in done.stderr


def test_cli_doctor_context_option_chooses_the_context(cli: Any, own_kubeconfig: Path) -> None:
    write_kubeconfig(own_kubeconfig, "work-prod", "work-prod")
    done = cli("doctor", "--json", "--context", "shared-lab",
               env={"DOCKER_HOST": "unix:///nonexistent.sock", "PATH": path_without("kind")})
    report = json.loads(done.stdout)
    context = next(f for f in report["findings"] if f["name"] == "kube context")
    assert "'shared-lab'" in context["detail"] and not context["ok"]
    kind = next(f for f in report["findings"] if f["name"] == "kind")
    assert kind["ok"] and "not needed" in kind["detail"]
