"""Shared fixtures: an isolated Dockyard home per test, and the Docker engine gate.

Every test gets its own ``DOCKYARD_HOME`` and ``DOCKYARD_WORKSPACE`` under
``tmp_path``, so no test reads or writes a real student's progress. Tests marked
``@pytest.mark.docker`` (or using the ``engine`` fixture) skip with the engine's own
message when no engine answers, and fail instead when ``DOCKYARD_REQUIRE_DOCKER=1``
(CI sets it, so a broken engine can never turn the suite green by skipping).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel_helpers import engine as eng
from kernel_helpers import progress

pytest_plugins = ["kube_fixtures"]

#: `dockyard ...` as a student would type it; `python -c` if the script is not on PATH.
_DOCKYARD = shutil.which("dockyard")
CLI = [_DOCKYARD] if _DOCKYARD else [
    sys.executable, "-c", "from kernel_helpers.cli import main; main()",
]


@pytest.fixture(autouse=True)
def dockyard_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the progress store and the workspace at this test's own folders."""
    home = tmp_path / "dockyard-home"
    monkeypatch.setenv("DOCKYARD_HOME", str(home))
    monkeypatch.setenv("DOCKYARD_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.delenv("DOCKYARD_LANG", raising=False)
    monkeypatch.delenv("DOCKYARD_CHECK_TIMEOUT", raising=False)
    monkeypatch.delenv("DOCKYARD_AUTOSOLVE", raising=False)
    # A store cached by an earlier test points at that test's folder; drop it.
    monkeypatch.setattr(progress, "_default", None)
    return home


# -- the Docker engine gate -------------------------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that asks for the engine is a docker test, so `-m "not docker"` skips it."""
    for item in items:
        if "engine" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def _engine_probe() -> tuple[eng.Engine | None, str]:
    """Ask once per session whether an engine answers, and remember why not."""
    try:
        return eng.connect(), ""
    except eng.EngineUnavailable as exc:
        return None, str(exc)


@pytest.fixture
def engine(_engine_probe: tuple[eng.Engine | None, str]) -> eng.Engine:
    """The connected engine; skips (or fails under DOCKYARD_REQUIRE_DOCKER=1) without one."""
    found, why = _engine_probe
    if found is None:
        if os.environ.get("DOCKYARD_REQUIRE_DOCKER", "") not in ("", "0"):
            pytest.fail(f"DOCKYARD_REQUIRE_DOCKER is set but {why}", pytrace=False)
        pytest.skip(f"no Docker engine: {why}")
    return found


@pytest.fixture(autouse=True)
def _docker_gate(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("docker"):
        request.getfixturevalue("engine")


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``dockyard ARGS`` in a subprocess with this test's environment."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
        )

    return run


@pytest.fixture
def make_exercise() -> Iterator[Callable[..., Any]]:
    """Declare a throwaway exercise; it leaves the registry when the test ends."""
    from checkers._core import registry
    from checkers._core.model import Exercise, Text

    registry.load_all()
    made: list[str] = []

    def make(exercise_id: str, lab: str = "00-welcome", **kwargs: Any) -> Exercise:
        kwargs.setdefault("subchecks", {"only": 1})
        kwargs.setdefault("text", Text(
            title=f"Throwaway {exercise_id}", task="A test exercise.",
            subchecks={key: f"step {key}" for key in kwargs["subchecks"]},
            hints=("There is nothing to do.",),
        ))
        made.append(exercise_id)
        return Exercise(id=exercise_id, lab=lab, **kwargs)

    yield make
    for exercise_id in made:
        registry._exercises.pop(exercise_id, None)
