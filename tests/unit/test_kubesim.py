"""kubesim itself: the emulator's API-server behaviour and the fake controllers.

Everything goes through the real ``kubernetes`` client, as the lab's code does, so
these tests also prove the objects deserialize into the client's models.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import kubesim
import pytest

NS = "dockyard-k8s"
WORKERS = {"dockyard-worker", "dockyard-worker2"}


def deployment(name: str = "web", image: str = "dockyard/api:1", replicas: int = 3,
               labels: dict[str, str] | None = None, **pod: Any) -> dict[str, Any]:
    labels = labels or {"app": name}
    container = {"name": "api", "image": image, "ports": [{"containerPort": 8000,
                                                            "name": "http"}],
                 **pod.pop("container", {})}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": dict(labels)},
        "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels),
                                           "annotations": pod.pop("annotations", {})},
                              "spec": {"containers": [container], **pod}}},
    }


def service(name: str = "web", selector: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": selector or {"app": "web"},
                     "ports": [{"name": "http", "port": 8000, "targetPort": "http"}]}}


@pytest.fixture
def core(kube_emulator: kubesim.Emulator) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kube_emulator.api_client())


@pytest.fixture
def apps(kube_emulator: kubesim.Emulator) -> Any:
    from kubernetes import client

    return client.AppsV1Api(kube_emulator.api_client())


def events(core: Any, reason: str | None = None) -> list[Any]:
    found = core.list_namespaced_event(NS).items
    return [e for e in found if reason is None or e.reason == reason]


def pods_of(core: Any, label: str = "web") -> list[Any]:
    # The emulator ignores label selectors: filter here, as the lab's helpers do.
    return [p for p in core.list_namespaced_pod(NS).items
            if (p.metadata.labels or {}).get("app") == label]


# -- the API server ----------------------------------------------------------------------


def test_kubeconfig_contexts_reach_the_emulator(kube_emulator: kubesim.Emulator,
                                                tmp_path: Path) -> None:
    from kubernetes import client, config

    path = kube_emulator.write_kubeconfig(
        tmp_path / "config", {"kind-dockyard": kube_emulator.url,
                              "work-cluster": kubesim.dead_url()}, current="work-cluster")
    contexts, current = config.list_kube_config_contexts(config_file=str(path))
    assert {c["name"] for c in contexts} == {"kind-dockyard", "work-cluster"}
    assert current["name"] == "work-cluster"
    api = config.new_client_from_config(config_file=str(path), context="kind-dockyard")
    names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    assert {"default", "kube-system"} <= names
    dead = config.new_client_from_config(config_file=str(path), context="work-cluster")
    with pytest.raises(Exception, match=r"(?i)refused|max retries"):
        client.CoreV1Api(dead).list_namespace(_request_timeout=2)


def test_objects_get_identity_defaults_and_real_error_bodies(core: Any, apps: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    made = apps.create_namespaced_deployment(NS, deployment())
    assert made.metadata.uid and made.metadata.creation_timestamp is not None
    assert made.metadata.generation == 1 and made.metadata.resource_version
    assert made.spec.strategy.rolling_update.max_surge == "25%"
    svc = core.create_namespaced_service(NS, service())
    assert re.fullmatch(r"10\.96\.\d+\.\d+", svc.spec.cluster_ip)
    assert svc.spec.ports[0].protocol == "TCP"

    apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"tier": "x"}}})
    assert apps.read_namespaced_deployment("web", NS).metadata.generation == 1
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 5}})
    assert apps.read_namespaced_deployment("web", NS).metadata.generation == 2

    with pytest.raises(ApiException) as missing:
        apps.read_namespaced_deployment("nope", NS)
    assert missing.value.status == 404
    assert '"reason": "NotFound"' in missing.value.body
    assert 'deployments.apps \\"nope\\" not found' in missing.value.body
    with pytest.raises(ApiException) as twice:
        apps.create_namespaced_deployment(NS, deployment())
    assert twice.value.status == 409 and '"reason": "AlreadyExists"' in twice.value.body

    with pytest.raises(ApiException) as invalid:
        apps.create_namespaced_deployment(NS, deployment("odd") | {"spec": deployment("odd")[
            "spec"] | {"selector": {"matchLabels": {"app": "other"}}}})
    assert invalid.value.status == 422
    assert ('spec.template.metadata.labels: Invalid value: map[string]string{\\"app\\":'
            '\\"odd\\"}: `selector` does not match template `labels`') in invalid.value.body
    with pytest.raises(ApiException, match="field is immutable"):
        apps.patch_namespaced_deployment("web", NS, {"spec": {"selector": {"matchLabels": {
            "app": "web", "tier": "x"}}, "template": {"metadata": {"labels": {"tier": "x"}}}}})

    # Server-side apply creates a missing object, as a real API server does.
    applied = apps.patch_namespaced_deployment(
        "api", NS, deployment("api"), field_manager="dockyard", force=True,
        _content_type="application/apply-patch+yaml")
    assert applied.metadata.uid and applied.spec.replicas == 3

    # PUT replaces the object (kmock alone only knows PATCH).
    body = deployment(replicas=2)
    body["metadata"]["labels"] = {"app": "web", "replaced": "yes"}
    replaced = apps.replace_namespaced_deployment("web", NS, body)
    assert replaced.metadata.labels == {"app": "web", "replaced": "yes"}
    assert replaced.metadata.uid == made.metadata.uid and replaced.spec.replicas == 2


def test_namespaces_can_be_created_deleted_and_stuck(core: Any,
                                                     kube_emulator: kubesim.Emulator) -> None:
    from kubernetes.client.exceptions import ApiException

    created = core.create_namespace({"metadata": {"name": NS, "labels": {"dockyard.lab": "x"}}})
    assert created.status.phase == "Active"
    assert created.metadata.labels["kubernetes.io/metadata.name"] == NS
    core.create_namespaced_config_map(NS, {"metadata": {"name": "settings"}})
    kube_emulator.stuck_namespaces.add(NS)
    core.delete_namespace(NS)
    stuck = core.read_namespace(NS)
    assert stuck.status.phase == "Terminating" and stuck.metadata.deletion_timestamp
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "more"}})
    assert refused.value.status == 403
    assert "because it is being terminated" in refused.value.body

    kube_emulator.stuck_namespaces.clear()
    for _ in range(50):
        if NS not in {n.metadata.name for n in core.list_namespace().items}:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the namespace was never finalized")
    assert not kube_emulator.objects("configmaps", NS)


def test_watches_end_after_their_timeout(core: Any) -> None:
    from kubernetes import watch

    core.create_namespaced_config_map(NS, {"metadata": {"name": "settings"}})
    started = time.monotonic()
    seen = [(e["type"], e["object"].metadata.name)
            for e in watch.Watch().stream(core.list_namespaced_config_map, NS, timeout_seconds=1)]
    assert seen == [("ADDED", "settings")]
    assert time.monotonic() - started < 3


def test_forbidden_requests_get_rbac_status_and_store_nothing(
        core: Any, kube_emulator: kubesim.Emulator) -> None:
    from kubernetes.client.exceptions import ApiException

    fault = kube_emulator.forbid("pods", verbs={"list", "create"}, namespace=NS)
    with pytest.raises(ApiException) as listing:
        core.list_namespaced_pod(NS)
    assert listing.value.status == 403
    assert ('pods is forbidden: User \\"student\\" cannot list resource \\"pods\\" in API '
            'group \\"\\" in the namespace \\"dockyard-k8s\\"') in listing.value.body
    with pytest.raises(ApiException):
        core.create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": {"containers": []}})
    assert not kube_emulator.objects("pods", NS)
    assert core.list_namespaced_service(NS).items == []  # other resources still answer
    assert fault.hits == 2
    fault.remove()
    assert core.list_namespaced_pod(NS).items == []


def test_api_that_stops_answering(core: Any, kube_emulator: kubesim.Emulator) -> None:
    import urllib3

    core.list_namespaced_pod(NS)
    with kube_emulator.paused(mode="hang", after=1):
        core.list_namespaced_pod(NS)  # the first one still gets through
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            core.list_namespaced_pod(NS, _request_timeout=0.3)
    with kube_emulator.paused(mode="drop"), pytest.raises(urllib3.exceptions.HTTPError):
        core.list_namespaced_pod(NS, _request_timeout=2)
    assert core.list_namespaced_pod(NS).items == []
    kube_emulator.stop()
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.list_namespaced_pod(NS, _request_timeout=2)


# -- the controllers ------------------------------------------------------------------------


def test_deployment_makes_a_replicaset_and_ready_pods_on_both_workers(
        core: Any, apps: Any, fake_cluster: kubesim.FakeCluster) -> None:
    made = apps.create_namespaced_deployment(NS, deployment(replicas=4))
    fake_cluster.settle()

    status = apps.read_namespaced_deployment("web", NS).status
    assert (status.replicas, status.ready_replicas, status.available_replicas,
            status.updated_replicas, status.observed_generation) == (4, 4, 4, 4, 1)
    assert {c.type: c.reason for c in status.conditions} == {
        "Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    (rs,) = apps.list_namespaced_replica_set(NS).items
    phash = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{phash}"
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    owner = rs.metadata.owner_references[0]
    assert (owner.kind, owner.uid, owner.controller) == ("Deployment", made.metadata.uid, True)

    pods = pods_of(core)
    assert len(pods) == 4
    for pod in pods:
        assert pod.metadata.name.startswith(f"{rs.metadata.name}-")
        assert pod.metadata.owner_references[0].uid == rs.metadata.uid
        assert pod.status.phase == "Running" and pod.status.pod_ip
        assert pod.status.container_statuses[0].ready
        assert pod.status.container_statuses[0].image == "docker.io/dockyard/api:1"
    spread = [p.spec.node_name for p in pods]
    assert set(spread) == WORKERS and spread.count("dockyard-worker") == 2

    (scaled,) = events(core, "ScalingReplicaSet")
    assert scaled.message == f"Scaled up replica set {rs.metadata.name} from 0 to 4"
    assert scaled.source.component == "deployment-controller"
    assert scaled.involved_object.uid == made.metadata.uid
    created = {e.message for e in events(core, "SuccessfulCreate")}
    assert created == {f"Created pod: {p.metadata.name}" for p in pods}
    assert len(events(core, "Scheduled")) == 4 and len(events(core, "Started")) == 4


def test_a_deleted_pod_is_replaced_and_killed(core: Any, apps: Any,
                                              fake_cluster: kubesim.FakeCluster) -> None:
    apps.create_namespaced_deployment(NS, deployment(replicas=2))
    fake_cluster.settle()
    victim, survivor = pods_of(core)
    core.delete_namespaced_pod(victim.metadata.name, NS)
    fake_cluster.settle()

    pods = pods_of(core)
    assert len(pods) == 2
    (fresh,) = [p for p in pods if p.metadata.uid != survivor.metadata.uid]
    assert fresh.metadata.uid != victim.metadata.uid
    assert fresh.metadata.owner_references[0].uid == victim.metadata.owner_references[0].uid
    assert fresh.status.container_statuses[0].ready
    killing = [e for e in events(core, "Killing")
               if e.involved_object.name == victim.metadata.name]
    assert killing and killing[0].message == "Stopping container api"
    assert killing[0].source.host == victim.spec.node_name
    assert f"Created pod: {fresh.metadata.name}" in {
        e.message for e in events(core, "SuccessfulCreate")}


def test_scaling_up_and_down_records_events(core: Any, apps: Any,
                                            fake_cluster: kubesim.FakeCluster) -> None:
    apps.create_namespaced_deployment(NS, deployment(replicas=3))
    fake_cluster.settle()
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    fake_cluster.settle()
    assert len(pods_of(core)) == 5
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 2}})
    fake_cluster.settle()

    assert len(pods_of(core)) == 2
    rs_name = apps.list_namespaced_replica_set(NS).items[0].metadata.name
    messages = [e.message for e in sorted(events(core, "ScalingReplicaSet"),
                                          key=lambda e: e.metadata.resource_version.zfill(9))]
    assert messages == [f"Scaled up replica set {rs_name} from 0 to 3",
                        f"Scaled up replica set {rs_name} from 3 to 5",
                        f"Scaled down replica set {rs_name} from 5 to 2"]
    assert len(events(core, "SuccessfulDelete")) == 3
    status = apps.read_namespaced_deployment("web", NS).status
    assert (status.replicas, status.ready_replicas, status.observed_generation) == (2, 2, 3)


def test_rolling_update_respects_surge_and_rollback_reuses_the_old_replicaset(
        core: Any, apps: Any, fake_cluster: kubesim.FakeCluster) -> None:
    body = deployment(replicas=4)
    body["spec"]["strategy"] = {"type": "RollingUpdate",
                                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    apps.create_namespaced_deployment(NS, body)
    fake_cluster.settle()
    (first,) = apps.list_namespaced_replica_set(NS).items

    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {
        "containers": [{"name": "api", "image": "dockyard/api:2",
                        "ports": [{"containerPort": 8000, "name": "http"}]}]}}}})
    steps = 0
    while fake_cluster.reconcile():
        steps += 1
        pods = pods_of(core)
        assert len(pods) <= 5, "more pods than replicas + maxSurge"
        ready = [p for p in pods if p.status.container_statuses
                 and p.status.container_statuses[0].ready]
        assert len(ready) >= 4, "fewer ready pods than replicas - maxUnavailable"

    assert steps > 4, "a rolling update takes several steps"
    second = next(r for r in apps.list_namespaced_replica_set(NS).items
                  if r.metadata.uid != first.metadata.uid)
    old = apps.read_namespaced_replica_set(first.metadata.name, NS)
    assert old.spec.replicas == 0 and second.spec.replicas == 4
    assert second.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    deploy = apps.read_namespaced_deployment("web", NS)
    assert deploy.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert deploy.status.updated_replicas == 4 and deploy.status.observed_generation == 2
    assert {p.status.container_statuses[0].image for p in pods_of(core)} == {
        "docker.io/dockyard/api:2"}

    # `kubectl rollout undo` writes the old template back.
    template = apps.api_client.sanitize_for_serialization(first.spec.template)
    del template["metadata"]["labels"]["pod-template-hash"]
    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": template}})
    fake_cluster.settle()
    sets = {r.metadata.name: r for r in apps.list_namespaced_replica_set(NS).items}
    assert len(sets) == 2
    back = sets[first.metadata.name]
    assert back.spec.replicas == 4 and sets[second.metadata.name].spec.replicas == 0
    assert back.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert back.metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    assert apps.read_namespaced_deployment("web", NS).metadata.annotations[
        "deployment.kubernetes.io/revision"] == "3"


def test_a_pod_that_fits_nowhere_stays_pending(core: Any, apps: Any,
                                               fake_cluster: kubesim.FakeCluster) -> None:
    apps.create_namespaced_deployment(NS, deployment(
        replicas=1, container={"resources": {"requests": {"cpu": "3", "memory": "64Mi"}}}))
    fake_cluster.settle()
    (pod,) = pods_of(core)
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    (cond,) = pod.status.conditions
    assert (cond.type, cond.status, cond.reason) == ("PodScheduled", "False", "Unschedulable")
    assert cond.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes "
        "are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims "
        "found for incoming pod.")
    (failed,) = events(core, "FailedScheduling")
    assert failed.type == "Warning" and failed.message == cond.message
    assert failed.source.component == "default-scheduler"
    status = apps.read_namespaced_deployment("web", NS).status
    assert status.ready_replicas is None and status.unavailable_replicas == 1
    assert {c.type: c.status for c in status.conditions}["Available"] == "False"


def test_an_image_not_on_the_nodes_backs_off_until_loaded(
        core: Any, apps: Any, fake_cluster: kubesim.FakeCluster) -> None:
    apps.create_namespaced_deployment(NS, deployment(image="dockyard/api:9", replicas=1))
    fake_cluster.reconcile()
    fake_cluster.reconcile()
    (pod,) = pods_of(core)
    waiting = pod.status.container_statuses[0].state.waiting
    assert waiting.reason == "ErrImagePull"
    assert waiting.message.startswith('Failed to pull image "dockyard/api:9": ')
    fake_cluster.settle()
    (pod,) = pods_of(core)
    waiting = pod.status.container_statuses[0].state.waiting
    assert (waiting.reason, waiting.message) == ("ImagePullBackOff",
                                                 'Back-off pulling image "dockyard/api:9"')
    assert pod.status.phase == "Pending"
    warnings = {e.message for e in events(core, "Failed")}
    assert {"Error: ErrImagePull", "Error: ImagePullBackOff"} <= warnings
    assert events(core, "BackOff")[0].involved_object.field_path == "spec.containers{api}"

    fake_cluster.load_image("dockyard/api:9")  # kind load docker-image dockyard/api:9
    fake_cluster.settle()
    (pod,) = pods_of(core)
    assert pod.status.phase == "Running" and pod.status.container_statuses[0].ready


def test_a_rollout_to_a_missing_image_stalls_past_its_deadline(
        core: Any, apps: Any, fake_cluster: kubesim.FakeCluster) -> None:
    body = deployment(replicas=2)
    body["spec"]["progressDeadlineSeconds"] = 1
    apps.create_namespaced_deployment(NS, body)
    fake_cluster.settle()
    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {
        "containers": [{"name": "api", "image": "dockyard/api:9"}]}}}})

    def stalled() -> bool:
        status = apps.read_namespaced_deployment("web", NS).status
        return {c.type: c.reason for c in status.conditions}["Progressing"] == \
            "ProgressDeadlineExceeded"

    fake_cluster.run_until(stalled, timeout=5, what="the progress deadline")
    status = apps.read_namespaced_deployment("web", NS).status
    assert (status.replicas, status.updated_replicas, status.available_replicas,
            status.unavailable_replicas) == (3, 1, 2, 1)
    assert {c.type: c.status for c in status.conditions} == {"Available": "True",
                                                             "Progressing": "False"}
    waiting = sorted(p.status.container_statuses[0].state.waiting.reason
                     for p in pods_of(core) if p.status.container_statuses[0].state.waiting)
    assert waiting == ["ImagePullBackOff"]  # the old pods keep serving


def test_a_crashing_container_loops_with_back_off(core: Any, apps: Any,
                                                  fake_cluster: kubesim.FakeCluster) -> None:
    apps.create_namespaced_deployment(NS, deployment(
        replicas=1, container={"command": ["sh", "-c", "exit 3"]}))

    def restarts() -> int:
        pods = pods_of(core)
        statuses = (pods[0].status.container_statuses or []) if pods else []
        return statuses[0].restart_count if statuses else 0

    fake_cluster.run_until(lambda: restarts() >= 2, timeout=5, what="two restarts")
    (pod,) = pods_of(core)
    status = pod.status.container_statuses[0]
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert status.last_state.terminated.exit_code == 3
    assert not status.ready and pod.status.phase == "Running"
    backoff = events(core, "BackOff")
    assert backoff[0].message.startswith("Back-off restarting failed container api in pod ")
    assert backoff[0].type == "Warning"


def test_service_endpoints_follow_ready_pods_and_the_selector(
        core: Any, apps: Any, fake_cluster: kubesim.FakeCluster) -> None:
    from kubernetes import client

    discovery = client.DiscoveryV1Api(core.api_client)
    apps.create_namespaced_deployment(NS, deployment(replicas=2))
    apps.create_namespaced_deployment(NS, deployment(
        "slow", replicas=1, annotations={kubesim.READY_ANNOTATION: "false"},
        labels={"app": "web", "role": "slow"}))
    core.create_namespaced_service(NS, service())
    core.create_namespaced_service(NS, service("typo", {"app": "wbe"}))
    fake_cluster.settle()

    (subset,) = core.read_namespaced_endpoints("web", NS).subsets
    web_ips = {p.status.pod_ip for p in pods_of(core)
               if p.status.container_statuses[0].ready}
    assert {a.ip for a in subset.addresses} == web_ips
    assert {a.target_ref.kind for a in subset.addresses} == {"Pod"}
    assert len(subset.not_ready_addresses) == 1
    assert [(p.name, p.port) for p in subset.ports] == [("http", 8000)]
    assert core.read_namespaced_endpoints("typo", NS).subsets is None
    slices = {s.metadata.labels["kubernetes.io/service-name"]: s
              for s in discovery.list_namespaced_endpoint_slice(NS).items}
    assert sorted(e.conditions.ready for e in slices["web"].endpoints) == [False, True, True]
    assert slices["typo"].endpoints == []

    core.delete_namespaced_service("typo", NS)
    fake_cluster.settle()
    assert {e.metadata.name for e in core.list_namespaced_endpoints(NS).items} == {"web"}


def test_wget_program_logs_the_version_behind_the_service(
        core: Any, apps: Any, fake_cluster: kubesim.FakeCluster,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for color, version in (("blue", "1"), ("green", "2")):
        apps.create_namespaced_deployment(NS, deployment(
            f"api-{color}", image=f"dockyard/api:{version}", replicas=2,
            labels={"app": "api", "color": color}))
    core.create_namespaced_service(NS, service("api", {"app": "api", "color": "blue"}))
    loop = "while true; do wget -qO- http://api:8000/api/version; sleep 0.2; done"
    core.create_namespaced_pod(NS, {
        "metadata": {"name": "client"},
        "spec": {"containers": [{"name": "client", "image": "dockyard/api:1",
                                 "command": ["sh", "-c", loop]}]}})
    fake_cluster.settle()
    for _ in range(3):
        fake_cluster.reconcile()
    core.patch_namespaced_service("api", NS, {"spec": {"selector": {"color": "green"}}})
    for _ in range(4):
        fake_cluster.reconcile()

    text = core.read_namespaced_pod_log("client", NS)
    versions = [re.search(r'"version": "(\d)"', line).group(1)  # type: ignore[union-attr]
                for line in text.splitlines()]
    assert versions[0] == "1" and versions[-1] == "2"
    assert versions == sorted(versions), "one switch, no flapping"
    assert "wget:" not in text
    assert core.read_namespaced_pod_log("client", NS, tail_lines=1).count("\n") == 1

    core.patch_namespaced_service("api", NS, {"spec": {"selector": {"color": "red"}}})
    fake_cluster.settle()
    fake_cluster.reconcile()
    assert fake_cluster.logs[(NS, "client")].splitlines()[-1].startswith(
        "wget: can't connect to remote host (")



def test_patch_pod_log_serves_the_simulated_logs(fake_cluster: kubesim.FakeCluster,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    kube = pytest.importorskip("kernel_helpers.kubernetes")
    fake_cluster.append_log((NS, "client"), "client", "one\ntwo\nthree")
    kubesim.patch_pod_log(monkeypatch, fake_cluster)
    assert kube.Cluster.pod_log(None, "client", NS) == "one\ntwo\nthree\n"
    assert kube.Cluster.pod_log(None, "client", NS, container="client", tail=2) == "two\nthree\n"


def test_pod_log_endpoint_refuses_like_the_api_server(
        core: Any, apps: Any, fake_cluster: kubesim.FakeCluster) -> None:
    from kubernetes.client.exceptions import ApiException

    apps.create_namespaced_deployment(NS, deployment(image="dockyard/api:9", replicas=1))
    fake_cluster.settle()
    (pod,) = pods_of(core)
    with pytest.raises(ApiException) as waiting:
        core.read_namespaced_pod_log(pod.metadata.name, NS)
    assert waiting.value.status == 400
    assert "is waiting to start: ImagePullBackOff" in waiting.value.body
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod_log("ghost", NS)
    assert missing.value.status == 404 and 'pods \\"ghost\\" not found' in missing.value.body
