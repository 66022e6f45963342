"""Reset removes what the lab owns and nothing else, whatever the names look like.

A student's own resources are made *before* the lab starts, with names that copy or
resemble the lab's (``dy-hello`` itself, ``dy-hello-mine``, ``my-dy-api-v1``...).
After checks, a solve and two resets, every one of them is still there, while the
lab's labelled containers and the graded container made after the start are gone.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from docker.errors import NotFound

import checkers
from kernel_helpers import engine as eng
from kernel_helpers import progress

pytestmark = pytest.mark.docker

LAB = "01-containers-vs-vms"
DECOY_IMAGE = "dy-decoy:mine"
TEST_NAMES = ("dy-hello", "dy-hello-mine", "my-dy-api-v1", "dy-kernel-busybox",
              "dy-kernel-debian", "dy-life", "dy-scratch")


def exists(getter: Any, resource_id: str) -> bool:
    try:
        getter(resource_id)
        return True
    except NotFound:
        return False


@pytest.fixture
def decoys(client: Any, made: Any, clear_names: Any) -> dict[str, Any]:
    """The student's own things, all made before the lab starts, none labelled by Dockyard."""
    clear_names(*TEST_NAMES)
    for name in ("dy-data-decoy",):
        if exists(client.volumes.get, name):
            client.volumes.get(name).remove(force=True)
    for network in client.networks.list(names=["dy-net-decoy"]):
        network.remove()

    hello = made(client.containers.run("busybox:latest", ["echo", "Hello, Dockyard!"],
                                       name="dy-hello", detach=True))
    hello.wait(timeout=30)
    image, _ = client.images.build(
        fileobj=io.BytesIO(b"FROM busybox:latest\nLABEL purpose=decoy\n"), tag=DECOY_IMAGE,
        pull=False, rm=True,
    )
    made(image)
    return {
        "dy-hello": hello,
        "dy-hello-mine": made(client.containers.create("busybox:latest", ["true"],
                                                       name="dy-hello-mine")),
        # Run from a lab image, so it inherits that image's `dockyard.lab=_images` label.
        "my-dy-api-v1": made(client.containers.create("dockyard/api:1", name="my-dy-api-v1")),
        "volume": made(client.volumes.create("dy-data-decoy")),
        "network": made(client.networks.create("dy-net-decoy")),
        "image": image,
    }


def test_reset_spares_everything_the_student_made(
    client: Any, made: Any, decoys: dict[str, Any], lab_reset: None, cli: Any
) -> None:
    store = progress.store()
    store.start_lab(LAB)

    # The pre-existing dy-hello is graded, but stays the student's.
    verdict = checkers.check("containers.first-container")
    assert verdict.status == checkers.PASS, str(verdict)
    assert any("older than this lab" in n and decoys["dy-hello"].id[:12] in n
               for n in verdict.notes), verdict.notes
    assert decoys["dy-hello"].id not in {o.resource_id for o in store.owned(LAB)}

    # A container the student makes *after* the start, then has graded: the lab's to reset.
    kernel_box = made(client.containers.run("busybox:latest", ["uname", "-r"],
                                            name="dy-kernel-busybox", detach=True))
    kernel_box.wait(timeout=30)
    shared = checkers.check("containers.shared-kernel")
    assert shared.subchecks[0].passed and shared.status == checkers.FAIL, str(shared)
    assert kernel_box.id in {o.resource_id for o in store.owned(exercise=shared.exercise)}

    # A labelled container, made by the reference solution.
    checkers.solve("containers.lifecycle")
    life = eng.find_container(eng.connect(), "dy-life")
    assert life is not None and life.labels[eng.LAB_LABEL] == LAB

    done = cli("reset")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"removed container dy-life ({life.id[:12]}, labelled)" in done.stdout
    assert f"removed container dy-kernel-busybox ({kernel_box.id[:12]}, graded)" in done.stdout

    again = checkers.reset()
    assert again.problems == []
    assert not {r.resource_id for r in again.removed} & {d.id for d in decoys.values()}

    assert not exists(client.containers.get, life.id)
    assert not exists(client.containers.get, kernel_box.id)
    assert store.owned() == []
    for name in ("dy-hello", "dy-hello-mine", "my-dy-api-v1"):
        assert exists(client.containers.get, decoys[name].id), f"reset removed {name}"
    assert exists(client.volumes.get, decoys["volume"].id)
    assert exists(client.networks.get, decoys["network"].id)
    assert exists(client.images.get, decoys["image"].id)
    assert DECOY_IMAGE in client.images.get(decoys["image"].id).tags
    for name in ("dockyard/api:1", "dockyard/api:2", "dockyard/tools:1"):
        assert exists(client.images.get, name), "lab images survive a reset without --images"


def test_a_lab_reset_leaves_other_labs_alone(
    client: Any, lab_reset: None, clear_names: Any
) -> None:
    clear_names("dy-life", "dy-scratch", "dy-ns", "dy-ns-peer")
    checkers.solve("containers.lifecycle")
    checkers.solve("isolation.namespaces")
    report = checkers.reset("02")
    removed = {r.name for r in report.removed}
    assert {"dy-ns", "dy-ns-peer"} <= removed and "dy-life" not in removed, report
    assert eng.find_container(eng.connect(), "dy-life") is not None
    assert eng.find_container(eng.connect(), "dy-ns") is None


def test_graded_resources_older_than_the_lab_are_never_recorded(
    client: Any, decoys: dict[str, Any]
) -> None:
    store = progress.store()
    store.start_lab(LAB)
    ctx = checkers.CheckContext(checkers.get("containers.first-container"))
    for kind, item in (("volume", decoys["volume"]), ("network", decoys["network"]),
                       ("image", decoys["image"])):
        created = eng.parse_time(item.attrs.get("CreatedAt") or item.attrs["Created"])
        ctx.grade(kind, item.id, created)
    refused = store.record_attempt(
        "containers.first-container", LAB, 0, 5, "fail", {}, {}, graded=ctx.graded,
    )
    assert {o.resource_id for o in refused} == {
        decoys["volume"].id, decoys["network"].id, decoys["image"].id
    }
    assert store.owned() == []
    assert checkers.reset().removed == []
