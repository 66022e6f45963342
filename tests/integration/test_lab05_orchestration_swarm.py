"""Lab 05 on a real engine: selftest, decoys that must survive, and whose swarm it is.

A swarm is engine-wide state, and these tests may run in any order in one process, so
every test leaves swarm mode as it found it (``swarm_as_found``). A swarm the test
itself starts stands for one the *student* started: Dockyard must never leave it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, NotFound

import checkers
from kernel_helpers import engine as eng
from kernel_helpers import progress, swarm

pytestmark = pytest.mark.docker

LAB = "05-orchestration-swarm"
DECOY_STACK = "dy-sw-mine"
DECOY_SERVICES = ("dy-sw-web-mine", "dy-sw-web")


def _leave(client: Any) -> None:
    with contextlib.suppress(APIError):
        client.swarm.leave(force=True)


@pytest.fixture
def swarm_as_found(engine: eng.Engine) -> Iterator[swarm.SwarmState]:
    """Afterwards, swarm mode is what it was before: a swarm the test started goes again."""
    before = swarm.state(engine)
    yield before
    after = swarm.state(engine)
    if not before.active and after.active:
        _leave(engine.client)
    assert before.active == swarm.state(engine).active, "the test changed the swarm state"


@pytest.fixture
def student_swarm(engine: eng.Engine, swarm_as_found: swarm.SwarmState) -> swarm.SwarmState:
    """An active swarm that Dockyard did not start (the student's, or one already there)."""
    if not swarm_as_found.active:
        engine.client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    current = swarm.state(engine)
    assert current.manager, current
    return current


@pytest.fixture
def no_swarm(engine: eng.Engine, swarm_as_found: swarm.SwarmState) -> None:
    """Tests of a swarm Dockyard starts itself need an engine that is in none."""
    if swarm_as_found.active:
        pytest.skip("a swarm is already active here; Dockyard must not leave it to test this")


@pytest.fixture
def services_made(engine: eng.Engine) -> Iterator[Callable[[Any], Any]]:
    made: list[Any] = []
    yield made.append
    for service in made:
        with contextlib.suppress(NotFound, APIError):
            service.remove()


def docker_cli(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker")
    if binary is None:
        pytest.skip("the docker CLI is not installed")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def service_exists(client: Any, service_id: str) -> bool:
    try:
        client.services.get(service_id)
        return True
    except NotFound:
        return False


def wait_for(done: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.5)
    raise AssertionError("timed out")


# -- selftest ---------------------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_selftest_lab05(cli: Any, swarm_as_found: swarm.SwarmState, engine: eng.Engine) -> None:
    done = cli("selftest", LAB, "--json")
    assert "Traceback" not in done.stderr
    rows = json.loads(done.stdout)
    problems = {r["exercise"]: r["problem"] for r in rows if not r["ok"]}
    assert done.returncode == 0 and not problems, problems or done.stderr
    assert len(rows) >= 6
    for row in rows:
        assert row["before"].startswith("fail ") and row["after"].startswith("pass "), row
    # Every exercise cleaned up: no lab service is left, and the swarm is as it was found.
    assert not swarm.services(engine, label=f"{eng.LAB_LABEL}={LAB}")
    assert swarm.state(engine).active == swarm_as_found.active


@pytest.mark.timeout(300)
def test_selftest_keeps_a_swarm_that_was_already_active(
    engine: eng.Engine, student_swarm: swarm.SwarmState
) -> None:
    for exercise_id in ("orchestration.init", "orchestration.replicas"):
        row = checkers.selftest_one(checkers.get(exercise_id))
        assert row.ok, row
    after = swarm.state(engine)
    assert after.active and after.node_id == student_swarm.node_id
    assert progress.store().fact(swarm.CREATED_FACT) is None


# -- decoys ------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_reset_spares_the_students_services_stack_and_swarm(
    engine: eng.Engine, student_swarm: swarm.SwarmState, services_made: Any, cli: Any,
    tmp_path: Path,
) -> None:
    client = engine.client
    for name in (*DECOY_SERVICES, f"{DECOY_STACK}_sleeper"):
        found = swarm.find_service(engine, name)
        if found is not None:  # left over from an interrupted run of this test
            found.remove()
    decoys = {}
    for name in DECOY_SERVICES:
        service = client.services.create("busybox:latest", ["sleep", "3600"], name=name,
                                         stop_grace_period=10**9)
        services_made(service)
        decoys[name] = service.id
    compose = tmp_path / "mine.yaml"
    compose.write_text(
        "version: '3.8'\nservices:\n  sleeper:\n    image: busybox:latest\n"
        "    command: [sleep, '3600']\n    stop_grace_period: 1s\n"
    )
    deployed = docker_cli("stack", "deploy", "-c", str(compose), DECOY_STACK)
    assert deployed.returncode == 0, deployed.stderr
    stack_service = swarm.find_service(engine, f"{DECOY_STACK}_sleeper")
    assert stack_service is not None
    decoys[stack_service.name] = stack_service.id
    try:
        time.sleep(1.1)  # the lab starts strictly after the decoys were made
        store = progress.store()
        store.start_lab(LAB)

        # The student's own dy-sw-web is graded, but stays theirs.
        verdict = checkers.check("orchestration.replicas")
        assert any("older than this lab" in n for n in verdict.notes), verdict.notes
        with pytest.raises(checkers.RunError, match="will not be touched"):
            checkers.solve("orchestration.replicas")
        # A labelled service from a reference solution, and a graded one made after the start.
        checkers.solve("orchestration.scale")
        scale = swarm.find_service(engine, "dy-sw-scale")
        assert scale is not None
        late = client.services.create("busybox:latest", ["sleep", "3600"], name="dy-sw-heal",
                                      stop_grace_period=10**9)
        services_made(late)
        checkers.check("orchestration.self-heal")
        assert late.id in {o.resource_id for o in store.owned(exercise="orchestration.self-heal")}

        done = cli("reset", LAB)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        again = checkers.reset()
        assert not {r.resource_id for r in again.removed} & set(decoys.values())

        assert not service_exists(client, scale.id)
        assert not service_exists(client, late.id)
        for name, service_id in decoys.items():
            assert service_exists(client, service_id), f"reset removed {name}"
        current = swarm.state(engine)
        assert current.active and current.node_id == student_swarm.node_id
    finally:
        docker_cli("stack", "rm", DECOY_STACK)


# -- whose swarm it is ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_dockyard_leaves_the_swarm_it_created(engine: eng.Engine, no_swarm: None) -> None:
    store = progress.store()
    checkers.solve("orchestration.init")
    current = swarm.state(engine)
    assert current.manager
    assert store.fact(swarm.CREATED_FACT) == current.node_id
    assert checkers.check("orchestration.init").passed
    checkers.solve("orchestration.replicas")
    report = checkers.reset(LAB)
    assert report.problems == []
    assert not swarm.state(engine).active
    assert store.fact(swarm.CREATED_FACT) is None


@pytest.mark.timeout(120)
def test_dockyard_keeps_its_swarm_while_a_foreign_service_runs(
    engine: eng.Engine, no_swarm: None, services_made: Any
) -> None:
    store = progress.store()
    store.start_lab(LAB)
    made = swarm.ensure_swarm(engine)
    assert made.created and store.fact(swarm.CREATED_FACT) == made.node_id
    assert swarm.ensure_swarm(engine) == swarm.EnsureResult(made.node_id, created=False)
    foreign = engine.client.services.create("busybox:latest", ["sleep", "3600"],
                                            name="dy-sw-foreign", stop_grace_period=10**9)
    services_made(foreign)
    refused = swarm.leave_if_ours(engine)
    assert not refused.left and "dy-sw-foreign" in refused.why
    assert not checkers.reset(LAB).problems
    assert swarm.state(engine).active and service_exists(engine.client, foreign.id)
    foreign.remove()
    left = swarm.leave_if_ours(engine)
    assert left.left, left.why
    assert not swarm.state(engine).active


def test_leave_if_ours_never_leaves_a_swarm_it_did_not_create(
    engine: eng.Engine, student_swarm: swarm.SwarmState
) -> None:
    store = progress.store()
    assert swarm.ensure_swarm(engine).created is False
    assert store.fact(swarm.CREATED_FACT) is None
    # Even a stale record of an older Dockyard swarm does not make this one Dockyard's.
    store.set_fact(swarm.CREATED_FACT, "an-old-node-id")
    result = swarm.leave_if_ours(engine)
    assert not result.left and "not created by Dockyard" in result.why
    assert swarm.state(engine).node_id == student_swarm.node_id
    assert store.fact(swarm.CREATED_FACT) is None


@pytest.mark.timeout(120)
def test_a_wrong_update_is_a_fail_with_reasons(
    engine: eng.Engine, student_swarm: swarm.SwarmState, lab_reset: None
) -> None:
    """All tasks replaced at once (parallelism 0) is graded as a fail that says why."""
    progress.store().start_lab(LAB)
    client = engine.client
    from docker.types import ServiceMode, UpdateConfig

    found = swarm.find_service(engine, "dy-sw-roll")
    if found is not None:
        found.remove()
    service = client.services.create(
        "dockyard/api:1", name="dy-sw-roll", mode=ServiceMode("replicated", replicas=3),
        update_config=UpdateConfig(parallelism=0), stop_grace_period=10**9,
    )
    try:
        wait_for(lambda: len(swarm.running_tasks(client.services.get(service.id))) == 3)
        service.reload()
        spec = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
        client.api.update_service(service.id, service.version, fetch_current_spec=True,
                                  task_template={"ContainerSpec": {**spec,
                                                                   "Image": "dockyard/api:2"}})
        wait_for(lambda: (client.services.get(service.id).attrs.get("UpdateStatus") or {})
                 .get("State") == "completed")
        verdict = checkers.check("orchestration.rolling-update")
        assert verdict.status == checkers.FAIL, str(verdict)
        by_key = {s.key: s for s in verdict.subchecks}
        assert not by_key["config"].passed and "parallelism all" in by_key["config"].reason
        assert by_key["updated"].passed
        assert not by_key["batches"].passed and "1 batch(es)" in by_key["batches"].reason
    finally:
        with contextlib.suppress(NotFound, APIError):
            service.remove()
