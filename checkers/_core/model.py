"""The exercise model: one declarative unit per exercise, and the verdict it produces.

An :class:`Exercise` holds its id, lab, sub-checks with points, its student-facing
:class:`Text`, and the four handlers (setup, check, solve, cleanup) registered with
decorators, kopf-style. Lab modules in ``checkers/`` declare exercises; the runner
(``checkers._core.runner``) runs them with a timeout and records the verdict.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from checkers._core import text as common_text

if TYPE_CHECKING:
    from checkers._core.context import CheckContext, SolveContext

CheckHandler = Callable[["CheckContext"], None]
SolveHandler = Callable[["SolveContext"], None]
#: A cleanup may return what it removed (``engine.Removal`` items) so reset can report it.
CleanupHandler = Callable[["SolveContext"], object]

PASS, FAIL, NEEDS_ENGINE, TIMEOUT, ERROR = "pass", "fail", "needs-engine", "timeout", "error"
#: Kubernetes exercises: no cluster answered, or kubectl's current context is not the lab's.
NEEDS_CLUSTER, REFUSED = "needs-cluster", "refused"


@dataclass(frozen=True)
class Text:
    """Everything a student reads about one exercise, kept apart from the check logic.

    ``subchecks`` names each sub-check's goal; ``reasons`` are failure messages, which
    the check picks by key and fills with ``str.format`` fields. A translation is the
    same structure under another language (see ``checkers._core.text``).
    """

    title: str
    task: str
    subchecks: Mapping[str, str]
    hints: tuple[str, ...]
    reasons: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Exercise:
    """One graded exercise. Declare it, then attach handlers with its decorators::

        hello = Exercise("containers.first-container", LAB, {"exists": 1}, Text(...))

        @hello.check
        def _(ctx): ...
    """

    id: str
    lab: str
    subchecks: Mapping[str, int]
    text: Text
    needs_engine: bool = True
    #: Reads a Kubernetes cluster (the lab's kind cluster or an explicitly chosen context).
    needs_cluster: bool = False
    #: Grades files only and never touches the engine (benchmarks leave these out).
    static: bool = False
    #: Images (``labs/images/<name>``) the exercise needs; setup builds any missing.
    images: tuple[str, ...] = ()
    check_fn: CheckHandler | None = field(default=None, repr=False)
    solve_fn: SolveHandler | None = field(default=None, repr=False)
    setup_fn: SolveHandler | None = field(default=None, repr=False)
    cleanup_fn: CleanupHandler | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.needs_cluster:
            self.needs_engine = False  # the cluster may be remote; Docker is kind's concern
        missing = set(self.subchecks) ^ set(self.text.subchecks)
        if missing:
            raise ValueError(f"{self.id}: sub-checks and their text differ on {sorted(missing)}")
        if not self.text.hints:
            raise ValueError(f"{self.id}: an exercise needs at least one hint")
        from checkers._core import registry

        registry.register(self)

    @property
    def points(self) -> int:
        return sum(self.subchecks.values())

    def check(self, fn: CheckHandler) -> CheckHandler:
        self.check_fn = fn
        return fn

    def solve(self, fn: SolveHandler) -> SolveHandler:
        self.solve_fn = fn
        return fn

    def setup(self, fn: SolveHandler) -> SolveHandler:
        self.setup_fn = fn
        return fn

    def cleanup(self, fn: CleanupHandler) -> CleanupHandler:
        self.cleanup_fn = fn
        return fn

    def localized(self, language: str | None = None) -> Text:
        return common_text.translate(self.id, self.text, language)

    def describe(self, language: str | None = None) -> dict[str, Any]:
        """The public shape printed by ``dockyard exercises --json``."""
        text = self.localized(language)
        return {
            "id": self.id,
            "lab": self.lab,
            "title": text.title,
            "task": text.task,
            "points": self.points,
            "needs_engine": self.needs_engine,
            "needs_cluster": self.needs_cluster,
            "static": self.static,
            "hints": list(text.hints),
            "subchecks": [
                {"key": key, "title": text.subchecks[key], "points": points}
                for key, points in self.subchecks.items()
            ],
        }


@dataclass
class SubResult:
    key: str
    title: str
    points: int
    passed: bool
    reason: str = ""


@dataclass
class Verdict:
    """What a check found. Renders as HTML in a notebook and as text in a terminal."""

    exercise: str
    lab: str
    title: str
    status: str
    subchecks: list[SubResult]
    evidence: dict[str, Any]
    checked_at: str
    duration_ms: float
    message: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> int:
        return sum(s.points for s in self.subchecks if s.passed)

    @property
    def max_score(self) -> int:
        return sum(s.points for s in self.subchecks)

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(score=self.score, max_score=self.max_score)
        return data

    def headline(self) -> str:
        labels = {
            PASS: "✓ passed",
            FAIL: "✗ not yet",
            NEEDS_ENGINE: "⚠ needs a Docker engine",
            NEEDS_CLUSTER: "⚠ needs a Kubernetes cluster",
            REFUSED: "⛔ refused: not the lab's cluster",
            TIMEOUT: "⏱ timed out",
            ERROR: "⚠ could not check",
        }
        return f"{labels.get(self.status, self.status)} — {self.score}/{self.max_score} points"

    def __str__(self) -> str:
        lines = [f"{self.exercise}: {self.title}", f"  {self.headline()}"]
        if self.message:
            lines.append(f"  {self.message}")
        for sub in self.subchecks:
            mark = "✓" if sub.passed else "✗"
            lines.append(f"  {mark} {sub.title} ({sub.points} pt)")
            if sub.reason and not sub.passed:
                lines.append(f"      → {sub.reason}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {"pass": "#1a7f37", "fail": "#b35900"}.get(self.status, "#6e7781")
        rows = []
        for sub in self.subchecks:
            mark = "✓" if sub.passed else "✗"
            reason = f"<br><small>{html.escape(sub.reason)}</small>" if not sub.passed else ""
            rows.append(
                f"<li><b>{mark}</b> {html.escape(sub.title)} "
                f"<small>({sub.points} pt)</small>{reason}</li>"
            )
        message = f"<div>{html.escape(self.message)}</div>" if self.message else ""
        notes = "".join(f"<div><small>{html.escape(n)}</small></div>" for n in self.notes)
        return (
            f'<div class="dockyard-verdict" style="border-left:4px solid {colour};'
            f'padding:4px 10px">'
            f"<div><b>{html.escape(self.title)}</b> "
            f'<span style="color:{colour}">{html.escape(self.headline())}</span></div>'
            f"{message}<ul style='margin:4px 0'>{''.join(rows)}</ul>{notes}</div>"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))
