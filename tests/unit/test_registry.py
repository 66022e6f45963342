"""The registry: every exercise is findable, complete, and listed in one public shape."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

import checkers
from checkers._core import registry


@pytest.fixture(scope="module")
def listed() -> list[dict[str, Any]]:
    """``dockyard exercises --json``, run once for the module."""
    script = shutil.which("dockyard")
    command = [script] if script else [sys.executable, "-c",
                                       "from kernel_helpers.cli import main; main()"]
    done = subprocess.run([*command, "exercises", "--json"], capture_output=True, text=True,
                          env={**os.environ, "DOCKYARD_LANG": "en"}, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_exercises_json_shape(listed: list[dict[str, Any]]) -> None:
    assert isinstance(listed, list) and listed
    for item in listed:
        assert {"id", "lab", "title", "points", "hints", "subchecks"} <= set(item)
        assert isinstance(item["points"], int) and item["points"] > 0
        assert item["hints"] and all(isinstance(h, str) and h for h in item["hints"])
        for sub in item["subchecks"]:
            assert set(sub) == {"key", "title", "points"}
        assert sum(s["points"] for s in item["subchecks"]) == item["points"], item["id"]
    assert [i["id"] for i in listed] == [e.id for e in checkers.all_exercises()]


def test_lab_sizes(listed: list[dict[str, Any]]) -> None:
    per_lab = Counter(item["lab"] for item in listed)
    assert per_lab["01-containers-vs-vms"] >= 4
    assert per_lab["02-isolation"] >= 5
    assert set(per_lab) <= set(registry.LAB_MODULES)


def test_ids_are_lab_slug_dot_slug() -> None:
    prefixes: dict[str, set[str]] = {}
    for exercise in checkers.all_exercises():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*\.[a-z0-9]+(-[a-z0-9]+)*", exercise.id), (
            exercise.id
        )
        prefix = exercise.id.partition(".")[0]
        lab_slug = exercise.lab.partition("-")[2]
        assert lab_slug.startswith(prefix), f"{exercise.id} does not name its lab {exercise.lab}"
        prefixes.setdefault(exercise.lab, set()).add(prefix)
    assert all(len(p) == 1 for p in prefixes.values()), f"one prefix per lab: {prefixes}"


def test_every_exercise_is_complete() -> None:
    for exercise in checkers.all_exercises():
        assert exercise.check_fn is not None, exercise.id
        assert exercise.solve_fn is not None, exercise.id
        assert exercise.text.hints and exercise.points > 0
        assert set(exercise.subchecks) == set(exercise.text.subchecks)
        assert all(points > 0 for points in exercise.subchecks.values()), exercise.id


def test_course_order() -> None:
    labs = [e.lab for e in checkers.all_exercises()]
    order = list(registry.LAB_MODULES)
    assert labs == sorted(labs, key=order.index)
    assert [e.lab for e in checkers.all_exercises("02")] == ["02-isolation"] * labs.count(
        "02-isolation"
    )


def test_unknown_exercise_suggests_close_ids() -> None:
    with pytest.raises(checkers.UnknownExercise) as caught:
        checkers.get("containers.first-contianer")
    message = str(caught.value)
    assert "there is no exercise 'containers.first-contianer'" in message
    assert "containers.first-container" in message and "dockyard exercises" in message


def test_unknown_exercise_without_close_match_still_helps() -> None:
    with pytest.raises(checkers.UnknownExercise, match="dockyard exercises"):
        checkers.get("zzz")


@pytest.mark.parametrize("name", ["02", "2", "isolation", "02-isolation"])
def test_resolve_lab_accepts_number_slug_and_name(name: str) -> None:
    assert checkers.resolve_lab(name) == "02-isolation"


@pytest.mark.parametrize("name", ["99", "isolaton", "03-kubernetes", ""])
def test_resolve_lab_rejects_with_the_list_of_labs(name: str) -> None:
    with pytest.raises(checkers.UnknownLab) as caught:
        checkers.resolve_lab(name)
    assert f"there is no lab '{name}'" in str(caught.value)
    assert "01-containers-vs-vms" in str(caught.value)
