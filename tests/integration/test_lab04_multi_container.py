"""Lab 04 on a real engine: selftest, a taken port, the CLI agreeing with the static grader,
and a student's own Compose project that the lab never brings down.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import checkers
from checkers import multi_container as mc
from kernel_helpers import compose, progress
from kernel_helpers import engine as eng

pytestmark = pytest.mark.docker
LAB = "04-multi-container"


def needs_compose() -> compose.ComposeCLI:
    cli = compose.detect()
    if cli is None:
        pytest.skip("no Compose CLI (docker compose or docker-compose) on this machine")
    return cli


def test_selftest_lab04(cli: Any) -> None:
    needs_compose()
    done = cli("selftest", LAB, "--json")
    assert "Traceback" not in done.stderr
    rows = json.loads(done.stdout)
    problems = {r["exercise"]: r["problem"] for r in rows if not r["ok"]}
    assert done.returncode == 0 and not problems, problems or done.stderr
    assert len(rows) >= 5
    for row in rows:
        assert row["before"].startswith("fail ") and row["after"].startswith("pass "), row


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that a plain process holds, as another program would."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.fixture
def stack_cleanup(engine: eng.Engine) -> Iterator[None]:
    yield
    for exercise in ("multi-container.compose-up", "multi-container.scale"):
        with contextlib.suppress(checkers.RunError):
            checkers.cleanup(exercise)


def test_a_taken_port_is_a_graded_fail_with_the_engines_message(
    engine: eng.Engine, taken_port: int, stack_cleanup: None
) -> None:
    needs_compose()
    checkers.setup("multi-container.compose-up")  # builds the lab images if missing
    path = mc.compose_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(mc.reference_compose(taken_port), encoding="utf-8")

    done = compose.up(path, mc.PROJECT, timeout=240)
    assert not done.ok
    assert str(taken_port) in done.error, done.error

    verdict = checkers.check("multi-container.compose-up")
    assert verdict.status == checkers.FAIL, str(verdict)
    by_key = {s.key: s for s in verdict.subchecks}
    assert by_key["valid"].passed
    running = by_key["running"]
    assert not running.passed
    assert "was created but did not start. The engine said:" in running.reason, running.reason
    assert f"127.0.0.1:{taken_port}" in running.reason
    assert "address already in use" in running.reason or "already allocated" in running.reason


def test_the_compose_cli_agrees_with_the_static_grader(tmp_path: Path) -> None:
    """`compose config` accepts the reference file and rejects the unknown key we reject."""
    needs_compose()
    good = tmp_path / "good" / "compose.yaml"
    good.parent.mkdir()
    good.write_text(mc.reference_compose(8088), encoding="utf-8")
    assert compose.run(["config", "-q"], files=[good], cwd=good.parent, timeout=60).ok

    bad = tmp_path / "bad" / "compose.yaml"
    bad.parent.mkdir()
    bad.write_text(mc.reference_compose(8088).replace("    healthcheck:", "    helthcheck:", 1),
                   encoding="utf-8")
    done = compose.run(["config", "-q"], files=[bad], cwd=bad.parent, timeout=60)
    assert not done.ok and "helthcheck" in done.error, done.error
    results, _ = mc.grade_compose_file(bad)
    assert {r.key for r in results if not r.passed} >= {"known-keys"}

    broken = tmp_path / "broken" / "compose.yaml"
    broken.parent.mkdir()
    broken.write_text("services:\n  web: [\n", encoding="utf-8")
    done = compose.run(["config", "-q"], files=[broken], cwd=broken.parent, timeout=60)
    assert not done.ok
    results, _ = mc.grade_compose_file(broken)
    assert results[0].key == "parses" and not results[0].passed


STUDENT_FILE = """\
services:
  mine:
    image: busybox:latest
    command: ["sleep", "3600"]
"""


def test_a_students_own_project_is_never_brought_down(engine: eng.Engine, tmp_path: Path) -> None:
    """A project named dy-mc that the student made before the lab: cleanup and reset skip it."""
    needs_compose()
    own = tmp_path / "mine" / "compose.yaml"
    own.parent.mkdir()
    own.write_text(STUDENT_FILE, encoding="utf-8")
    # Start clean, then make the student's project before the lab starts.
    for exercise in ("multi-container.compose-up", "multi-container.scale"):
        checkers.cleanup(exercise)
    assert compose.up(own, mc.PROJECT, timeout=120).ok
    try:
        store = progress.store()
        store.start_lab(LAB)
        before = engine.client.containers.list(
            filters={"label": f"{mc.PROJECT_LABEL}={mc.PROJECT}"})
        assert len(before) == 1
        verdict = checkers.check("multi-container.compose-up")  # grades (and records) nothing new
        assert verdict.status == checkers.FAIL
        checkers.cleanup("multi-container.compose-up")
        checkers.cleanup("multi-container.scale")
        checkers.reset(LAB)
        after = engine.client.containers.list(
            filters={"label": f"{mc.PROJECT_LABEL}={mc.PROJECT}"})
        assert [c.id for c in after] == [c.id for c in before]
    finally:
        compose.down(own, mc.PROJECT, timeout=120)
