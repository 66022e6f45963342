"""Lab 03 on a real engine: selftest, and bad input graded with the engine's own words."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import checkers
from checkers import portability
from kernel_helpers import engine as eng

pytestmark = pytest.mark.docker

LAB = "03-portability"


@pytest.fixture
def clean_lab(engine: eng.Engine) -> Iterator[None]:
    """Each exercise's cleanup before and after: it removes only what the lab labelled."""
    for exercise in checkers.all_exercises(LAB):
        checkers.cleanup(exercise.id)
    yield
    for exercise in checkers.all_exercises(LAB):
        checkers.cleanup(exercise.id)
    checkers.reset(LAB)


def test_selftest_lab03(cli: Any) -> None:
    done = cli("selftest", LAB, "--json")
    assert "Traceback" not in done.stderr
    rows = json.loads(done.stdout)
    problems = {r["exercise"]: r["problem"] for r in rows if not r["ok"]}
    assert done.returncode == 0 and not problems, problems or done.stderr
    assert len(rows) >= 6
    for row in rows:
        assert row["before"].startswith("fail ") and row["after"].startswith("pass "), row


def test_a_dockerfile_that_does_not_build_fails_with_the_engine_message(clean_lab: None) -> None:
    portability.copy_starters("api")
    (portability.api_dir() / "Dockerfile").write_text(
        "FROM debian:bookworm-slim\n"
        "WORKDIR /app\n"
        "COPY app.py not-in-the-context.txt ./\n"
        "USER nobody\nEXPOSE 8000\nCMD [\"python3\", \"app.py\"]\n"
    )
    verdict = checkers.check("portability.dockerfile")
    assert verdict.status == checkers.FAIL
    builds = next(s for s in verdict.subchecks if s.key == "builds")
    assert not builds.passed
    assert "The engine could not build it" in builds.reason
    assert "not-in-the-context.txt" in builds.reason and "COPY failed" in builds.reason
    # The static half still graded: this file is fine on every structural rule.
    assert all(s.passed for s in verdict.subchecks if s.key in ("exists", "pinned", "non-root"))
    # A second check reuses the cached build result instead of building again.
    again = checkers.check("portability.dockerfile")
    assert again.evidence["check_build"] == verdict.evidence["check_build"]


def test_a_taken_port_fails_with_the_engine_message(clean_lab: None, client: Any) -> None:
    checkers.solve("portability.environments")
    dev = client.containers.get("dy-port-dev")
    taken = dev.attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"]
    prod = client.containers.get("dy-port-prod")
    image, volumes = prod.attrs["Image"], prod.attrs["HostConfig"]["Binds"]
    prod.remove(force=True)
    # What `docker run -p 127.0.0.1:<dev's port>:8000 ...` leaves behind: a created container.
    again = client.containers.create(
        image, name="dy-port-prod", environment={"APP_ENV": "prod"},
        labels=eng.labels(LAB, "portability.environments"),
        ports={"8000/tcp": ("127.0.0.1", int(taken))},
        volumes=volumes,
    )
    with pytest.raises(Exception, match=r"already allocated|address already in use"):
        again.start()
    verdict = checkers.check("portability.environments")
    running = next(s for s in verdict.subchecks if s.key == "running")
    assert not running.passed
    assert "dy-port-prod" in running.reason and "The engine said:" in running.reason
    assert "allocated" in running.reason or "in use" in running.reason


def test_a_rebuild_without_the_cache_is_not_reuse(clean_lab: None, client: Any) -> None:
    checkers.solve("portability.layers")
    context = portability.reference_context("1.1")
    try:
        # Same files, but every step built again: nothing comes from the cache.
        for chunk in client.api.build(
            path=str(context), tag=portability.NEXT_TAG, nocache=True, rm=True, decode=True,
            labels=eng.labels(LAB, "portability.layers"),
        ):
            assert "error" not in chunk, chunk
    finally:
        import shutil

        shutil.rmtree(context, ignore_errors=True)
    verdict = checkers.check("portability.layers")
    reused = next(s for s in verdict.subchecks if s.key == "reused")
    assert not reused.passed and "built again" in reused.reason


def test_an_image_older_than_the_dockerfile_is_stale(clean_lab: None) -> None:
    import os
    import time

    checkers.solve("portability.dockerfile")
    assert checkers.check("portability.dockerfile").passed
    path = portability.api_dir() / "Dockerfile"
    later = time.time() + 5
    os.utime(path, (later, later))
    verdict = checkers.check("portability.dockerfile")
    tagged = next(s for s in verdict.subchecks if s.key == "tagged")
    assert not tagged.passed and "before your last edit of the Dockerfile" in tagged.reason
    # The file itself is unchanged, so "builds" came from the engine's cache or the check's.
    assert next(s for s in verdict.subchecks if s.key == "builds").passed


def test_a_slow_build_is_stopped_with_advice(clean_lab: None) -> None:
    portability.copy_starters("api")
    (portability.api_dir() / "Dockerfile").write_text(
        "FROM debian:bookworm-slim\nRUN sleep 60\nWORKDIR /app\nCOPY app.py ./\n"
        "USER nobody\nEXPOSE 8000\nCMD [\"python3\", \"app.py\"]\n"
    )
    verdict = checkers.check("portability.dockerfile")
    assert verdict.status == checkers.FAIL, verdict.message
    builds = next(s for s in verdict.subchecks if s.key == "builds")
    assert "took longer than the check may wait" in builds.reason
    assert verdict.duration_ms < 29_000


def test_reset_leaves_the_students_own_images_and_containers(clean_lab: None, client: Any,
                                                             made: Any, clear_names: Any) -> None:
    """Look-alike names made before the lab starts survive a solve, checks and a reset."""
    import io

    clear_names("dy-port-mine", "my-dy-port-api")
    image, _ = client.images.build(fileobj=io.BytesIO(b"FROM busybox:latest\nLABEL mine=1\n"),
                                   tag="dy-port/api:mine", pull=False, rm=True)
    made(image)
    mine = made(client.containers.run("busybox:latest", ["sleep", "600"], name="dy-port-mine",
                                      detach=True))
    other = made(client.containers.create("busybox:latest", ["true"], name="my-dy-port-api"))
    checkers.solve("portability.tags")
    assert checkers.check("portability.tags").passed
    checkers.reset(LAB)
    for exercise in checkers.all_exercises(LAB):
        checkers.cleanup(exercise.id)
    assert client.images.get("dy-port/api:mine").id == image.id
    assert client.containers.get(mine.id).status == "running"
    assert client.containers.get(other.id).name == "my-dy-port-api"
    from docker.errors import NotFound

    with pytest.raises(NotFound):
        client.containers.get("dy-port-byid")
