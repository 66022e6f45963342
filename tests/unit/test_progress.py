"""The progress store survives restarts, concurrent writers, kill -9 and damaged files."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import checkers
from kernel_helpers import progress
from kernel_helpers.engine import Owned

LAB = "00-welcome"


def record(store: progress.Store, exercise: str = "welcome.first-check", **kw: object) -> None:
    args = {"score": 1.0, "max_score": 2.0, "status": "fail", "verdict": {"v": 1},
            "evidence": {"e": 1}, **kw}
    store.record_attempt(exercise, LAB, **args)  # type: ignore[arg-type]


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def count_rows(path: Path, where: str = "1") -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM attempts WHERE {where}").fetchone()[0])
    finally:
        conn.close()


def test_store_lives_under_dockyard_home(dockyard_home: Path) -> None:
    assert progress.store().path == dockyard_home / "progress.db"


def test_attempts_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "progress.db"
    first = progress.Store(path)
    started = first.start_lab(LAB)
    record(first, score=2.0, status="pass")
    record(first, score=1.0, source="cli")
    record(first, score=0.0, source="selftest")
    del first

    again = progress.Store(path)  # a new kernel: nothing cached
    assert again.lab_started(LAB) == started
    assert again.start_lab(LAB) == started, "a second start must keep the first time"
    assert [a.score for a in again.attempts()] == [0.0, 1.0, 2.0]
    (summary,) = again.summary(LAB)
    assert (summary.best_score, summary.attempts, summary.passed) == (2.0, 2, True)


def test_record_owned_only_after_the_lab_started(tmp_path: Path) -> None:
    store = progress.Store(tmp_path / "progress.db")
    late = datetime.now(timezone.utc)
    mine = Owned("container", "a" * 64, LAB, "welcome.first-check")
    assert not store.record_owned(mine, late), "no lab start recorded: nothing is ours"
    started = datetime.fromisoformat(store.start_lab(LAB))
    older = Owned("volume", "dy-data", LAB, "welcome.first-check")
    assert not store.record_owned(older, started - timedelta(seconds=1))
    assert store.record_owned(mine, started + timedelta(seconds=1))
    assert [o.resource_id for o in store.owned(LAB)] == ["a" * 64]
    store.forget_owned(["a" * 64])
    assert store.owned(LAB) == []


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from kernel_helpers import progress

    store = progress.Store(Path(sys.argv[1]))
    tag, count = sys.argv[2], int(sys.argv[3])
    for i in range(count):
        store.record_attempt(tag, "00-welcome", i, count, "fail", {"i": i}, {}, source=tag)
        print(i + 1, flush=True)
    """
)


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "progress.db"
    progress.Store(path).start_lab(LAB)  # create the file before the race
    per_writer = 150
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, str(per_writer)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for tag in ("writer-a", "writer-b")
    ]
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        assert out.split()[-1] == str(per_writer)
    for tag in ("writer-a", "writer-b"):
        scores = sorted(a.verdict["i"] for a in progress.Store(path).attempts(tag))
        assert scores == list(range(per_writer)), f"{tag} lost rows"
    assert integrity(path) == "ok"


def test_kill_9_mid_write_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "progress.db"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), "victim", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    committed = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            committed = int(line)
            if committed >= 200:
                break
        os.kill(child.pid, signal.SIGKILL)
        rest, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    committed = max([committed, *(int(n) for n in rest.split())])
    assert child.returncode == -signal.SIGKILL, err
    assert committed >= 200, err

    assert integrity(path) == "ok"
    assert count_rows(path, "exercise = 'victim'") >= committed
    reopened = progress.Store(path)
    record(reopened)  # and the store keeps working
    assert not reopened.warning
    assert len(reopened.attempts("welcome.first-check")) == 1


def test_a_corrupt_file_is_moved_aside_and_a_new_one_started(tmp_path: Path) -> None:
    path = tmp_path / "progress.db"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    store = progress.Store(path)
    record(store)

    kept = list(tmp_path.glob("progress.corrupt-*.db"))
    assert len(kept) == 1, "the damaged file is kept, never deleted"
    assert kept[0].read_bytes().startswith(b"this is not a database")
    assert "damaged" in store.warning and str(kept[0]) in store.warning
    assert len(store.attempts()) == 1
    assert integrity(path) == "ok"


def test_damage_found_mid_write_is_reported_not_raised(tmp_path: Path) -> None:
    """A valid header but a broken table page: the INSERT itself hits the damage."""
    path = tmp_path / "progress.db"
    store = progress.Store(path)
    for _ in range(3):
        record(store)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'attempts'").fetchone()
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with path.open("r+b") as db:
        db.seek((root - 1) * page_size)
        db.write(b"\xff" * 16)  # an impossible b-tree page header

    damaged = progress.Store(path)
    with pytest.raises(progress.ProgressUnavailable, match="not saved"):
        record(damaged)
    assert list(tmp_path.glob("progress.corrupt-*.db")), "the damaged file is kept"
    record(damaged)  # the next attempt starts a fresh database
    assert len(damaged.attempts()) == 1


def test_a_locked_database_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "progress.db"
    record(progress.Store(path))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = progress.Store(path, busy_timeout_s=0.2)
        with pytest.raises(progress.ProgressUnavailable) as caught:
            record(store)
        message = str(caught.value)
        assert str(path) in message and "locked" in message and "not saved" in message
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    record(progress.Store(path))
    assert count_rows(path) == 2


def test_runner_notes_a_locked_database_instead_of_raising(
    dockyard_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = dockyard_home / "progress.db"
    record(progress.Store(path))
    monkeypatch.setattr(progress, "_default", progress.Store(path, busy_timeout_s=0.2))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        verdict = checkers.check("welcome.first-check")  # needs no engine
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert verdict.status == checkers.FAIL
    saved = [n for n in verdict.notes if n.startswith("Not saved: ")]
    assert saved and str(path) in saved[0]
    assert count_rows(path) == 1, "the locked attempt was not written"


def test_runner_reports_a_damaged_database(dockyard_home: Path) -> None:
    path = dockyard_home / "progress.db"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage" * 512)
    verdict = checkers.check("welcome.first-check")
    assert any("was damaged" in n for n in verdict.notes)
    assert list(dockyard_home.glob("progress.corrupt-*.db"))
    assert len(progress.store().attempts("welcome.first-check")) == 1
