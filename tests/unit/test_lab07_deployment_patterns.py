"""Lab 07 (deployment patterns): checks, reference solutions and diagnosis.

The live exercises run against kubesim (kmock's emulator plus fake controllers): each
must fail on an empty namespace with an actionable reason, pass after its solution
(applied through the real apply and wait code) with evidence, and name the specific
problem of a realistic wrong state. The static exercise and the pure helpers need no
cluster at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubesim
import pytest
import yaml

import checkers
from checkers import deployment_patterns as dp
from kernel_helpers import kubernetes as kube

NS = dp.NAMESPACE
LIVE = ("deployment.rolling-update", "deployment.rollback", "deployment.blue-green",
        "deployment.canary")
STARTERS = Path(__file__).resolve().parents[2] / "labs" / dp.LAB


# --- helpers --------------------------------------------------------------------------------


@dataclass
class Lab:
    """The lab's namespace on kubesim, written to through Dockyard's own apply."""

    emulator: kubesim.Emulator
    fake: kubesim.FakeCluster

    @property
    def cluster(self) -> kube.Cluster:
        return kube.connect()

    def apply(self, *manifests: dict[str, Any]) -> None:
        """``kubectl -n dockyard-deploy apply -f -`` for each manifest, as a student would."""
        for manifest in manifests:
            self.cluster.apply(manifest, namespace=NS, lab=dp.LAB, exercise="student")

    def patch_selector(self, name: str, selector: dict[str, str]) -> None:
        """``kubectl patch service NAME -p '{"spec":{"selector":...}}'`` (a merge patch)."""
        self.cluster.patch("Service", name, NS, {"spec": {"selector": selector}})

    def settle(self) -> None:
        self.fake.settle()

    def until(self, predicate: Callable[[], bool], what: str) -> None:
        self.fake.run_until(predicate, timeout=20, what=what)

    def set_log(self, pod: str, lines: list[str]) -> None:
        """Replace a running pod's output (what ``kubectl logs POD`` will print)."""
        text = "".join(line + "\n" for line in lines)
        self.fake.logs[(NS, pod)] = text
        for key in [k for k in self.fake.container_logs if k[:2] == (NS, pod)]:
            self.fake.container_logs[key] = text

    def pods(self) -> list[dict[str, Any]]:
        return self.emulator.objects("pods", NS)


@pytest.fixture
def lab(kubeconfig: Path, fake_cluster: kubesim.FakeCluster,
        kube_emulator: kubesim.Emulator) -> Iterator[Lab]:
    yield Lab(kube_emulator, fake_cluster)


@pytest.fixture
def lab_without_v2(kubeconfig: Path, kube_emulator: kubesim.Emulator) -> Iterator[Lab]:
    """A cluster where ``kind load docker-image dockyard/api:2`` was never run."""
    fake = kubesim.FakeCluster(kube_emulator, images=[dp.V1], restart_interval=0.05)
    fake.seed_nodes()
    yield Lab(kube_emulator, fake)
    fake.stop()
    fake.api.close()


def reasons(verdict: checkers.Verdict) -> dict[str, str]:
    return {s.key: s.reason for s in verdict.subchecks if not s.passed}


def passed(verdict: checkers.Verdict) -> set[str]:
    return {s.key for s in verdict.subchecks if s.passed}


def v(version: str) -> str:
    return f'{{"service": "dockyard-api", "version": "{version}"}}'


def pulling_failed(lab: Lab, image: str) -> Callable[[], bool]:
    def seen() -> bool:
        return any(
            (s.get("state", {}).get("waiting") or {}).get("reason") in dp.PULL_REASONS
            for p in lab.pods() for s in p.get("status", {}).get("containerStatuses") or []
            if s.get("image", "").endswith(image.split("/", 1)[1]))
    return seen


# --- registration and pure helpers (no cluster) ------------------------------------------------


def test_the_lab_registers_its_exercises() -> None:
    found = {e.id: e for e in checkers.all_exercises(dp.LAB)}
    assert list(found) == ["deployment.strategy-file", *LIVE]
    for eid in LIVE:
        assert found[eid].needs_cluster and not found[eid].needs_engine
        assert found[eid].images == ("api-v1", "api-v2")
        assert found[eid].points >= 4
    static = found["deployment.strategy-file"]
    assert static.static and not static.needs_cluster and not static.needs_engine


@pytest.mark.parametrize(("replicas", "surge", "unavailable"),
                         [(4, 1, 0), (4, 1, 1), (4, 0, 1), (3, 2, 0), (5, 0, 2)])
def test_rollout_steps_respect_surge_and_unavailable(replicas: int, surge: int,
                                                     unavailable: int) -> None:
    steps = dp.rollout_steps(replicas, surge, unavailable)
    assert steps[0] == (replicas, 0, 0) and steps[-1] == (0, replicas, 0)
    for old, ready, starting in steps:
        assert old + ready >= replicas - unavailable  # never fewer Ready pods than allowed
        assert old + ready + starting <= replicas + surge  # never more pods than allowed
    assert len(steps) > 2


def test_rollout_steps_refuse_a_strategy_that_cannot_move() -> None:
    with pytest.raises(ValueError, match="both be 0"):
        dp.rollout_steps(4, 0, 0)


@pytest.mark.parametrize(("value", "up", "expected"), [
    ("25%", True, 1), ("25%", False, 1), ("10%", True, 1), ("10%", False, 0),
    (1, True, 1), (0, False, 0), ("half", True, None), ("x%", False, None),
])
def test_resolve_count_rounds_like_the_controller(value: Any, up: bool,
                                                  expected: int | None) -> None:
    assert dp.resolve_count(value, 4, round_up=up) == expected


def test_parse_traffic_reads_answers_failures_and_switches() -> None:
    log = "\n".join([v("1"), v("1"), "wget: can't connect to remote host: Connection refused",
                     "FAIL", v("2") + v("2"), "", "FAIL", v("1"), "noise"])
    parsed = dp.parse_traffic(log)
    assert parsed.requests == ["1", "1", None, "2", "2", None, "1"]
    assert parsed.failures == [3, 6]
    assert parsed.counts() == {"1": 3, "2": 2}
    assert parsed.segments() == [("1", 2, 1), ("2", 2, 4), ("1", 1, 7)]
    assert parsed.failure_lines[0].startswith("wget: can't connect")


def test_starter_files_hold_the_reference_objects() -> None:
    def docs(name: str) -> list[Any]:
        return list(yaml.safe_load_all((STARTERS / name).read_text(encoding="utf-8")))

    shop = dp.shop_deployment(dp.V1)
    del shop["spec"]["strategy"]  # the student writes it (deployment.strategy-file)
    assert docs("shop.yaml") == [shop]
    assert docs("blue-green.yaml") == [dp.front_service("blue"), dp.colour_deployment("blue"),
                                       dp.colour_deployment("green")]
    assert docs("traffic.yaml") == [dp.traffic_pod()]
    assert docs("canary.yaml") == [dp.track_deployment("stable")]
    assert list(yaml.safe_load_all(dp.reference_shop_yaml())) == [dp.shop_deployment(dp.V1)]


# --- the static exercise: shop.yaml (no cluster) --------------------------------------------


def test_strategy_file_fails_on_the_starter_and_passes_after_the_solution() -> None:
    checkers.cleanup("deployment.strategy-file")
    checkers.setup("deployment.strategy-file")
    before = checkers.check("deployment.strategy-file")
    assert before.status == "fail"
    assert passed(before) == {"parses", "schema", "sound"}
    assert "maxSurge 25% and maxUnavailable 25%" in reasons(before)["strategy"]
    checkers.solve("deployment.strategy-file")
    after = checkers.check("deployment.strategy-file")
    assert after.passed, str(after)
    assert after.evidence["strategy"]["surge_n"] == 1
    checkers.cleanup("deployment.strategy-file")
    assert dp.shop_path().read_text(encoding="utf-8") == (STARTERS / "shop.yaml").read_text(
        encoding="utf-8")
    assert not list(dp.shop_path().parent.glob("*.mine*"))


@pytest.mark.parametrize(("edit", "key", "words"), [
    (lambda t: t.replace("maxUnavailable: 0", "maxUnavailible: 0"), "schema",
     "did you mean 'maxUnavailable'"),
    (lambda t: t.replace("  strategy:", "strategy:", 1), "parses", "line "),
    (lambda t: t.replace("maxUnavailable: 0", "maxUnavailable: 1"), "strategy",
     "maxUnavailable 1"),
    (lambda t: t.replace("livenessProbe:", "livenesProbe:"), "schema",
     "did you mean 'livenessProbe'"),
])
def test_strategy_file_names_the_mistake(edit: Callable[[str], str], key: str,
                                         words: str) -> None:
    checkers.solve("deployment.strategy-file")
    path = dp.shop_path()
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    verdict = checkers.check("deployment.strategy-file")
    assert verdict.status == "fail"
    assert words in reasons(verdict)[key]


# --- the context guard ---------------------------------------------------------------------


def test_every_live_exercise_refuses_a_foreign_context(
        kube_emulator: kubesim.Emulator, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = kube_emulator.write_kubeconfig(
        tmp_path / "config", {"kind-dockyard": kube_emulator.url,
                              "work-prod": kube_emulator.url}, current="work-prod")
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv(kube.CONTEXT_ENV, raising=False)
    kube.forget()
    for eid in LIVE:
        verdict = checkers.check(eid)
        assert verdict.status == "refused", eid
        assert "work-prod" in verdict.message
    assert kube_emulator.objects("deployments") == []


def test_every_live_exercise_needs_a_cluster(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-config"))
    monkeypatch.delenv(kube.CONTEXT_ENV, raising=False)
    kube.forget()
    for eid in LIVE:
        verdict = checkers.check(eid)
        assert verdict.status == "needs-cluster", eid
        assert "needs a Kubernetes cluster" in verdict.message
        assert "dockyard cluster up" in verdict.message


# --- empty namespace, then the reference solution -------------------------------------------


@pytest.mark.parametrize("eid", LIVE)
def test_check_fails_on_an_empty_namespace(lab: Lab, eid: str) -> None:
    verdict = checkers.check(eid)
    assert verdict.status == "fail"
    first = verdict.subchecks[0]
    assert not first.passed
    assert re.search(r"There is no (Deployment|Service) named '[\w-]+' in namespace "
                     r"'dockyard-deploy'", first.reason)
    assert "kubectl get" in first.reason


def _rolling_evidence(verdict: checkers.Verdict) -> None:
    history = verdict.evidence["deployments"]["shop"]["history"]
    assert [(h["revision"], h["image"], h["replicas"]) for h in history] == [
        (1, dp.V1, 0), (2, dp.V2, 4)]
    assert all(p["node"] for p in history[1]["pods"]) and len(history[1]["pods"]) == 4
    assert verdict.evidence["strategy"]["surge_n"] == 1
    assert verdict.evidence["strategy"]["unavailable_n"] == 0


def _rollback_evidence(verdict: checkers.Verdict) -> None:
    deploy = verdict.evidence["deployments"]["shop"]
    broken = verdict.evidence["broken_revisions"]
    assert [b["image"] for b in broken] == [dp.BROKEN] and broken[0]["ready"] == 0
    assert deploy["revision"] > broken[0]["revision"]
    assert deploy["image"] == dp.V2
    assert any("came back as revision" in note for note in verdict.notes)


def _blue_green_evidence(verdict: checkers.Verdict) -> None:
    traffic = verdict.evidence["traffic"]
    assert [s["colour"] for s in traffic["segments"]] == ["blue", "green", "blue"]
    assert traffic["failed"] == 0 and traffic["phase"] == "Succeeded"
    assert len(traffic["switch_points"]) == 2
    assert verdict.evidence["selector"] == {"app": "shop", "color": "blue"}


def _canary_evidence(verdict: checkers.Verdict) -> None:
    tracks = verdict.evidence["endpoints_by_track"]
    assert (len(tracks["stable"]), len(tracks["canary"])) == (3, 1)
    assert "other" not in tracks
    assert verdict.evidence["canary_share"] == "25 %"


EVIDENCE = {"deployment.rolling-update": _rolling_evidence,
            "deployment.rollback": _rollback_evidence,
            "deployment.blue-green": _blue_green_evidence,
            "deployment.canary": _canary_evidence}


@pytest.mark.parametrize("eid", LIVE)
def test_solution_passes_with_evidence_and_cleanup_removes_it(
        lab: Lab, eid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dp, "TRAFFIC_REQUESTS", 40)
    monkeypatch.setattr(dp, "MIN_REQUESTS", 20)
    kubesim.finish_bounded_loops(lab.fake)
    lab.fake.start(interval=0.02)
    try:
        checkers.solve(eid)
    finally:
        lab.fake.stop()
    verdict = checkers.check(eid)
    assert verdict.passed, str(verdict)
    EVIDENCE[eid](verdict)
    removed = checkers.cleanup(eid)
    assert removed and all(not r.error for r in removed)
    lab.settle()
    assert checkers.check(eid).status == "fail"


def test_canary_solution_clears_the_earlier_exercises_first(lab: Lab) -> None:
    lab.apply(dp.shop_deployment(dp.V2), dp.colour_deployment("blue"),
              dp.colour_deployment("green"))
    lab.settle()
    lab.fake.start(interval=0.02)
    try:
        checkers.solve("deployment.canary")
    finally:
        lab.fake.stop()
    assert checkers.check("deployment.canary").passed
    names = {d["metadata"]["name"] for d in lab.emulator.objects("deployments", NS)}
    assert names == {dp.STABLE, dp.CANARY}


# --- realistic wrong states: rolling update and rollback ---------------------------------------


def test_rolling_update_with_the_default_strategy(lab: Lab) -> None:
    plain = dp.deployment(dp.SHOP, dp.V1, 4, dp.SHOP_LABELS)
    lab.apply(plain)
    lab.settle()
    lab.apply(dp.deployment(dp.SHOP, dp.V2, 4, dp.SHOP_LABELS))
    lab.settle()
    verdict = checkers.check("deployment.rolling-update")
    assert passed(verdict) == {"template", "history", "rolled-out"}
    assert "maxSurge 25% and maxUnavailable 25%" in reasons(verdict)["strategy"]
    assert "maxUnavailable: 0" in reasons(verdict)["strategy"]


def test_rolling_update_created_at_the_new_version(lab: Lab) -> None:
    lab.apply(dp.shop_deployment(dp.V2))
    lab.settle()
    verdict = checkers.check("deployment.rolling-update")
    assert "no earlier revision ran dockyard/api:1" in reasons(verdict)["history"]
    assert "revision is 1" in reasons(verdict)["history"]


def test_rolling_update_to_an_image_kind_does_not_have(lab_without_v2: Lab) -> None:
    lab = lab_without_v2
    lab.apply(dp.shop_deployment(dp.V1))
    lab.settle()
    lab.apply(dp.shop_deployment(dp.V2))
    lab.until(pulling_failed(lab, dp.V2), "the pull of api:2 to fail")
    verdict = checkers.check("deployment.rolling-update")
    why = reasons(verdict)
    assert "cannot get its image 'dockyard/api:2'" in why["rolled-out"]
    assert "kind load docker-image dockyard/api:2" in why["rolled-out"]
    assert "4/4 Ready pods" in why["rolled-out"]  # maxUnavailable 0 kept the old ones
    assert "still has 4 pod(s)" in why["history"]


def test_rolling_update_whose_pods_crash(lab: Lab) -> None:
    crashing = dp.shop_deployment(dp.V2)
    crashing["spec"]["template"]["metadata"]["annotations"] = {kubesim.CRASH_ANNOTATION: "true"}
    lab.apply(crashing)

    def crash_looping() -> bool:
        return any((s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
                   for p in lab.pods() for s in p.get("status", {}).get("containerStatuses")
                   or [])

    lab.until(crash_looping, "a CrashLoopBackOff")
    why = reasons(checkers.check("deployment.rolling-update"))["rolled-out"]
    assert "keeps crashing (CrashLoopBackOff" in why
    assert "kubectl logs -n dockyard-deploy" in why and "--previous" in why


def test_rollback_while_the_broken_release_is_current(lab: Lab) -> None:
    lab.apply(dp.shop_deployment(dp.V2))
    lab.settle()
    lab.apply(dp.shop_deployment(dp.BROKEN))
    lab.until(pulling_failed(lab, dp.BROKEN), "the pull of api:404 to fail")
    verdict = checkers.check("deployment.rollback")
    assert "broken" in passed(verdict)
    why = reasons(verdict)["undone"]
    assert re.search(r"cannot get its image 'dockyard/api:404' \((ErrImagePull|ImagePullBackOff)\)",
                     why)
    assert "rollout undo deployment/shop" in why
    assert "4 of 4 pods are still Ready" in why  # maxUnavailable: 0 kept them serving
    assert "Not checked yet" in reasons(verdict)["ready"]


def test_rollback_before_anything_broke(lab: Lab) -> None:
    lab.apply(dp.shop_deployment(dp.V1))
    lab.settle()
    lab.apply(dp.shop_deployment(dp.V2))
    lab.settle()
    why = reasons(checkers.check("deployment.rollback"))["broken"]
    assert "Set its image to dockyard/api:404" in why
    assert "revision 2: dockyard/api:2 (4/4 Ready)" in why


# --- realistic wrong states: blue/green ----------------------------------------------------


def blue_green(lab: Lab, colour: str = "blue", traffic: bool = True) -> None:
    lab.apply(dp.front_service(colour), dp.colour_deployment("blue"),
              dp.colour_deployment("green"))
    if traffic:
        lab.apply(dp.traffic_pod())
    lab.settle()


def test_blue_green_without_a_traffic_pod(lab: Lab) -> None:
    blue_green(lab, traffic=False)
    verdict = checkers.check("deployment.blue-green")
    assert passed(verdict) == {"deployments", "service"}
    assert "There is no pod named 'traffic'" in reasons(verdict)["switches"]


def test_blue_green_that_never_switched(lab: Lab) -> None:
    blue_green(lab)
    lab.set_log(dp.TRAFFIC, [v("1")] * 60)
    why = reasons(checkers.check("deployment.blue-green"))
    assert "only ever reached blue" in why["switches"]
    assert "no-failures" not in why


def test_blue_green_left_on_green(lab: Lab) -> None:
    blue_green(lab, colour="green")
    lab.set_log(dp.TRAFFIC, [v("1")] * 30 + [v("2")] * 30)
    why = reasons(checkers.check("deployment.blue-green"))
    assert "still selects green; switch it back to blue" in why["service"]
    assert "never back" in why["switches"]


def test_blue_green_with_both_colours_selected_at_once(lab: Lab) -> None:
    blue_green(lab)
    lab.set_log(dp.TRAFFIC, [v("1")] * 20 + [v("1"), v("2")] * 10 + [v("1")] * 20)
    why = reasons(checkers.check("deployment.blue-green"))["switches"]
    assert "changed 20 times, not exactly twice" in why


def test_blue_green_with_a_typo_during_the_switch(lab: Lab) -> None:
    """A selector typo sends traffic nowhere for a moment; kubesim's traffic sees it."""
    blue_green(lab)
    for selector, passes in (({"app": "shop", "color": "gren"}, 3),
                             ({"app": "shop", "color": "green"}, 5),
                             ({"app": "shop", "color": "blue"}, 5)):
        lab.patch_selector(dp.FRONT, selector)
        for _ in range(passes):
            lab.fake.reconcile()
    verdict = checkers.check("deployment.blue-green")
    assert "switches" in passed(verdict), str(verdict)
    why = reasons(verdict)["no-failures"]
    assert re.search(r"\d+ of \d+ requests failed", why)
    assert "Connection refused" in why
    assert verdict.evidence["traffic"]["failed"] >= 1


def test_blue_green_when_green_cannot_pull_its_image(lab_without_v2: Lab) -> None:
    lab = lab_without_v2
    blue_green(lab, traffic=False)
    lab.until(pulling_failed(lab, dp.V2), "the pull of api:2 to fail")
    why = reasons(checkers.check("deployment.blue-green"))["deployments"]
    assert "shop-green has 0/2 Ready pods" in why
    assert "cannot get its image 'dockyard/api:2'" in why


# --- realistic wrong states: canary ---------------------------------------------------------


def canary(lab: Lab, service: dict[str, Any] | None = None, replicas: int = 1) -> None:
    small = dp.track_deployment("canary")
    small["spec"]["replicas"] = replicas
    lab.apply(dp.track_deployment("stable"), small, service or dp.all_service())
    lab.settle()


def test_canary_with_blue_green_still_running(lab: Lab) -> None:
    lab.apply(dp.colour_deployment("blue"), dp.colour_deployment("green"))
    canary(lab)
    verdict = checkers.check("deployment.canary")
    assert passed(verdict) == {"deployments", "service"}
    why = reasons(verdict)["ratio"]
    assert "3 stable and 1 canary Ready endpoint(s) and 4 from other pods" in why
    assert "shop-blue, shop-green" in why and "delete deployment" in why
    assert "12 %" in why


def test_canary_service_that_selects_one_track(lab: Lab) -> None:
    canary(lab, service=dp.service(dp.ALL, {"app": "shop", "track": "stable"}))
    why = reasons(checkers.check("deployment.canary"))
    assert "it selects app=shop,track=stable; it should select app=shop only" in why["service"]
    assert "3 stable and 0 canary" in why["ratio"] and "(0 % of the traffic" in why["ratio"]


def test_canary_with_too_many_canary_pods(lab: Lab) -> None:
    canary(lab, replicas=3)
    why = reasons(checkers.check("deployment.canary"))
    assert "shop-canary wants 3 replica(s), not 1" in why["deployments"]
    assert "(50 % of the traffic" in why["ratio"]
