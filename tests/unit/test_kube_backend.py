"""The Kubernetes backend against the emulator: the context guard, apply, watches, faults.

Every check of a Kubernetes lab goes through ``kernel_helpers.kubernetes.connect``, so
the guard is tested here once, and through ``checkers.check`` for the statuses a
student sees ("refused", "needs-cluster", an error with a specific message).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubesim
import pytest

import checkers
from kernel_helpers import kubernetes as kube

LAB = "06-kubernetes"
NAMESPACE = kube.LAB_NAMESPACES[LAB]


def deployment(name: str = "web", replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": name, "image": "dockyard/api:1"}]}},
        },
    }


@pytest.fixture
def reads_web(make_exercise: Callable[..., Any]) -> str:
    """A throwaway cluster exercise whose check reads deployment/web."""
    exercise = make_exercise("kubernetes.test-reads-web", lab=LAB, needs_cluster=True)

    @exercise.check
    def _(ctx: checkers.CheckContext) -> None:
        found = ctx.kget("Deployment", "web")
        ctx.result("only", bool(found))

    return exercise.id


# -- the context guard ----------------------------------------------------------------


def test_a_foreign_current_context_is_refused_and_named(
    kube_emulator: kubesim.Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    reads_web: str,
) -> None:
    path = kube_emulator.write_kubeconfig(
        tmp_path / "config",
        {"kind-dockyard": kube_emulator.url, "prod-eu": kube_emulator.url}, current="prod-eu")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv(kube.CONTEXT_ENV, raising=False)
    kube.forget()
    with pytest.raises(kube.WrongContext, match="'prod-eu'") as refused:
        kube.connect()
    assert refused.value.context == "prod-eu"
    verdict = checkers.check(reads_web)
    assert verdict.status == checkers.REFUSED
    assert "prod-eu" in verdict.message and "kind-dockyard" in verdict.message
    assert verdict.score == 0
    # Nothing was sent to the cluster behind the foreign context.
    assert not kube_emulator.objects("apps/v1/deployments")


def test_an_explicitly_chosen_context_is_used(
    kube_emulator: kubesim.Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = kube_emulator.write_kubeconfig(
        tmp_path / "config", {"workshop": kube_emulator.url, "prod": kubesim.dead_url()},
        current="prod")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv(kube.CONTEXT_ENV, "workshop")
    kube.forget()
    assert kube.connect().context == "workshop"


def test_a_chosen_context_missing_from_the_kubeconfig_lists_the_real_ones(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(kube.CONTEXT_ENV, "k3d-typo")
    with pytest.raises(kube.ClusterUnavailable, match=r"'k3d-typo'.*kind-dockyard"):
        kube.connect()


def test_no_kubeconfig_means_needs_a_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads_web: str,
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    kube.forget()
    verdict = checkers.check(reads_web)
    assert verdict.status == checkers.NEEDS_CLUSTER
    assert "dockyard cluster up" in verdict.message
    assert "needs a Kubernetes cluster" in verdict.headline()


def test_a_malformed_kubeconfig_gets_a_sentence_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads_web: str,
) -> None:
    broken = tmp_path / "config"
    broken.write_text("apiVersion: v1\ncontexts: [unclosed\n")
    monkeypatch.setenv("KUBECONFIG", str(broken))
    kube.forget()
    verdict = checkers.check(reads_web)
    assert verdict.status == checkers.NEEDS_CLUSTER
    assert str(broken) in verdict.message


def test_a_dead_api_server_is_named_with_the_way_to_repair_it(
    kube_emulator: kubesim.Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = kube_emulator.write_kubeconfig(tmp_path / "config",
                                          {"kind-dockyard": kubesim.dead_url()})
    monkeypatch.setenv("KUBECONFIG", str(path))
    kube.forget()
    with pytest.raises(kube.ClusterUnavailable, match="dockyard cluster status"):
        kube.connect(timeout=2)


# -- apply, read, wait ----------------------------------------------------------------


def test_apply_creates_then_updates_with_the_lab_labels(kubeconfig: Path) -> None:
    cluster = kube.connect()
    created = cluster.apply(deployment(replicas=2), namespace=NAMESPACE, lab=LAB,
                            exercise="kubernetes.x")
    assert created["metadata"]["labels"] == {"dockyard.lab": LAB,
                                             "dockyard.exercise": "kubernetes.x"}
    cluster.apply(deployment(replicas=4), namespace=NAMESPACE, lab=LAB, exercise="kubernetes.x")
    found = cluster.get("Deployment", "web", NAMESPACE)
    assert found is not None and found["spec"]["replicas"] == 4
    assert cluster.get("Deployment", "absent", NAMESPACE) is None


def test_objects_filters_by_labels_even_when_the_server_does_not(kubeconfig: Path) -> None:
    cluster = kube.connect()
    for name in ("web", "db"):
        cluster.apply(deployment(name), namespace=NAMESPACE, lab=LAB)
    names = [d["metadata"]["name"] for d in cluster.objects("Deployment", NAMESPACE,
                                                            {"dockyard.lab": LAB})]
    assert sorted(names) == ["db", "web"]
    assert cluster.objects("Deployment", NAMESPACE, {"app": "nothing"}) == []


def test_wait_rollout_follows_the_watch_until_ready(
    kubeconfig: Path, fake_cluster: kubesim.FakeCluster,
) -> None:
    cluster = kube.connect()
    cluster.apply(deployment(replicas=3), namespace=NAMESPACE, lab=LAB)
    fake_cluster.start()
    started = time.monotonic()
    done = cluster.wait_rollout("web", NAMESPACE, timeout=20)
    assert done["status"]["readyReplicas"] == 3
    assert time.monotonic() - started < 20


def test_wait_gives_up_at_its_deadline_with_the_pods_diagnosis(
    kubeconfig: Path, fake_cluster: kubesim.FakeCluster,
) -> None:
    cluster = kube.connect()
    broken = deployment()
    broken["spec"]["template"]["spec"]["containers"][0]["image"] = "dockyard/api:404"
    cluster.apply(broken, namespace=NAMESPACE, lab=LAB)
    fake_cluster.settle()
    started = time.monotonic()
    with pytest.raises(kube.ClusterFault) as gave_up:
        cluster.wait_rollout("web", NAMESPACE, timeout=2)
    assert time.monotonic() - started < 8
    assert "gave up after 2 s" in str(gave_up.value)
    assert "dockyard/api:404" in str(gave_up.value) and "kind load" in str(gave_up.value)


def test_wait_for_sees_a_change_made_while_it_watches(kubeconfig: Path) -> None:
    cluster = kube.connect()
    cluster.apply(deployment(), namespace=NAMESPACE, lab=LAB)

    def scale_later() -> None:
        time.sleep(0.5)
        cluster.patch("Deployment", "web", NAMESPACE, {"spec": {"replicas": 7}})

    threading.Thread(target=scale_later).start()
    replicas = cluster.wait_for(
        "Deployment", NAMESPACE,
        lambda objs: objs["web"]["spec"]["replicas"] if objs["web"]["spec"]["replicas"] == 7
        else None,
        timeout=10, what="the scale-up")
    assert replicas == 7


# -- faults a student can meet ------------------------------------------------------------


def test_rbac_forbidden_is_explained_not_dumped(
    kubeconfig: Path, kube_emulator: kubesim.Emulator, reads_web: str,
) -> None:
    kube_emulator.forbid("deployments", verbs=["get"])
    verdict = checkers.check(reads_web)
    assert verdict.status == checkers.ERROR
    assert "permission (RBAC)" in verdict.message and "forbidden" in verdict.message.lower()


def test_an_api_server_that_stops_answering_mid_check(
    kubeconfig: Path, kube_emulator: kubesim.Emulator, reads_web: str,
) -> None:
    kube.connect()  # connected and pinged; then the server dies before the check's read
    kube_emulator.pause(mode="drop")
    verdict = checkers.check(reads_web)
    assert verdict.status == checkers.ERROR
    assert "stopped answering" in verdict.message
    assert "Traceback" not in str(verdict)


def test_an_api_server_that_hangs_costs_one_timeout(
    kubeconfig: Path, kube_emulator: kubesim.Emulator, reads_web: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube.connect()
    monkeypatch.setenv("DOCKYARD_CHECK_TIMEOUT", "2")
    with kube_emulator.paused(mode="hang"):
        started = time.monotonic()
        verdict = checkers.check(reads_web)
        assert time.monotonic() - started < 6
    assert verdict.status == checkers.TIMEOUT


# -- the lab's namespace and reset ------------------------------------------------------------


def test_setup_creates_the_labelled_namespace(kubeconfig: Path) -> None:
    cluster = kube.connect()
    assert cluster.ensure_namespace(LAB) == NAMESPACE
    found = cluster.get("Namespace", NAMESPACE)
    assert found is not None
    assert found["metadata"]["labels"]["dockyard.lab"] == LAB
    assert cluster.ensure_namespace(LAB) == NAMESPACE  # again: reused


def test_a_same_named_namespace_dockyard_did_not_create_is_not_used(
    kubeconfig: Path,
) -> None:
    cluster = kube.connect()
    cluster._call("POST", cluster.path("Namespace"),
                  body={"metadata": {"name": NAMESPACE, "labels": {"team": "payments"}}})
    with pytest.raises(kube.ClusterFault, match="did not create"):
        cluster.ensure_namespace(LAB)


def test_a_namespace_stuck_terminating_gets_explained(
    kubeconfig: Path, kube_emulator: kubesim.Emulator,
) -> None:
    cluster = kube.connect()
    cluster.ensure_namespace(LAB)
    kube_emulator.stuck_namespaces.add(NAMESPACE)
    cluster.delete("Namespace", NAMESPACE)
    found = cluster.get("Namespace", NAMESPACE)
    assert found is not None and found["status"]["phase"] == "Terminating"
    with pytest.raises(kube.ClusterFault, match="Terminating"):
        cluster.ensure_namespace(LAB, wait_terminating=1)


def test_reset_deletes_only_the_labs_own_namespace(kubeconfig: Path) -> None:
    cluster = kube.connect()
    cluster.ensure_namespace(LAB)
    cluster.apply(deployment(), namespace=NAMESPACE, lab=LAB)
    cluster._call("POST", cluster.path("Namespace"), body={"metadata": {"name": "student"}})
    cluster._call("POST", cluster.path("Deployment", "student"), body=deployment("mine"))
    report = checkers.reset(LAB)
    # The lab's cleanup hooks may remove objects inside its namespace first.
    assert NAMESPACE in [r.name for r in report.removed if r.kind == "namespace"]
    assert all(r.kind == "namespace" or NAMESPACE in r.why for r in report.removed)
    assert not report.problems
    gone = cluster.get("Namespace", NAMESPACE)
    assert gone is None or gone.get("metadata", {}).get("deletionTimestamp")
    assert cluster.get("Namespace", "student") is not None
    assert cluster.get("Deployment", "mine", "student") is not None


def test_reset_refuses_a_foreign_context_and_says_so(
    kube_emulator: kubesim.Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = kube_emulator.write_kubeconfig(tmp_path / "config", {"work": kube_emulator.url},
                                          current="work")
    monkeypatch.setenv("KUBECONFIG", str(path))
    kube.forget()
    report = checkers.reset(LAB)
    assert not report.removed
    assert any("'work'" in p for p in report.problems)


def test_reset_without_a_cluster_is_quiet_for_all_labs_and_plain_for_a_kube_lab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Docker-only student has no cluster: `dockyard reset` must not fail over it."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    kube.forget()
    everything = checkers.reset()
    assert not [p for p in everything.problems if "Kubernetes" in p or "cluster" in p], \
        everything.problems
    one_lab = checkers.reset("07-deployment-patterns")
    assert len(one_lab.problems) == 1, one_lab.problems
    assert one_lab.problems[0].startswith("Kubernetes objects were not touched")
