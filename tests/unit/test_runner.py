"""The runner turns timeouts, engine faults and bad steps into verdicts and messages."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import requests

import checkers
from checkers._core import runner
from kernel_helpers import engine as eng
from kernel_helpers import progress

DEAD_SOCKET = "unix:///nonexistent.sock"


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> str:
    """A DOCKER_HOST where nothing listens, and no engine left over from earlier tests."""
    monkeypatch.setenv("DOCKER_HOST", DEAD_SOCKET)
    monkeypatch.setattr(eng, "_cached", None)
    return DEAD_SOCKET


def test_a_check_that_overruns_its_timeout(
    make_exercise: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKYARD_CHECK_TIMEOUT", "0.5")
    release, finished = threading.Event(), threading.Event()
    slow = make_exercise("welcome.slow-check", needs_engine=False, subchecks={"a": 1, "b": 2})

    @slow.check
    def _(ctx: checkers.CheckContext) -> None:
        release.wait(60)  # hangs like an engine call that never returns
        finished.set()

    try:
        verdict = checkers.check("welcome.slow-check")
        # The verdict came back while the check was still stuck: nothing waited for it.
        assert not finished.is_set()
    finally:
        release.set()
    assert verdict.status == checkers.TIMEOUT
    assert "did not finish within 0.5 s" in verdict.message
    assert [s.passed for s in verdict.subchecks] == [False, False]
    assert "0.5 s" in verdict.subchecks[0].reason
    assert verdict.subchecks[1].reason.startswith("Not checked yet")
    (attempt,) = progress.store().attempts("welcome.slow-check")
    assert attempt.status == checkers.TIMEOUT


def test_an_engine_lost_mid_check_is_an_error_verdict(make_exercise: Any) -> None:
    lost = make_exercise("welcome.engine-lost", needs_engine=False)

    @lost.check
    def _(ctx: checkers.CheckContext) -> None:
        raise requests.exceptions.ConnectionError(
            "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))"
        )

    verdict = checkers.check("welcome.engine-lost")
    assert verdict.status == checkers.ERROR
    assert "stopped answering" in verdict.message and "Connection aborted" in verdict.message
    assert "stopped answering" in verdict.subchecks[0].reason


def test_a_bug_in_a_check_is_an_error_verdict(make_exercise: Any) -> None:
    buggy = make_exercise("welcome.buggy", needs_engine=False)

    @buggy.check
    def _(ctx: checkers.CheckContext) -> None:
        raise KeyError("State")

    verdict = checkers.check("welcome.buggy")
    assert verdict.status == checkers.ERROR
    assert verdict.message.startswith("The check could not run") and "State" in verdict.message


def test_a_step_the_check_forgot_is_not_a_pass(make_exercise: Any) -> None:
    partial = make_exercise("welcome.partial", needs_engine=False, subchecks={"a": 1, "b": 1})

    @partial.check
    def _(ctx: checkers.CheckContext) -> None:
        ctx.result("a", True)

    verdict = checkers.check("welcome.partial")
    assert verdict.status == checkers.FAIL and verdict.score == 1
    assert "did not report this step" in verdict.subchecks[1].reason


def test_engine_down_gives_needs_engine_with_the_socket(no_engine: str) -> None:
    verdict = checkers.check("containers.first-container")
    assert verdict.status == checkers.NEEDS_ENGINE
    assert "needs a Docker engine" in verdict.message and "/nonexistent.sock" in verdict.message
    assert "DOCKER_HOST" in verdict.message, "the message says where the address came from"
    assert "needs a Docker engine" in verdict.headline()
    assert verdict.score == 0 and not any(s.passed for s in verdict.subchecks)


def test_engine_down_still_grades_static_exercises(no_engine: str, dockyard_home: Path) -> None:
    workspace = dockyard_home.parent / "workspace"
    workspace.mkdir()
    (workspace / "hello-dockyard.txt").write_text("I am READY\n")
    assert checkers.check("welcome.first-check").status == checkers.PASS


def test_engine_down_solve_and_reset_explain(no_engine: str) -> None:
    with pytest.raises(checkers.RunError, match="no Docker engine answered"):
        checkers.solve("containers.first-container")
    report = checkers.reset("01")
    assert report.removed == []
    assert any("were not touched" in p and "/nonexistent.sock" in p for p in report.problems)
    assert runner.engine_missing_for(checkers.all_exercises("01"))
    assert runner.engine_missing_for(checkers.all_exercises("00")) == ""


def test_solve_without_a_solution_says_so(make_exercise: Any) -> None:
    make_exercise("welcome.unsolvable", needs_engine=False)
    with pytest.raises(checkers.RunError, match="has no reference solution"):
        checkers.solve("welcome.unsolvable")


def test_a_solve_step_that_fails_becomes_a_run_error(make_exercise: Any) -> None:
    broken = make_exercise("welcome.broken-solve", needs_engine=False)

    @broken.solve
    def _(ctx: checkers.SolveContext) -> None:
        raise checkers.SolveError("the port is taken")

    with pytest.raises(checkers.RunError, match=r"welcome\.broken-solve: solve failed: the port"):
        checkers.solve("welcome.broken-solve")


def test_welcome_selftest_round_trip() -> None:
    row = runner.selftest_one(checkers.get("welcome.first-check"))
    assert row.ok, row.problem
    assert row.before.startswith("fail") and row.after.startswith("pass")
    summary = progress.store().summary("00-welcome")
    assert summary == [], "selftest attempts do not count as a student's progress"


def test_unknown_exercise_raises_before_anything_runs() -> None:
    with pytest.raises(checkers.UnknownExercise):
        checkers.check("nope")
    assert not progress.store().path.exists()
