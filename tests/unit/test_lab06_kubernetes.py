"""Lab 06 against kubesim: every check fails on an empty namespace, passes after its solution,
and gives the specific reason for a realistic wrong state. Plus the pure parts (event
parsing, spread rules, probes, the offline manifest grade), the node map and the notebook.

The cluster tests use kubesim's emulator with fake controllers (``fake_cluster``):
students' objects are created unlabelled with the client, as kubectl would, and
``settle()`` runs the controllers; solutions run with the controllers in the background.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import kubesim
import pytest
import yaml

import checkers
from checkers import kubernetes as lab
from kernel_helpers import kube_plots, manifests, workspace
from kernel_helpers import kubernetes as kube

NS = lab.NAMESPACE
CLUSTER_IDS = [e.id for e in checkers.all_exercises(lab.LAB) if e.needs_cluster]
REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "labs" / "06-kubernetes.ipynb"


# -- helpers ---------------------------------------------------------------------------------


def student(fake: kubesim.FakeCluster, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
    # (``fake`` and ``plural`` keep the calls readable; the object's kind decides the path.)
    """Create ``obj`` as a student would with kubectl: in the lab namespace, no lab labels."""
    body = json.loads(json.dumps(obj))
    body["metadata"]["namespace"] = NS
    created = kube.connect()._call("POST", kube.Cluster.path(body["kind"], NS), body=body)
    assert isinstance(created, dict)
    return created


def web(replicas: int = 3, **container: Any) -> dict[str, Any]:
    """A plain Deployment web, like the starter file (no spread rule, probes or resources)."""
    manifest = lab.web_deployment(replicas)
    spec = manifest["spec"]["template"]["spec"]
    del spec["topologySpreadConstraints"]
    base = spec["containers"][0]
    for key in ("readinessProbe", "livenessProbe", "resources"):
        base.pop(key)
    base.update(container)
    return manifest


def scale_to(fake: kubesim.FakeCluster, replicas: int) -> None:
    fake.patch("deployments", NS, lab.WEB, {"spec": {"replicas": replicas}})
    fake.settle()


def failing(verdict: checkers.Verdict) -> dict[str, str]:
    return {s.key: s.reason for s in verdict.subchecks if not s.passed}


@pytest.fixture
def cluster(kubeconfig: Path, fake_cluster: kubesim.FakeCluster) -> kubesim.FakeCluster:
    """kind's three nodes behind a kubeconfig whose current context is the lab's."""
    return fake_cluster


def solve_live(fake: kubesim.FakeCluster, exercise_id: str) -> None:
    """``dockyard solve ID`` with the controllers running in the background, as a cluster would."""
    fake.start(interval=0.02)
    try:
        checkers.solve(exercise_id)
    finally:
        fake.stop()
    fake.settle()


# -- every cluster exercise: fail on nothing, pass after its solution ----------------------------

#: What the first failing reason says on an empty namespace, and the evidence after solving.
EMPTY_AND_EVIDENCE = {
    "kubernetes.deployment": ("There is no Deployment named 'web'", "pods"),
    "kubernetes.spread": ("There is no Deployment named 'web'", "placement"),
    "kubernetes.scale": ("There is no Deployment named 'web'", "scaling_events"),
    "kubernetes.self-healing": ("There is no Deployment named 'web'", "replacement"),
    "kubernetes.service": ("There is no Service named 'web'", "probe"),
    "kubernetes.selectors": ("service web-broken selects app=web-frontend", "endpoints"),
    "kubernetes.config": ("There is no ConfigMap named 'web-config'", "config_mounts"),
    "kubernetes.secret": ("There is no Secret named 'web-token'", "secret"),
    "kubernetes.probes": ("There is no Deployment named 'web'", "probes"),
    "kubernetes.resources": ("There is no Deployment named 'web'", "greedy"),
}


def test_the_table_covers_every_cluster_exercise() -> None:
    assert set(EMPTY_AND_EVIDENCE) == set(CLUSTER_IDS)
    assert len(checkers.all_exercises(lab.LAB)) >= 7


@pytest.mark.parametrize("exercise_id", CLUSTER_IDS)
def test_fails_on_an_empty_namespace_then_passes_after_its_solution(
        cluster: kubesim.FakeCluster, exercise_id: str) -> None:
    said, evidence = EMPTY_AND_EVIDENCE[exercise_id]
    checkers.cleanup(exercise_id)
    checkers.setup(exercise_id)
    before = checkers.check(exercise_id)
    assert before.status == checkers.FAIL, str(before)
    assert said in next(iter(failing(before).values())), str(before)

    solve_live(cluster, exercise_id)
    after = checkers.check(exercise_id)
    assert after.status == checkers.PASS, str(after)
    assert after.evidence.get(evidence), after.evidence

    checkers.cleanup(exercise_id)
    assert checkers.check(exercise_id).status == checkers.FAIL


def test_solutions_replace_a_deployment_whose_selector_cannot_change(
        cluster: kubesim.FakeCluster) -> None:
    other = web()
    other["spec"]["selector"]["matchLabels"] = other["spec"]["template"]["metadata"][
        "labels"] = {"app": "web", "tier": "front"}
    student(cluster, "deployments", other)
    cluster.settle()
    solve_live(cluster, "kubernetes.deployment")
    assert checkers.check("kubernetes.deployment").status == checkers.PASS


# -- realistic wrong states ----------------------------------------------------------------------


def test_deployment_with_an_image_not_in_kind_gets_the_image_pull_hint(
        cluster: kubesim.FakeCluster) -> None:
    student(cluster, "deployments", web(2, image="dockyard/api:9"))
    cluster.settle()
    reasons = failing(checkers.check("kubernetes.deployment"))
    assert "runs dockyard/api:9, not dockyard/api:1" in reasons["exists"]
    assert "wants 2 replica(s)" in reasons["replicas"]
    assert "0 of 2 pod(s) of web are Ready" in reasons["ready"]
    assert "kind load docker-image dockyard/api:9" in reasons["ready"]


def test_spread_rule_that_selects_other_pods_is_named(cluster: kubesim.FakeCluster) -> None:
    manifest = lab.web_deployment()
    rule = manifest["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    rule["labelSelector"] = {"matchLabels": {"app": "website"}}
    student(cluster, "deployments", manifest)
    cluster.settle()
    verdict = checkers.check("kubernetes.spread")
    assert "does not match the pods' own labels (app=web)" in failing(verdict)["rule"]
    assert verdict.subchecks[1].passed, "the pods themselves still spread"
    assert set(verdict.evidence["placement"]) == {"dockyard-worker", "dockyard-worker2"}


def test_spread_on_a_single_worker_says_the_cluster_is_too_small(
        cluster: kubesim.FakeCluster) -> None:
    cluster.delete("nodes", None, "dockyard-worker2")
    student(cluster, "deployments", lab.web_deployment())
    cluster.settle()
    reasons = failing(checkers.check("kubernetes.spread"))
    assert list(reasons) == ["placed"]
    assert "1 worker node(s) (dockyard-worker)" in reasons["placed"]
    assert "dockyard cluster up" in reasons["placed"]


def test_spread_without_rule_and_with_pods_pending_gets_the_scheduler_message(
        cluster: kubesim.FakeCluster) -> None:
    manifest = web()
    manifest["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    student(cluster, "deployments", manifest)
    cluster.settle()
    reasons = failing(checkers.check("kubernetes.spread"))
    assert "no topologySpreadConstraints and no podAntiAffinity" in reasons["rule"]
    assert "is Pending: no node can take it" in reasons["placed"]
    assert "didn't match Pod's node affinity/selector" in reasons["placed"]


def test_scaling_up_without_coming_down_is_half_done(cluster: kubesim.FakeCluster) -> None:
    student(cluster, "deployments", web())
    cluster.settle()
    scale_to(cluster, 5)
    verdict = checkers.check("kubernetes.scale")
    reasons = failing(verdict)
    assert set(reasons) == {"down", "now"}
    assert "from 3 to 5" in reasons["down"] and "about an hour" in reasons["down"]
    assert "wants 5 replica(s)" in reasons["now"] and "--replicas=2" in reasons["now"]
    scale_to(cluster, 2)
    verdict = checkers.check("kubernetes.scale")
    assert verdict.passed, str(verdict)
    assert [e["message"].split(" from ")[1] for e in verdict.evidence["scaling_events"]] == \
        ["0 to 3", "3 to 5", "5 to 2"]


def test_scaling_down_alone_does_not_count_as_up_and_down(cluster: kubesim.FakeCluster) -> None:
    student(cluster, "deployments", web())
    cluster.settle()
    scale_to(cluster, 2)
    reasons = failing(checkers.check("kubernetes.scale"))
    assert set(reasons) == {"up", "down"}


def test_pods_the_replicaset_removed_itself_are_not_self_healing(
        cluster: kubesim.FakeCluster) -> None:
    student(cluster, "deployments", web())
    cluster.settle()
    scale_to(cluster, 5)
    scale_to(cluster, 3)
    reasons = failing(checkers.check("kubernetes.self-healing"))
    assert set(reasons) == {"deleted", "replaced"}
    assert "removed itself" in reasons["deleted"]

    victim = next(p for p in cluster.list("pods", NS) if p["metadata"]["name"].startswith("web"))
    cluster.delete("pods", NS, victim["metadata"]["name"])
    cluster.settle()
    verdict = checkers.check("kubernetes.self-healing")
    assert verdict.passed, str(verdict)
    gone, new = verdict.evidence["deleted_pod"], verdict.evidence["replacement"]
    assert gone["name"] == victim["metadata"]["name"]
    assert gone["uid"] == victim["metadata"]["uid"], "the kubelet's Killing event names it"
    assert new["uid"] != gone["uid"]
    owner = victim["metadata"]["ownerReferences"][0]
    assert new["owner"]["uid"] == owner["uid"] and new["owner"]["name"] == owner["name"]


def test_service_with_the_wrong_target_port_and_an_ip_probe(cluster: kubesim.FakeCluster) -> None:
    student(cluster, "deployments", web())
    svc = lab.web_service()
    svc["spec"]["ports"][0]["targetPort"] = 8080
    created = student(cluster, "services", svc)
    ip = created["spec"]["clusterIP"]
    student(cluster, "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"},
                              "spec": {"restartPolicy": "Never", "containers": [{
                                  "name": "probe", "image": lab.IMAGE,
                                  "args": ["wget", "-qO-", f"http://{ip}/api/version"]}]}})
    cluster.settle()
    reasons = failing(checkers.check("kubernetes.service"))
    assert "maps port(s) 80→8080; it needs 80→8000" in reasons["service"]
    assert f"asks http://{ip}/api/version, not the Service by its DNS name" in reasons["dns"]


def test_a_service_whose_pods_are_not_ready_has_no_endpoints_and_says_why(
        cluster: kubesim.FakeCluster) -> None:
    student(cluster, "deployments", web(2, image="dockyard/api:9"))
    student(cluster, "services", lab.web_service())
    cluster.settle()
    reasons = failing(checkers.check("kubernetes.service"))
    assert reasons["endpoints"].startswith("The Service's endpoints (none) are not the Ready")
    assert "service web selects 2 pod(s), but none is Ready" in reasons["endpoints"]
    assert "ErrImagePull" in reasons["endpoints"] or "ImagePullBackOff" in reasons["endpoints"]
    assert "There is no pod named probe" in reasons["dns"]


def test_a_probe_that_ran_before_the_service_existed_shows_its_output(
        cluster: kubesim.FakeCluster) -> None:
    student(cluster, "deployments", web())
    student(cluster, "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"},
                              "spec": {"restartPolicy": "Never", "containers": [{
                                  "name": "probe", "image": lab.IMAGE,
                                  "args": ["wget", "-qO-", "http://web/api/version"]}]}})
    cluster.settle()
    student(cluster, "services", lab.web_service())
    cluster.settle()
    verdict = checkers.check("kubernetes.service")
    reasons = failing(verdict)
    assert list(reasons) == ["dns"]
    assert "bad address 'web:80'" in reasons["dns"] and "Delete it and run it again" in \
        reasons["dns"]


def test_a_selector_that_matches_nothing_gets_the_diagnosis_then_the_fix_passes(
        cluster: kubesim.FakeCluster) -> None:
    student(cluster, "deployments", web())
    cluster.settle()
    checkers.setup("kubernetes.selectors")
    reasons = failing(checkers.check("kubernetes.selectors"))
    assert reasons["selects"].startswith("service web-broken selects app=web-frontend, but no pod")
    assert "the pods here carry app=web (3)" in reasons["selects"]
    assert "--show-labels" in reasons["selects"]

    cluster.patch("services", NS, lab.BROKEN, {"spec": {"selector": {"app": "web"}}})
    cluster.settle()
    checkers.setup("kubernetes.selectors")  # setup again must not undo the student's fix
    verdict = checkers.check("kubernetes.selectors")
    assert verdict.passed, str(verdict)
    assert len(verdict.evidence["endpoints"][lab.BROKEN]) == 3


def test_config_from_the_wrong_key_and_mounted_elsewhere(cluster: kubesim.FakeCluster) -> None:
    student(cluster, "configmaps", lab.web_config())
    greeter = lab.greeter_deployment()
    container = greeter["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {
        "name": lab.CONFIG, "key": "greeting"}}}]
    container["volumeMounts"][0]["mountPath"] = "/etc/config"
    student(cluster, "deployments", greeter)
    cluster.settle()
    reasons = failing(checkers.check("kubernetes.config"))
    assert set(reasons) == {"env", "file"}
    assert "(web-config/greeting)" in reasons["env"]
    assert "mounts it at /etc/config, not /etc/greeter" in reasons["file"]


def test_a_secret_the_app_does_not_use_and_its_value_stays_out_of_the_evidence(
        cluster: kubesim.FakeCluster) -> None:
    token = "hunter2-very-secret"
    student(cluster, "secrets", lab.web_token(token))
    student(cluster, "configmaps", lab.web_config())
    greeter = lab.greeter_deployment()
    container = greeter["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] != lab.SECRET_KEY]
    student(cluster, "deployments", greeter)
    cluster.settle()
    verdict = checkers.check("kubernetes.secret")
    assert list(failing(verdict)) == ["consumed"]
    assert "no env from a Secret" in failing(verdict)["consumed"]
    dumped = json.dumps(verdict.to_dict(), default=str)
    assert token not in dumped and base64.b64encode(token.encode()).decode() not in dumped
    assert verdict.evidence["secret"] == {"type": "Opaque", "keys": ["API_TOKEN"]}


def test_a_probe_on_a_wrong_path_is_diagnosed_from_the_unhealthy_events(
        cluster: kubesim.FakeCluster) -> None:
    manifest = web(readinessProbe={"httpGet": {"path": "/healthz", "port": 8000}})
    student(cluster, "deployments", manifest)
    cluster.settle()
    reasons = failing(checkers.check("kubernetes.probes"))
    assert "asks /healthz, which the API answers with 404" in reasons["readiness"]
    assert "has no livenessProbe" in reasons["liveness"]
    assert "runs but is not Ready: Readiness probe failed: HTTP probe failed with statuscode: " \
           "404" in reasons["ready"]


def test_a_probe_on_a_named_port_counts_as_port_8000(cluster: kubesim.FakeCluster) -> None:
    probe = {"httpGet": {"path": "/api/hello", "port": "http"}}
    student(cluster, "deployments", web(readinessProbe=probe, livenessProbe=probe))
    cluster.settle()
    assert checkers.check("kubernetes.probes").passed


def test_resources_without_limits_and_a_greedy_pod_that_fits(cluster: kubesim.FakeCluster) -> None:
    student(cluster, "deployments", web(resources={"requests": {"cpu": "50m",
                                                                "memory": "16Mi"}}))
    modest = lab.greedy_deployment()
    modest["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "100m"
    student(cluster, "deployments", modest)
    cluster.settle()
    verdict = checkers.check("kubernetes.resources")
    reasons = failing(verdict)
    assert set(reasons) == {"limits", "unschedulable"}
    assert "without cpu and memory" in reasons["limits"]
    assert "is on node dockyard-worker" in reasons["unschedulable"]
    assert "dockyard-worker: 2" in reasons["unschedulable"], "names each node's allocatable CPU"


def test_a_greedy_deployment_that_does_not_exist_yet(cluster: kubesim.FakeCluster) -> None:
    student(cluster, "deployments", lab.web_deployment())
    cluster.settle()
    reasons = failing(checkers.check("kubernetes.resources"))
    assert list(reasons) == ["unschedulable"]
    assert "kubectl -n dockyard-k8s apply -f greedy.yaml" in reasons["unschedulable"]


def test_an_rbac_refusal_is_a_clear_error_not_a_traceback(
        cluster: kubesim.FakeCluster, kube_emulator: kubesim.Emulator) -> None:
    student(cluster, "deployments", web())
    cluster.settle()
    kube_emulator.forbid("pods", verbs=["list"])
    verdict = checkers.check("kubernetes.deployment")
    assert verdict.status == checkers.ERROR
    assert "permission (RBAC)" in verdict.message and "pods" in verdict.message


# -- the context guard -------------------------------------------------------------------------


def test_every_cluster_exercise_refuses_another_current_context(
        kube_emulator: kubesim.Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = kube_emulator.write_kubeconfig(
        tmp_path / "config", {"work-cluster": kube_emulator.url, "kind-dockyard":
                              kube_emulator.url}, current="work-cluster")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("DOCKYARD_KUBE_CONTEXT", raising=False)
    kube.forget()
    for exercise_id in CLUSTER_IDS:
        verdict = checkers.check(exercise_id)
        assert verdict.status == checkers.REFUSED, exercise_id
        assert "'work-cluster'" in verdict.message
    assert checkers.check("kubernetes.manifest").status == checkers.FAIL, "graded offline"


def test_every_cluster_exercise_needs_a_cluster_without_kubeconfig(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-config"))
    monkeypatch.delenv("DOCKYARD_KUBE_CONTEXT", raising=False)
    kube.forget()
    for exercise_id in CLUSTER_IDS:
        verdict = checkers.check(exercise_id)
        assert verdict.status == checkers.NEEDS_CLUSTER, exercise_id
        assert "no kubeconfig" in verdict.message
    assert "needs a Kubernetes cluster" in verdict.headline()
    # Reset's cleanup hooks have nothing to touch and say nothing per exercise.
    for exercise in checkers.all_exercises(lab.LAB):
        if exercise.needs_cluster and exercise.cleanup_fn is not None:
            assert exercise.cleanup_fn(checkers.SolveContext(exercise)) == []


# -- the static exercise: web.yaml, graded offline ---------------------------------------------


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No cluster at all, as on Binder: the manifest must still be graded."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    kube.forget()
    return lab.manifest_path()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_manifest_missing_blocks_every_later_rule(offline: Path) -> None:
    verdict = checkers.check("kubernetes.manifest")
    reasons = failing(verdict)
    assert "There is no" in reasons["parses"] and str(offline) in reasons["parses"]
    assert all("fix 'web.yaml exists and is valid YAML" in r for k, r in reasons.items()
               if k != "parses")


def test_malformed_yaml_is_a_graded_fail_with_the_parser_position(offline: Path) -> None:
    write(offline, "apiVersion: apps/v1\nkind: Deployment\nmetadata: name: web\n")
    verdict = checkers.check("kubernetes.manifest")
    assert verdict.status == checkers.FAIL
    assert "mapping values are not allowed here (line 3, column 15)" in failing(verdict)["parses"]


def test_the_reference_manifest_passes_offline_and_solve_keeps_the_students_file(
        offline: Path) -> None:
    write(offline, "mine: true\n")
    checkers.solve("kubernetes.manifest")
    assert offline.with_name("web.yaml.mine").read_text() == "mine: true\n"
    verdict = checkers.check("kubernetes.manifest")
    assert verdict.passed, str(verdict)
    assert "1.30 schema" in verdict.notes[-1]
    checkers.cleanup("kubernetes.manifest")
    assert not offline.exists()


def test_a_typo_an_orphan_service_and_a_latest_image_each_fail_their_rule(offline: Path) -> None:
    text = lab.reference_web_yaml().replace("readinessProbe", "readynessProbe") \
        .replace("dockyard/api:1", "dockyard/api:latest")
    docs = list(yaml.safe_load_all(text))
    docs[1]["spec"]["selector"] = {"app": "frontend"}
    write(offline, yaml.safe_dump_all(docs, sort_keys=False))
    reasons = failing(checkers.check("kubernetes.manifest"))
    assert set(reasons) == {"schema", "wiring", "probes", "image"}
    assert "did you mean 'readinessProbe'" in reasons["schema"]
    assert "(app=frontend) matches no pod template" in reasons["wiring"]
    assert "no readinessProbe" in reasons["probes"]
    assert "the tag 'latest'" in reasons["image"]


def test_the_starter_deployment_alone_is_not_the_whole_app(offline: Path) -> None:
    write(offline, (lab.REPO_LAB_DIR / "web-deployment.yaml").read_text())
    reasons = failing(checkers.check("kubernetes.manifest"))
    assert set(reasons) == {"objects", "probes", "resources"}
    assert "has Deployment; it needs a Deployment and a Service" in reasons["objects"]


# -- starter files and reference manifests -------------------------------------------------------


def test_greedy_starter_file_is_the_reference_manifest() -> None:
    shipped = yaml.safe_load((lab.REPO_LAB_DIR / "greedy.yaml").read_text())
    assert shipped == lab.greedy_deployment()


@pytest.mark.parametrize("name", ["web-deployment.yaml", "greeter.yaml", "greedy.yaml"])
def test_starter_files_are_valid_for_the_api(name: str) -> None:
    documents = manifests.read(lab.REPO_LAB_DIR / name)
    assert manifests.schema_problems(documents) == []
    assert manifests.semantic_problems(documents, ["names", "selector", "image"]) == []


def test_reference_manifests_are_valid_and_complete() -> None:
    objects = [lab.web_deployment(), lab.web_service(), lab.broken_service(), lab.probe_pod(),
               lab.web_config(), lab.web_token(), lab.greeter_deployment(),
               lab.greedy_deployment()]
    documents = manifests.load(yaml.safe_dump_all(objects))
    assert manifests.schema_problems(documents) == []
    assert manifests.semantic_problems(manifests.load(lab.reference_web_yaml())) == []
    assert lab.spread_rule(lab.web_deployment())[0].startswith("topologySpreadConstraints")


# -- pure helpers -----------------------------------------------------------------------------


def event(reason: str, message: str, involved: dict[str, Any], stamp: str,
          name: str = "") -> dict[str, Any]:
    return {"metadata": {"name": name or f"{involved['name']}.{len(message):x}"},
            "reason": reason, "message": message, "involvedObject": involved,
            "firstTimestamp": stamp, "lastTimestamp": stamp}


def test_scaling_events_read_both_message_styles_and_combined_ones() -> None:
    dep = {"kind": "Deployment", "name": "web"}
    found = lab.scaling_events([
        event("ScalingReplicaSet", "Scaled up replica set web-abc to 5", dep,
              "2026-01-01T10:00:00Z"),
        event("ScalingReplicaSet", "(combined from similar events): Scaled down replica set "
              "web-abc from 5 to 2", dep, "2026-01-01T10:01:00Z"),
        event("SuccessfulCreate", "Created pod: web-abc-x", dep, "2026-01-01T10:00:00Z"),
    ])
    assert [(e["direction"], e["replicaset"], e["from"], e["to"]) for e in found] == [
        ("up", "web-abc", None, 5), ("down", "web-abc", 5, 2)]


def test_event_names_order_events_within_one_second() -> None:
    rs = {"metadata": {"name": "web-abc", "uid": "rs-1"}}
    involved = {"kind": "ReplicaSet", "name": "web-abc", "uid": "rs-1"}
    stamp = "2026-01-01T10:00:00Z"
    events = [event("SuccessfulCreate", f"Created pod: web-abc-{n}", involved, stamp,
                    name=f"web-abc.{0x180 + i:x}") for i, n in enumerate("abcd")]
    events.append(event("SuccessfulDelete", "Deleted pod: web-abc-b", involved, stamp))
    events.append(event("Killing", "Stopping container api",
                        {"kind": "Pod", "name": "web-abc-a", "uid": "pod-a"}, stamp))
    gone = lab.deleted_pods(rs, events, live=["web-abc-c", "web-abc-d"])
    assert [(g["name"], g["uid"]) for g in gone] == [("web-abc-a", "pod-a")]

    def pod(name: str, uid: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "uid": uid, "creationTimestamp": stamp,
                             "ownerReferences": [{"controller": True, "uid": "rs-1"}]}}

    created, _ = lab.pod_history(rs, events)
    new = lab.replacement_for(gone[0], rs, [pod("web-abc-c", "c"), pod("web-abc-d", "d")],
                              created)
    assert new is not None and new["metadata"]["name"] == "web-abc-d"
    # Created in the same second, but before the deleted pod: not a replacement.
    first = dict(gone[0], order=created["web-abc-d"])
    assert lab.replacement_for(first, rs, [pod("web-abc-c", "c")], created) is None
    assert lab.event_order({"metadata": {"name": "noname"}, "firstTimestamp": stamp})[1] == 0


@pytest.mark.parametrize(("pod_spec", "found"), [
    ({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"topologyKey": lab.HOSTNAME_KEY,
                                            "labelSelector": {"matchLabels": {"app": "web"}}}}]}}},
     "preferred podAntiAffinity"),
    ({"topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": lab.HOSTNAME_KEY,
                                     "whenUnsatisfiable": "ScheduleAnyway",
                                     "labelSelector": {"matchLabels": {"app": "web"}}}]},
     "maxSkew 2, not 1"),
    ({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                     "whenUnsatisfiable": "DoNotSchedule",
                                     "labelSelector": {"matchLabels": {"app": "web"}}}]},
     "'topology.kubernetes.io/zone'"),
])
def test_spread_rules(pod_spec: dict[str, Any], found: str) -> None:
    manifest = web()
    manifest["spec"]["template"]["spec"].update(pod_spec)
    description, why = lab.spread_rule(manifest)
    assert found in (description or why)


@pytest.mark.parametrize(("probe", "words"), [
    (None, "has no readinessProbe"),
    ({"tcpSocket": {"port": 8000}}, "uses tcpSocket"),
    ({"httpGet": {"path": "/api/version", "port": 80}}, "asks port 80"),
    ({"httpGet": {"path": "/api/version", "port": "web"}}, "asks port web"),
    ({"httpGet": {"path": "/api/version", "port": "http"}}, ""),
])
def test_probe_problems(probe: Any, words: str) -> None:
    container = lab.web_container()
    container.pop("readinessProbe")
    if probe is not None:
        container["readinessProbe"] = probe
    why = lab.probe_problem(container, "readinessProbe")
    assert (words in why) if words else why == ""


def test_limits_must_cover_both_and_stay_above_requests() -> None:
    container = lab.web_container()
    assert lab.limits_problem(container) == ""
    container["resources"]["limits"]["memory"] = "8Mi"
    assert "below its request of 16Mi" in lab.limits_problem(container)


def test_probe_urls_come_from_command_and_args() -> None:
    assert lab.probe_urls(lab.probe_pod()) == ["http://web/api/version"]
    pod = {"spec": {"containers": [{"args": ["wget", "-qO-", "http://web.dockyard-k8s:80/x"]}]}}
    assert lab.probe_urls(pod) == ["http://web.dockyard-k8s:80/x"]


# -- the node map --------------------------------------------------------------------------


def test_placement_puts_the_control_plane_first_and_unscheduled_pods_last() -> None:
    nodes = [{"metadata": {"name": "w2"}}, {"metadata": {"name": "w1"}},
             {"metadata": {"name": "cp", "labels": {
                 "node-role.kubernetes.io/control-plane": ""}},
              "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane",
                                   "effect": "NoSchedule"}]}}]
    ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    crash = {"phase": "Running", "containerStatuses": [
        {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    pods = [{"metadata": {"name": "a"}, "spec": {"nodeName": "w1"}, "status": ready},
            {"metadata": {"name": "b"}, "spec": {"nodeName": "w1"}, "status": crash},
            {"metadata": {"name": "c"}, "spec": {}, "status": {"phase": "Pending"}}]
    boxes = kube_plots.placement(nodes, pods)
    assert [b.name for b in boxes] == ["cp", "w1", "w2", kube_plots.UNSCHEDULED]
    assert boxes[0].control_plane and not boxes[0].ready  # no Ready condition given
    assert boxes[0].taints == ["node-role.kubernetes.io/control-plane:NoSchedule"]
    assert boxes[1].taints == []
    assert [(p.name, p.state, p.detail) for p in boxes[1].pods] == [
        ("a", "ready", "Ready"), ("b", "failed", "CrashLoopBackOff")]
    picture = kube_plots.NodeMap(boxes, NS, {"app": "web"})
    assert "cp (control plane) [node not Ready] [taints: node-role.kubernetes.io/control-plane:" \
        "NoSchedule]: no pods" in str(picture)
    assert "cp (control plane)" in str(picture) and "b [CrashLoopBackOff]" in str(picture)
    assert picture._repr_png_().startswith(b"\x89PNG")


def test_node_map_without_a_cluster_prints_why_and_returns_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import kernel_helpers as dy

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    kube.forget()
    assert dy.node_map() is None
    assert "No picture: there is no kubeconfig" in capsys.readouterr().out
    assert kube_plots.node_map(selector="app") is None
    assert "not a label selector" in capsys.readouterr().out


def test_node_map_draws_the_live_spread(cluster: kubesim.FakeCluster) -> None:
    import kernel_helpers as dy

    student(cluster, "deployments", lab.web_deployment())
    cluster.settle()
    picture = dy.node_map(selector="app=web")
    assert isinstance(picture, kube_plots.NodeMap)
    placed = picture.by_node
    assert placed["dockyard-control-plane"] == []
    assert len(placed["dockyard-worker"]) + len(placed["dockyard-worker2"]) == 3
    assert placed["dockyard-worker"] and placed["dockyard-worker2"]
    assert picture._repr_png_().startswith(b"\x89PNG")


# -- the notebook ------------------------------------------------------------------------------


def test_notebook_is_valid_and_shows_every_exercise_once() -> None:
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    shown = [line.split('"')[1] for cell in code for line in cell.splitlines()
             if line.startswith('dy.exercise("')]
    assert shown == [e.id for e in checkers.all_exercises(lab.LAB)]
    swarm = nbformat.read(REPO / "labs" / "05-orchestration-swarm.ipynb", as_version=4)
    first = [c.source for c in swarm.cells if c.cell_type == "code"][:2]
    assert code[0] == first[0]
    assert code[1] == first[1].replace("05-orchestration-swarm", lab.LAB)
    assert notebook.metadata["dockyard"]["lab"] == lab.LAB


def test_starter_files_reach_the_workspace() -> None:
    copied = lab.starter_files()
    assert {p.name for p in copied} >= {"web-deployment.yaml", "greeter.yaml", "greedy.yaml"}
    assert all(p.parent == workspace.lab_folder(lab.LAB) and p.exists() for p in copied)
