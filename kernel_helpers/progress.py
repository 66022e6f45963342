"""The progress store: every check attempt, lab start times, and graded resources.

An embedded SQLite database under ``$DOCKYARD_HOME`` (or the user data dir). Each
write is one short transaction in WAL mode, so two kernels can write at once, a
``kill -9`` loses nothing already committed, and a kernel restart finds it all
again. The checkers' runner writes here; ``engine.remove_owned`` reads the
``owned`` table to know what a reset may remove.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kernel_helpers.engine import Owned

SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exercise TEXT NOT NULL,
    lab TEXT NOT NULL,
    at TEXT NOT NULL,
    score REAL NOT NULL,
    max_score REAL NOT NULL,
    status TEXT NOT NULL,
    verdict TEXT NOT NULL,
    evidence TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'notebook'
);
CREATE INDEX IF NOT EXISTS attempts_by_exercise ON attempts (exercise, at);
CREATE TABLE IF NOT EXISTS labs (
    lab TEXT PRIMARY KEY,
    started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS owned (
    kind TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    lab TEXT NOT NULL,
    exercise TEXT NOT NULL,
    created_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (kind, resource_id)
);
CREATE TABLE IF NOT EXISTS facts (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    at TEXT NOT NULL
);
"""

#: Attempts from these sources show in a student's progress; selftest runs do not.
STUDENT_SOURCES = ("notebook", "cli", "autosolve")


class ProgressUnavailable(RuntimeError):
    """The database could not be used; the message says which file and why."""


def home() -> Path:
    """Dockyard's data folder: ``$DOCKYARD_HOME``, else the platform's user data dir."""
    env = os.environ.get("DOCKYARD_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("dockyard", appauthor=False))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass
class Attempt:
    exercise: str
    lab: str
    at: str
    score: float
    max_score: float
    status: str
    verdict: dict[str, Any]
    evidence: dict[str, Any]
    source: str


@dataclass
class ExerciseProgress:
    exercise: str
    lab: str
    best_score: float
    max_score: float
    attempts: int
    last_at: str
    passed: bool


class Store:
    """``dockyard progress`` reads it; every check writes one row to it."""

    def __init__(self, path: Path | None = None, busy_timeout_s: float = 10.0) -> None:
        self.path = path or home() / "progress.db"
        self.busy_timeout_s = busy_timeout_s
        #: Set when a damaged database was moved aside; shown to the student once.
        self.warning = ""
        self._ready = False
        self._started: dict[str, str] = {}  # lab start times never change once written
        self._connections: dict[tuple[int, int], sqlite3.Connection] = {}

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, opened once and kept.

        Closing the last connection makes SQLite checkpoint and delete the WAL, which
        costs more than the write itself; a kept connection makes a check's write cheap.
        """
        key = (os.getpid(), threading.get_ident())
        conn = self._connections.get(key)
        if conn is None or not self.path.exists():
            if conn is not None:
                conn.close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s,
                                   isolation_level=None, check_same_thread=False)
            try:
                if not self._ready:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(SCHEMA)
                    self._ready = True
                # WAL + NORMAL: a commit is in the OS's hands before COMMIT returns, so a
                # kill -9 loses nothing committed; only a power cut could drop the last few.
                conn.execute("PRAGMA synchronous=NORMAL")
            except BaseException:
                conn.close()
                raise
            self._connections[key] = conn
        try:
            yield conn
        except sqlite3.DatabaseError:
            self.close()  # never reuse a connection that saw damage or a lock timeout
            raise

    def close(self) -> None:
        """Close every kept connection (tests and tools that move the file call this)."""
        for conn in self._connections.values():
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._connections.clear()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, retried past a corrupt file once."""
        entered = False  # a generator context manager may yield only once
        for attempt in range(2):
            try:
                with self._connect() as conn:
                    conn.execute("BEGIN IMMEDIATE")
                    entered = True
                    try:
                        yield conn
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
                return
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise ProgressUnavailable(
                        f"the progress database {self.path} stayed locked for "
                        f"{self.busy_timeout_s:g} s by another program; this result was not "
                        "saved. Close other Dockyard processes and check again."
                    ) from exc
                raise ProgressUnavailable(f"cannot write {self.path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                if attempt == 0 and self._quarantine(exc):
                    if not entered:
                        continue
                    # The damage showed up mid-write: the file is set aside, the next write
                    # starts afresh, but this one cannot be replayed from here.
                    raise ProgressUnavailable(
                        f"cannot use {self.path}: {exc}; this result was not saved"
                    ) from exc
                raise ProgressUnavailable(f"cannot use {self.path}: {exc}") from exc

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        for attempt in range(2):
            try:
                with self._connect() as conn:
                    return list(conn.execute(sql, args))
            except sqlite3.OperationalError as exc:
                raise ProgressUnavailable(f"cannot read {self.path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                if attempt == 0 and self._quarantine(exc):
                    continue
                raise ProgressUnavailable(f"cannot read {self.path}: {exc}") from exc
        return []

    def _quarantine(self, exc: Exception) -> bool:
        """Move a damaged database aside (never delete it) and start a fresh one."""
        if not self.path.exists():
            return False
        self.close()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kept = self.path.with_name(f"{self.path.stem}.corrupt-{stamp}{self.path.suffix}")
        serial = 1
        while kept.exists():  # never overwrite an earlier kept copy
            serial += 1
            kept = self.path.with_name(
                f"{self.path.stem}.corrupt-{stamp}-{serial}{self.path.suffix}"
            )
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.path) + suffix)
            if part.exists():
                part.rename(Path(str(kept) + suffix))
        self._ready = False
        self._started.clear()
        self.warning = (
            f"The progress database was damaged ({exc}). It was kept as {kept} and a new one "
            "was started; nothing was deleted."
        )
        return True

    # -- writes ---------------------------------------------------------------

    def record_attempt(
        self,
        exercise: str,
        lab: str,
        score: float,
        max_score: float,
        status: str,
        verdict: dict[str, Any],
        evidence: dict[str, Any],
        source: str = "notebook",
        at: str | None = None,
        graded: Iterable[tuple[Owned, datetime]] = (),
    ) -> list[Owned]:
        """Write one attempt and the resources it graded, in a single transaction.

        Returns the graded resources that were *not* recorded as owned because they
        are older than their lab: those belong to the student.
        """
        refused: list[Owned] = []
        with self._transaction() as conn:
            for owned, created in graded:
                if not self._insert_owned(conn, owned, created):
                    refused.append(owned)
            conn.execute(
                "INSERT INTO attempts (exercise, lab, at, score, max_score, status, verdict, "
                "evidence, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    exercise, lab, at or now_iso(), score, max_score, status,
                    json.dumps(verdict, default=str), json.dumps(evidence, default=str), source,
                ),
            )
        return refused

    def start_lab(self, lab: str, at: str | None = None) -> str:
        """Record when a lab started (first time only) and return that time."""
        started = self.lab_started(lab)
        if started:
            return started
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO labs (lab, started_at) VALUES (?, ?)", (lab, at or now_iso())
            )
        return self.lab_started(lab) or ""

    def lab_started(self, lab: str) -> str | None:
        if lab in self._started:
            return self._started[lab]
        rows = self._read("SELECT started_at FROM labs WHERE lab = ?", (lab,))
        if rows:
            self._started[lab] = rows[0][0]
        return rows[0][0] if rows else None

    def record_owned(self, owned: Owned, created_at: datetime) -> bool:
        """Remember a graded resource, but only if it was made after its lab started.

        Anything older belongs to the student, whatever its name says.
        """
        with self._transaction() as conn:
            return self._insert_owned(conn, owned, created_at)

    @staticmethod
    def _insert_owned(conn: sqlite3.Connection, owned: Owned, created_at: datetime) -> bool:
        row = conn.execute("SELECT started_at FROM labs WHERE lab = ?", (owned.lab,)).fetchone()
        if row is None or created_at < datetime.fromisoformat(row[0]):
            return False
        conn.execute(
            "INSERT OR REPLACE INTO owned (kind, resource_id, lab, exercise, created_at, "
            "recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                owned.kind, owned.resource_id, owned.lab, owned.exercise,
                created_at.isoformat(), now_iso(),
            ),
        )
        return True

    def forget_owned(self, resource_ids: list[str]) -> None:
        if not resource_ids:
            return
        with self._transaction() as conn:
            conn.executemany(
                "DELETE FROM owned WHERE resource_id = ?", [(r,) for r in resource_ids]
            )

    def set_fact(self, key: str, value: str) -> None:
        """Remember a fact about what Dockyard did (e.g. "it created this swarm")."""
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO facts (key, value, at) VALUES (?, ?, ?)",
                         (key, value, now_iso()))

    def forget_fact(self, key: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM facts WHERE key = ?", (key,))

    def fact(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM facts WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    # -- reads ----------------------------------------------------------------

    def owned(self, lab: str | None = None, exercise: str | None = None) -> list[Owned]:
        sql = "SELECT kind, resource_id, lab, exercise FROM owned"
        args: tuple[str, ...] = ()
        if exercise:
            sql, args = sql + " WHERE exercise = ?", (exercise,)
        elif lab:
            sql, args = sql + " WHERE lab = ?", (lab,)
        return [Owned(*row) for row in self._read(sql, args)]

    def attempts(self, exercise: str | None = None, limit: int = 1000) -> list[Attempt]:
        sql = (
            "SELECT exercise, lab, at, score, max_score, status, verdict, evidence, source "
            "FROM attempts"
        )
        args: tuple[Any, ...] = ()
        if exercise:
            sql, args = sql + " WHERE exercise = ?", (exercise,)
        rows = self._read(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [
            Attempt(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), json.loads(r[7]), r[8])
            for r in rows
        ]

    def summary(self, lab: str | None = None) -> list[ExerciseProgress]:
        """Best score per exercise from a student's own attempts."""
        marks = ",".join("?" * len(STUDENT_SOURCES))
        sql = (
            "SELECT exercise, lab, MAX(score), MAX(max_score), COUNT(*), MAX(at), "
            "MAX(status = 'pass') FROM attempts WHERE source IN (" + marks + ")"
        )
        args: tuple[Any, ...] = STUDENT_SOURCES
        if lab:
            sql, args = sql + " AND lab = ?", (*args, lab)
        rows = self._read(sql + " GROUP BY exercise ORDER BY exercise", args)
        return [ExerciseProgress(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]


_default: Store | None = None


def store() -> Store:
    """The store for the current ``DOCKYARD_HOME`` (re-read so tests can point it elsewhere)."""
    global _default
    path = home() / "progress.db"
    if _default is None or _default.path != path:
        _default = Store(path)
    return _default
