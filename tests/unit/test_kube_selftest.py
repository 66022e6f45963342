"""`dockyard selftest` for the Kubernetes labs, on the emulator instead of kind.

The same command an instructor runs before a workshop, in a subprocess: for every
exercise, cleanup → setup → check must fail → solve → check must pass → cleanup. The
fake controllers (tests/kubesim.py) run in this process and act on the emulator the
subprocess talks to. tests/kind runs the same command on a real kind cluster.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import kubesim
import pytest

import checkers


@pytest.mark.timeout(600)
@pytest.mark.parametrize("lab", ["06-kubernetes", "07-deployment-patterns"])
def test_selftest_proves_every_exercise_on_the_emulator(
    lab: str, kubeconfig: Path, fake_cluster: kubesim.FakeCluster,
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    kubesim.finish_bounded_loops(fake_cluster)
    fake_cluster.start()
    done = cli("selftest", lab, "--json", timeout=540)
    assert "Traceback" not in done.stderr
    rows = json.loads(done.stdout)
    problems = {r["exercise"]: r["problem"] for r in rows if not r["ok"]}
    assert done.returncode == 0 and not problems, problems or done.stderr
    assert {r["exercise"] for r in rows} == {e.id for e in checkers.all_exercises(lab)}
    for row in rows:
        assert row["before"].startswith("fail ") and row["after"].startswith("pass "), row
