"""Lab 05's pure parts: batching of rollout times, the shipped stack file, swarm state."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

import checkers
from checkers import orchestration_swarm as lab
from kernel_helpers import engine as eng
from kernel_helpers import swarm

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(*seconds: float) -> list[datetime]:
    return [T0 + timedelta(seconds=s) for s in seconds]


def test_one_at_a_time_with_a_delay_is_three_batches() -> None:
    groups = lab.batches(at(0, 4.9, 9.8), gap=1.5)
    assert [len(g) for g in groups] == [1, 1, 1]


def test_all_at_once_is_one_batch() -> None:
    assert len(lab.batches(at(0.0, 0.05, 0.1), gap=1.5)) == 1


def test_batches_of_two_are_grouped_and_order_does_not_matter() -> None:
    groups = lab.batches(at(5.1, 0.0, 0.2, 5.0), gap=1.5)
    assert [len(g) for g in groups] == [2, 2]


def test_shipped_stack_file_labels_every_service_and_network() -> None:
    data = yaml.safe_load((lab.REPO_LAB_DIR / lab.STACK_FILE).read_text())
    owned = {eng.LAB_LABEL: lab.LAB, eng.EXERCISE_LABEL: "orchestration.stack"}
    assert {f"{lab.STACK}_{name}" for name in data["services"]} == set(lab.STACK_SERVICES)
    for name, service in data["services"].items():
        assert service["deploy"]["labels"] == owned, name
        assert "ports" not in service, "the routing mesh needs IPVS; the lab publishes nothing"
    assert data["networks"]["default"]["labels"] == owned


def test_swarm_state_reads_manager_and_worker() -> None:
    manager = swarm.SwarmState("active", "n1", True)
    worker = swarm.SwarmState("active", "n2", False)
    assert manager.manager and worker.active and not worker.manager
    assert not swarm.SwarmState("inactive", "", False).active


def test_task_image_drops_the_digest_pin() -> None:
    task = {"Spec": {"ContainerSpec": {"Image": "dockyard/api:1@sha256:abc"}}}
    assert swarm.task_image(task) == "dockyard/api:1"


def test_rollback_spec_signature_sees_a_healthcheck_change() -> None:
    good = {"Image": "dockyard/api:1"}
    bad = {"Image": "dockyard/api:1", "Healthcheck": {"Test": ["CMD", "false"]}}
    assert lab._spec_signature(good) != lab._spec_signature(bad)
    assert lab._spec_signature({"Image": "dockyard/api:1@sha256:x"}) == lab._spec_signature(good)


def test_lab_has_at_least_six_exercises_with_hints() -> None:
    exercises = checkers.all_exercises(lab.LAB)
    assert len(exercises) >= 6
    assert all(e.id.startswith("orchestration.") and e.text.hints for e in exercises)


def test_without_an_engine_every_check_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    for exercise in checkers.all_exercises(lab.LAB):
        verdict = checkers.check(exercise.id)
        assert verdict.status == checkers.NEEDS_ENGINE, str(verdict)
