"""Running exercises: check (time-bounded), solve, setup, cleanup, reset and selftest.

Every entry point here turns faults into words: a missing engine, an engine that
dies mid-check, a timeout or a locked progress database each become a
:class:`~checkers._core.model.Verdict` or :class:`RunError` with a specific
message, never a traceback. The notebook UI and the CLI both call this module.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from checkers._core import registry
from checkers._core import text as texts
from checkers._core.context import CheckContext, SolveContext, SolveError, Unmet
from checkers._core.model import (
    ERROR,
    FAIL,
    NEEDS_CLUSTER,
    NEEDS_ENGINE,
    PASS,
    REFUSED,
    TIMEOUT,
    CleanupHandler,
    Exercise,
    Verdict,
)
from kernel_helpers import engine as eng
from kernel_helpers import kubernetes as kube
from kernel_helpers import progress

DEFAULT_CHECK_TIMEOUT = 30.0
DEFAULT_SOLVE_TIMEOUT = 300.0
T = TypeVar("T")


class RunError(RuntimeError):
    """A setup, solve or cleanup step failed; the message is meant for a person."""


class _Timeout(Exception):
    pass


def check_timeout() -> float:
    try:
        return float(os.environ.get("DOCKYARD_CHECK_TIMEOUT", DEFAULT_CHECK_TIMEOUT))
    except ValueError:
        return DEFAULT_CHECK_TIMEOUT


def autosolve_enabled() -> bool:
    return os.environ.get("DOCKYARD_AUTOSOLVE", "") not in ("", "0", "false", "no")


def _bounded(fn: Callable[[], T], seconds: float) -> T:
    """Run ``fn`` in a daemon thread and give up after ``seconds``.

    A hung engine call then costs the student one timeout message, not a frozen kernel.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="dockyard-check")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise _Timeout
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")  # type: ignore[return-value]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def check(
    exercise_id: str,
    *,
    source: str = "notebook",
    timeout: float | None = None,
    record: bool = True,
) -> Verdict:
    """Grade one exercise from live state and record the attempt.

    ``dockyard check ID``. Raises :class:`registry.UnknownExercise` for a bad id;
    everything else becomes part of the verdict.
    """
    exercise = registry.get(exercise_id)
    seconds = timeout if timeout is not None else check_timeout()
    started = time.perf_counter()
    ctx = CheckContext(exercise)
    status, message = FAIL, ""
    store = progress.store()
    try:
        store.start_lab(exercise.lab)
    except progress.ProgressUnavailable as exc:
        ctx.notes.append(str(exc))
    try:
        if exercise.needs_engine:
            ctx._engine = eng.connect()
        if exercise.needs_cluster:
            ctx._cluster = _bounded(kube.connect, min(seconds, 15))
        assert exercise.check_fn is not None, f"{exercise.id} has no check"
        _bounded(lambda: _run_check_fn(exercise, ctx), seconds)
    except eng.EngineUnavailable as exc:
        status, message = NEEDS_ENGINE, texts.reason(ctx._text(), "needs_engine", detail=exc)
        ctx.fail_remaining("needs_engine_short")
    except kube.WrongContext as exc:
        status, message = REFUSED, texts.reason(ctx._text(), "refused", detail=exc)
        ctx.fail_remaining("refused_short")
    except kube.ClusterUnavailable as exc:
        status, message = NEEDS_CLUSTER, texts.reason(ctx._text(), "needs_cluster", detail=exc)
        ctx.fail_remaining("needs_cluster_short")
    except kube.ClusterFault as exc:
        status, message = ERROR, texts.reason(ctx._text(), "cluster_fault", detail=exc)
        ctx.fail_remaining("cluster_fault", detail=exc)
    except _Timeout:
        status, message = TIMEOUT, texts.reason(ctx._text(), "timeout", seconds=seconds)
        # The abandoned thread may still write into ctx: report from a fresh one.
        ctx = CheckContext(exercise, text=ctx.text, notes=ctx.notes)
        ctx.fail_remaining("timeout", seconds=seconds)
    except Exception as exc:
        status = ERROR
        key, detail = "error", _describe(exc)
        if exercise.needs_cluster and (kube.is_cluster_fault(exc) or kube.api_status(exc)):
            key = "cluster_lost" if kube.api_status(exc) is None else "cluster_fault"
            detail = kube.explain_api_error(exc, "read the lab's objects", _namespace(exercise))
            if key == "cluster_lost":
                kube.forget()
        elif eng.is_engine_fault(exc):
            key = "engine_lost"
            eng.forget()
        message = texts.reason(ctx._text(), key, detail=detail)
        ctx.fail_remaining(key, detail=detail)
    else:
        ctx.fail_remaining("error", detail="the check did not report this step")
        status = PASS if all(r.passed for r in ctx.results.values()) else FAIL
    verdict = Verdict(
        exercise=exercise.id,
        lab=exercise.lab,
        title=ctx._text().title,
        status=status,
        subchecks=[ctx.results[key] for key in exercise.subchecks],
        evidence=ctx.evidence,
        checked_at=progress.now_iso(),
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
        message=message,
        notes=ctx.notes,
    )
    if record:
        _record(store, verdict, ctx, source)
    return verdict


def _namespace(exercise: Exercise) -> str:
    return kube.LAB_NAMESPACES.get(exercise.lab, "")


def _run_check_fn(exercise: Exercise, ctx: CheckContext) -> None:
    assert exercise.check_fn is not None
    try:
        exercise.check_fn(ctx)
    except Unmet as unmet:
        ctx.fail_remaining(unmet.reason_key, **unmet.fields)


def _record(store: progress.Store, verdict: Verdict, ctx: CheckContext, source: str) -> None:
    try:
        refused = store.record_attempt(
            verdict.exercise, verdict.lab, verdict.score, verdict.max_score, verdict.status,
            verdict.to_dict(), verdict.evidence, source=source, at=verdict.checked_at,
            graded=ctx.graded,
        )
        verdict.notes.extend(
            f"{owned.kind} {owned.resource_id[:12]} is older than this lab, so Dockyard treats "
            "it as yours: reset will leave it alone."
            for owned in refused
        )
    except progress.ProgressUnavailable as exc:
        verdict.notes.append(f"Not saved: {exc}")
    if store.warning:
        verdict.notes.append(store.warning)
        store.warning = ""


def _solve_context(exercise: Exercise) -> SolveContext:
    return SolveContext(exercise, store=progress.store())


def _guard(step: str, exercise: Exercise, fn: Callable[[], None], seconds: float) -> None:
    try:
        _bounded(fn, seconds)
    except _Timeout:
        raise RunError(f"{exercise.id}: {step} did not finish within {seconds:.0f} s") from None
    except (SolveError, eng.EngineUnavailable, kube.ClusterUnavailable, kube.ClusterFault) as exc:
        raise RunError(f"{exercise.id}: {step} failed: {exc}") from None
    except RunError:
        raise
    except Exception as exc:
        if exercise.needs_cluster and (kube.is_cluster_fault(exc) or kube.api_status(exc)):
            if kube.api_status(exc) is None:
                kube.forget()
            why = kube.explain_api_error(exc, step, _namespace(exercise))
            raise RunError(f"{exercise.id}: {step} failed: {why}") from None
        raise RunError(f"{exercise.id}: {step} failed: {_describe(exc)}") from None


def setup(exercise_id: str, *, progress_cb: Callable[[str], None] | None = None) -> None:
    """Prepare what the exercise needs (lab images), never touching the student's work."""
    exercise = registry.get(exercise_id)
    try:
        progress.store().start_lab(exercise.lab)
    except progress.ProgressUnavailable as exc:
        raise RunError(str(exc)) from None
    ctx = _solve_context(exercise)

    def run() -> None:
        if exercise.needs_cluster:
            # Images reach a kind cluster through `dockyard cluster up`, not the engine.
            ctx.cluster.ensure_namespace(exercise.lab)
        elif exercise.images:
            from kernel_helpers import images

            images.ensure(exercise.images, engine=ctx.engine, log=progress_cb)
        if exercise.setup_fn:
            exercise.setup_fn(ctx)

    _guard("setup", exercise, run, DEFAULT_SOLVE_TIMEOUT * 3)


def solve(exercise_id: str) -> None:
    """``dockyard solve ID``: apply the reference solution through the engine."""
    exercise = registry.get(exercise_id)
    if exercise.solve_fn is None:
        raise RunError(f"{exercise.id} has no reference solution")
    setup(exercise_id)
    ctx = _solve_context(exercise)
    solve_fn = exercise.solve_fn
    _guard("solve", exercise, lambda: solve_fn(ctx), DEFAULT_SOLVE_TIMEOUT)


def cleanup(exercise_id: str) -> list[eng.Removal]:
    """Remove what this exercise created or graded; nothing else."""
    exercise = registry.get(exercise_id)
    ctx = _solve_context(exercise)
    removed: list[eng.Removal] = []

    def run() -> None:
        if exercise.cleanup_fn:
            result = exercise.cleanup_fn(ctx)
            if exercise.needs_cluster and isinstance(result, list):
                removed.extend(r for r in result if isinstance(r, eng.Removal))
        if exercise.needs_cluster:
            removed.extend(ctx.cluster.delete_by_exercise(ctx.namespace, exercise.id))
        if exercise.needs_engine:
            store = progress.store()
            owned = store.owned(exercise=exercise.id)
            removed.extend(eng.remove_owned(ctx.engine, exercise.lab, owned, exercise=exercise.id))
            store.forget_owned([r.resource_id for r in removed if not r.error])

    _guard("cleanup", exercise, run, DEFAULT_SOLVE_TIMEOUT)
    return removed


@dataclass
class ResetReport:
    removed: list[eng.Removal] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def reset(lab: str | None = None, include_images: bool = False) -> ResetReport:
    """``dockyard reset [LAB]``: remove labelled and graded resources, nothing else."""
    lab = registry.resolve_lab(lab) if lab else None
    report = ResetReport()
    store = progress.store()
    cluster_reachable: bool | None = None
    for exercise in registry.all_exercises(lab):
        hook = exercise.cleanup_fn
        if hook is None:
            continue
        if exercise.needs_cluster:
            # No cluster (or not the lab's): nothing there may be touched, and
            # _reset_cluster says so once for the lab instead of once per exercise.
            if cluster_reachable is None:
                cluster_reachable = _cluster_reachable()
            if not cluster_reachable:
                continue
        done: list[object] = []

        def run_hook(
            e: Exercise = exercise, h: CleanupHandler = hook, out: list[object] = done
        ) -> None:
            out.append(h(_solve_context(e)))

        try:
            _guard("cleanup", exercise, run_hook, 60)
        except RunError as exc:
            report.problems.append(str(exc))
        if done and isinstance(done[0], list):
            report.removed.extend(r for r in done[0] if isinstance(r, eng.Removal))
    _reset_cluster(lab, report)
    if lab is not None and not any(e.needs_engine for e in registry.all_exercises(lab)):
        return report
    try:
        engine = eng.connect()
    except eng.EngineUnavailable as exc:
        report.problems.append(f"Docker resources were not touched: {exc}")
        return report
    removed = eng.remove_owned(engine, lab, store.owned(lab), include_images=include_images)
    store.forget_owned([r.resource_id for r in removed if not r.error])
    report.removed.extend(removed)
    report.problems.extend(f"{r.kind} {r.name}: {r.error}" for r in removed if r.error)
    return report


def _cluster_reachable() -> bool:
    try:
        _bounded(kube.connect, 15)
    except (kube.ClusterUnavailable, _Timeout):
        return False
    return True


def _reset_cluster(lab: str | None, report: ResetReport) -> None:
    """Delete the Kubernetes labs' own namespaces; nothing else in the cluster."""
    labs = [name for name in kube.LAB_NAMESPACES if lab in (None, name)]
    if not labs:
        return
    try:
        cluster = kube.connect()
    except kube.ClusterUnavailable as exc:
        # Saying nothing would hide a refusal; but a Docker-only student has no cluster.
        if lab is not None or isinstance(exc, kube.WrongContext):
            report.problems.append(f"Kubernetes objects were not touched: {exc}")
        return
    for name in labs:
        try:
            removed = cluster.delete_lab(name)
        except Exception as exc:
            report.problems.append(
                kube.explain_api_error(exc, "delete the lab's namespace", kube.namespace_for(name))
            )
            continue
        report.removed.extend(r for r in removed if not r.error)
        report.problems.extend(f"namespace {r.name}: {r.error}" for r in removed if r.error)


@dataclass
class SelftestRow:
    exercise: str
    before: str = ""
    after: str = ""
    ok: bool = False
    problem: str = ""
    seconds: float = 0.0


def selftest_one(exercise: Exercise) -> SelftestRow:
    """cleanup → setup → check (must fail) → solve → check (must pass) → cleanup."""
    row = SelftestRow(exercise.id)
    started = time.perf_counter()
    try:
        cleanup(exercise.id)
        setup(exercise.id)
        before = check(exercise.id, source="selftest")
        row.before = f"{before.status} {before.score}/{before.max_score}"
        if before.status != FAIL:
            row.problem = (
                "the check passed before the solution ran" if before.passed
                else f"the check could not run before the solution: {before.message}"
            )
            return row
        solve(exercise.id)
        after = check(exercise.id, source="selftest")
        row.after = f"{after.status} {after.score}/{after.max_score}"
        if not after.passed:
            failing = [s for s in after.subchecks if not s.passed]
            detail = after.message or "; ".join(f"{s.key}: {s.reason}" for s in failing)
            row.problem = f"the check did not pass after the solution: {detail}"
            return row
        row.ok = True
    except RunError as exc:
        row.problem = str(exc)
    finally:
        try:
            cleanup(exercise.id)
        except RunError as exc:
            row.ok = False
            row.problem = row.problem or str(exc)
        row.seconds = round(time.perf_counter() - started, 2)
    return row


def cluster_missing_for(exercises: list[Exercise]) -> str:
    """Why selftest cannot run the Kubernetes exercises here, or '' when it can."""
    if not any(e.needs_cluster for e in exercises):
        return ""
    try:
        kube.connect()
    except kube.ClusterUnavailable as exc:
        return str(exc)
    return ""


def engine_missing_for(exercises: list[Exercise]) -> str:
    """Why selftest cannot run the engine exercises here, or '' when it can."""
    if not any(e.needs_engine for e in exercises):
        return ""
    try:
        eng.connect()
    except eng.EngineUnavailable as exc:
        return str(exc)
    return ""

