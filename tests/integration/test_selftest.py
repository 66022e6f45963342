"""Every exercise proves it can fail and can pass: check → solve → check on a real engine."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("lab", ["01-containers-vs-vms", "02-isolation"])
def test_selftest_lab(cli: Any, lab: str) -> None:
    done = cli("selftest", lab, "--json")
    assert "Traceback" not in done.stderr
    rows = json.loads(done.stdout)
    problems = {r["exercise"]: r["problem"] for r in rows if not r["ok"]}
    assert done.returncode == 0 and not problems, problems or done.stderr
    assert len(rows) >= (4 if lab.startswith("01") else 5)
    for row in rows:
        assert row["before"].startswith("fail ") and row["after"].startswith("pass "), row

