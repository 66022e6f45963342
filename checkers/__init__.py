"""Dockyard's checkers: one module per lab, each a list of declarative exercises.

The public API is re-exported here; lab modules (``checkers.isolation`` and friends)
are imported on first use of the registry, so ``import checkers`` stays cheap.
"""

from checkers._core.context import CheckContext, SolveContext, SolveError, Unmet, deleting
from checkers._core.model import (
    ERROR,
    FAIL,
    NEEDS_CLUSTER,
    NEEDS_ENGINE,
    PASS,
    REFUSED,
    TIMEOUT,
    Exercise,
    SubResult,
    Text,
    Verdict,
)
from checkers._core.registry import (
    LAB_MODULES,
    UnknownExercise,
    UnknownLab,
    all_exercises,
    get,
    resolve_lab,
)
from checkers._core.runner import (
    ResetReport,
    RunError,
    SelftestRow,
    check,
    cleanup,
    reset,
    selftest_one,
    setup,
    solve,
)

__all__ = [
    "ERROR", "FAIL", "LAB_MODULES", "NEEDS_CLUSTER", "NEEDS_ENGINE", "PASS", "REFUSED",
    "TIMEOUT",
    "CheckContext", "Exercise", "ResetReport", "RunError", "SelftestRow", "SolveContext",
    "SolveError", "SubResult", "Text", "UnknownExercise", "UnknownLab", "Unmet", "Verdict",
    "all_exercises", "check", "cleanup", "deleting", "get", "reset", "resolve_lab", "selftest_one",
    "setup", "solve",
]
