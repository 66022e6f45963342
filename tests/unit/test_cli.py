"""The ``dockyard`` command: one clear line and an exit code, never a traceback."""

from __future__ import annotations

import json
from typing import Any

import pytest

DEAD = {"DOCKER_HOST": "unix:///nonexistent.sock"}


def no_traceback(done: Any) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr


def test_check_unknown_exercise(cli: Any) -> None:
    done = cli("check", "nope")
    assert done.returncode == 2
    assert "there is no exercise 'nope'" in done.stderr
    no_traceback(done)


def test_check_close_typo_suggests(cli: Any) -> None:
    done = cli("check", "isolation.namespace")
    assert done.returncode == 2 and "Did you mean isolation.namespaces" in done.stderr


def test_check_without_engine(cli: Any) -> None:
    done = cli("check", "containers.first-container", env=DEAD)
    assert done.returncode == 1
    assert "needs a Docker engine" in done.stdout and "/nonexistent.sock" in done.stdout
    no_traceback(done)


def test_check_json_without_engine(cli: Any) -> None:
    done = cli("check", "--json", "containers.first-container", env=DEAD)
    assert done.returncode == 1
    verdict = json.loads(done.stdout)
    assert verdict["status"] == "needs-engine" and verdict["score"] == 0


def test_doctor_json_without_engine(cli: Any) -> None:
    done = cli("doctor", "--json", env=DEAD)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    engine = next(f for f in report["findings"] if f["name"] == "engine")
    assert not engine["ok"] and "/nonexistent.sock" in engine["detail"]
    assert "Start Docker" in engine["detail"] + engine["fix"], "it says what to do"
    no_traceback(done)


def test_selftest_without_engine(cli: Any) -> None:
    done = cli("selftest", "01", env=DEAD)
    assert done.returncode != 0
    assert "selftest needs a Docker engine" in done.stderr and "/nonexistent.sock" in done.stderr
    no_traceback(done)


def test_exercises_json_is_valid(cli: Any) -> None:
    done = cli("exercises", "--json", "--lab", "02")
    assert done.returncode == 0, done.stderr
    items = json.loads(done.stdout)
    assert items and {i["lab"] for i in items} == {"02-isolation"}


@pytest.mark.parametrize("args", [("reset", "99"), ("progress", "--lab", "99")])
def test_unknown_lab(cli: Any, args: tuple[str, ...]) -> None:
    done = cli(*args)
    assert done.returncode == 2
    assert "there is no lab '99'" in done.stderr and "02-isolation" in done.stderr
    no_traceback(done)


def test_reset_without_engine_touches_nothing(cli: Any) -> None:
    done = cli("reset", "01", env=DEAD)
    assert done.returncode == 1
    assert "were not touched" in done.stderr
    no_traceback(done)


def test_progress_json_starts_empty(cli: Any) -> None:
    done = cli("progress", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows and all(r["attempts"] == 0 and not r["passed"] for r in rows)


def test_a_check_from_the_cli_is_saved(cli: Any, dockyard_home: Any) -> None:
    workspace = dockyard_home.parent / "workspace"
    workspace.mkdir()
    (workspace / "hello-dockyard.txt").write_text("ready\n")
    assert cli("check", "welcome.first-check").returncode == 0
    rows = json.loads(cli("progress", "--json", "--lab", "00").stdout)
    assert rows == [{"id": "welcome.first-check", "lab": "00-welcome", "points": 2, "best": 2.0,
                     "attempts": 1, "passed": True, "last": rows[0]["last"]}]


def test_a_corrupt_store_is_reported_by_progress(cli: Any, dockyard_home: Any) -> None:
    dockyard_home.mkdir()
    (dockyard_home / "progress.db").write_bytes(b"not sqlite" * 100)
    done = cli("progress")
    assert done.returncode == 0
    assert "damaged" in done.stderr and "corrupt-" in done.stderr
    no_traceback(done)


def test_selftest_of_a_static_lab_needs_no_engine(cli: Any) -> None:
    done = cli("selftest", "00", "--json", env=DEAD)
    assert done.returncode == 0, done.stderr
    assert [r["ok"] for r in json.loads(done.stdout)] == [True]
    rows = json.loads(cli("progress", "--json", "--lab", "00").stdout)
    assert rows[0]["attempts"] == 0, "selftest attempts are not a student's progress"
