"""Faults a student meets on a real engine each get a specific message, never a traceback."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import docker
import pytest
import requests
from docker.errors import APIError

import checkers
from checkers import isolation
from kernel_helpers import engine as eng
from kernel_helpers import progress

pytestmark = pytest.mark.docker

API_NAMES = ("dy-api-v1", "dy-api-v2")


@contextlib.contextmanager
def hold_port(port: int = 0) -> Iterator[int | None]:
    """Listen on 127.0.0.1:PORT (any free port for 0); None if someone else already holds it."""
    with socket.socket() as held:
        try:
            held.bind(("127.0.0.1", port))
        except OSError:
            yield None  # taken already, which is just as good for the test
            return
        held.listen()
        yield int(held.getsockname()[1])


def test_a_published_port_already_in_use(
    client: Any, made: Any, clear_names: Any, lab_reset: None
) -> None:
    clear_names(*API_NAMES)
    progress.store().start_lab(isolation.LAB)
    with hold_port() as port:
        assert port is not None
        for name, image, _ in isolation.API_VERSIONS.values():
            with pytest.raises(APIError) as caught:
                client.containers.run(image, name=name, detach=True,
                                      ports={"8000/tcp": ("127.0.0.1", port)})
            made(client.containers.get(name))  # created, but it could not start
            # What the student sees from `docker run`: the engine names the port.
            assert f"127.0.0.1:{port}" in str(caught.value)
            assert "already in use" in str(caught.value) or "allocated" in str(caught.value)

        verdict = checkers.check("isolation.side-by-side")
    assert verdict.status == checkers.FAIL, str(verdict)
    by_key = {s.key: s for s in verdict.subchecks}
    for key, name in (("v1", "dy-api-v1"), ("v2", "dy-api-v2")):
        assert not by_key[key].passed
        assert f"'{name}' is created, but it should be running" in by_key[key].reason
    assert by_key["ports"].reason.startswith("Not checked yet")


def test_solve_picks_free_ports_when_8081_is_taken(
    client: Any, clear_names: Any, lab_reset: None
) -> None:
    clear_names(*API_NAMES)
    with hold_port(8081):
        checkers.solve("isolation.side-by-side")
        v1 = client.containers.get("dy-api-v1")
        published = v1.attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"]
        assert published != "8081"
        verdict = checkers.check("isolation.side-by-side")
    assert verdict.passed, str(verdict)
    assert verdict.evidence["answers"] == {"dy-api-v1": "1", "dy-api-v2": "2"}


def test_solve_replaces_a_graded_leftover_of_the_lab(
    client: Any, made: Any, clear_names: Any, lab_reset: None
) -> None:
    """An unlabelled dy-api-v1 made after the lab started, and graded, is the lab's to replace."""
    clear_names(*API_NAMES)
    progress.store().start_lab(isolation.LAB)
    stale = made(client.containers.create("dockyard/api:1", name="dy-api-v1"))
    checkers.check("isolation.side-by-side")  # grades, and so records, the stale one
    checkers.solve("isolation.side-by-side")
    assert client.containers.get("dy-api-v1").id != stale.id


@pytest.mark.parametrize(
    ("exercise", "name", "image"),
    [
        ("containers.first-container", "dy-hello", "busybox:latest"),
        # From a lab image: it inherits the `dockyard.lab=_images` label, yet stays the student's.
        ("isolation.side-by-side", "dy-api-v1", "dockyard/api:1"),
    ],
)
def test_solve_refuses_to_touch_a_students_container(
    client: Any, made: Any, clear_names: Any, lab_reset: None,
    exercise: str, name: str, image: str,
) -> None:
    clear_names(name)
    mine = made(client.containers.create(image, name=name))  # before the lab starts
    checkers.check(exercise)  # grading it does not make it the lab's
    with pytest.raises(checkers.RunError) as caught:
        checkers.solve(exercise)
    message = str(caught.value)
    assert f"a container named '{name}' exists that Dockyard did not create" in message
    assert f"docker rm -f {name}" in message
    mine.reload()
    assert mine.status == "created", "the student's container is untouched"
    assert eng.find_container(eng.connect(), name).id == mine.id
    report = checkers.reset()
    assert mine.id not in {r.resource_id for r in report.removed}


def test_an_image_that_is_not_there_is_not_pulled(client: Any, clear_names: Any) -> None:
    clear_names("dy-missing-image")
    ctx = checkers.SolveContext(checkers.get("containers.first-container"),
                                store=progress.store())
    with pytest.raises(checkers.SolveError) as caught:
        ctx.run("dockyard/does-not-exist:1", ["true"], name="dy-missing-image")
    message = str(caught.value)
    assert "'dockyard/does-not-exist:1' is not on this engine" in message
    assert "will not pull" in message and "docker pull dockyard/does-not-exist:1" in message
    assert "docker load" in message
    assert eng.find_container(eng.connect(), "dy-missing-image") is None


def test_a_solve_needing_a_missing_image_is_a_run_error(make_exercise: Any) -> None:
    ghost = make_exercise("isolation.ghost-image", lab=isolation.LAB)

    @ghost.solve
    def _(ctx: checkers.SolveContext) -> None:
        ctx.run("dockyard/does-not-exist:1", name="dy-ghost")

    with pytest.raises(checkers.RunError, match=r"solve failed: the image .* will not pull"):
        checkers.solve("isolation.ghost-image")


def test_engine_stops_answering_mid_check(monkeypatch: pytest.MonkeyPatch) -> None:
    exercise = checkers.get("containers.first-container")

    def dies(ctx: checkers.CheckContext) -> None:
        raise requests.exceptions.ConnectionError(
            "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))"
        )

    monkeypatch.setattr(exercise, "check_fn", dies)
    verdict = checkers.check(exercise.id)
    assert verdict.status == checkers.ERROR
    assert "The Docker engine stopped answering during the check" in verdict.message
    assert "Connection aborted" in verdict.message
    assert not any(s.passed for s in verdict.subchecks)


def test_engine_gone_under_a_live_sdk_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's own error when the socket vanishes between connect and the check's call."""
    exercise = checkers.get("containers.first-container")
    gone = docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41", timeout=2)

    def reads_through_a_dead_socket(ctx: checkers.CheckContext) -> None:
        gone.containers.list(all=True)

    monkeypatch.setattr(exercise, "check_fn", reads_through_a_dead_socket)
    verdict = checkers.check(exercise.id)
    assert verdict.status == checkers.ERROR
    assert "stopped answering" in verdict.message
    (attempt,) = progress.store().attempts(exercise.id)
    assert attempt.status == checkers.ERROR
