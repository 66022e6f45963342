"""The diagnosis hints come from the objects' own fields, one specific sentence each."""

from __future__ import annotations

from typing import Any

from kernel_helpers.kube_diagnosis import diagnose_pod, diagnose_pods, diagnose_service


def pod(name: str = "web-1", labels: dict[str, str] | None = None, **status: Any) -> dict:
    return {
        "metadata": {"name": name, "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "dockyard/api:1",
                                 "ports": [{"containerPort": 8000}]}]},
        "status": status,
    }


READY = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}


def waiting(reason: str, message: str = "", **extra: Any) -> dict:
    return {"phase": "Pending", "containerStatuses": [
        {"name": "web", "ready": False, "state": {"waiting": {"reason": reason,
                                                              "message": message}}, **extra}]}


def test_a_ready_pod_needs_no_hint() -> None:
    assert diagnose_pod(pod(**READY)) is None


def test_image_pull_backoff_names_the_image_and_kind_load() -> None:
    hint = diagnose_pod(pod(**waiting("ImagePullBackOff", 'Back-off pulling image "x"')))
    assert hint is not None
    assert "dockyard/api:1" in hint and "kind load docker-image" in hint
    assert "ImagePullBackOff" in hint and "Back-off pulling image" in hint


def test_err_image_pull_is_diagnosed_like_a_backoff() -> None:
    hint = diagnose_pod(pod(**waiting("ErrImagePull")))
    assert hint is not None and "ErrImagePull" in hint


def test_crash_loop_reports_restarts_exit_code_and_logs_previous() -> None:
    status = waiting("CrashLoopBackOff", restartCount=4,
                     lastState={"terminated": {"exitCode": 1, "reason": "Error"}})
    hint = diagnose_pod(pod(**status), namespace="dockyard-k8s")
    assert hint is not None
    assert "4 restarts" in hint and "code 1" in hint
    assert "kubectl logs -n dockyard-k8s web-1 -c web --previous" in hint


def test_oom_killed_crash_says_raise_the_memory_limit() -> None:
    status = waiting("CrashLoopBackOff", restartCount=2,
                     lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    hint = diagnose_pod(pod(**status))
    assert hint is not None and "memory limit" in hint


def test_unschedulable_pending_quotes_the_scheduler() -> None:
    message = "0/3 nodes are available: 3 Insufficient cpu."
    status = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": message}]}
    hint = diagnose_pod(pod(**status))
    assert hint is not None and message in hint and "Pending" in hint


def test_unschedulable_without_condition_message_uses_the_event() -> None:
    status = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}
    events = [{"involvedObject": {"name": "web-1"}, "reason": "FailedScheduling",
               "message": "0/3 nodes are available: 2 Insufficient memory."}]
    hint = diagnose_pod(pod(**status), events)
    assert hint is not None and "Insufficient memory" in hint


def test_failing_readiness_probe_is_named_from_unhealthy_events() -> None:
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
    events = [{"involvedObject": {"name": "web-1"}, "reason": "Unhealthy",
               "message": "Readiness probe failed: HTTP probe failed with statuscode: 404"}]
    hint = diagnose_pod(pod(**status), events)
    assert hint is not None and "statuscode: 404" in hint and "probe" in hint


def test_missing_config_map_is_a_config_error() -> None:
    hint = diagnose_pod(pod(**waiting("CreateContainerConfigError",
                                      'configmap "web-config" not found')))
    assert hint is not None and 'configmap "web-config" not found' in hint


def test_several_bad_pods_are_summarised_once() -> None:
    bad = [pod(f"web-{i}", **waiting("ErrImagePull")) for i in range(3)]
    hint = diagnose_pods(bad)
    assert hint is not None and "2 more pod(s)" in hint


def service(selector: dict[str, str] | None, target: int = 8000) -> dict:
    return {"metadata": {"name": "web"},
            "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": target}]}}


def test_selector_mismatch_lists_the_labels_pods_really_carry() -> None:
    hint = diagnose_service(service({"app": "web-frontend"}),
                            [pod(f"web-{i}", **READY) for i in range(3)])
    assert hint is not None
    assert "app=web-frontend" in hint and "app=web (3)" in hint


def test_service_without_selector_never_gets_endpoints() -> None:
    hint = diagnose_service(service(None), [pod(**READY)])
    assert hint is not None and "no selector" in hint


def test_service_whose_pods_are_not_ready_explains_the_pods() -> None:
    hint = diagnose_service(service({"app": "web"}), [pod(**waiting("ImagePullBackOff"))])
    assert hint is not None and "none is Ready" in hint and "ImagePullBackOff" in hint


def test_service_pointing_at_the_wrong_port() -> None:
    hint = diagnose_service(service({"app": "web"}, target=9999), [pod(**READY)],
                            {"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]})
    assert hint is not None and "9999" in hint and "8000" in hint


def test_healthy_service_needs_no_hint() -> None:
    endpoints = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}
    assert diagnose_service(service({"app": "web"}), [pod(**READY)], endpoints) is None
